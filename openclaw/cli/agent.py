# -*- test-case-name: tests.test_agent_cli -*-
"""`openclaw agent`, `openclaw sessions` and `openclaw chat`."""

from __future__ import annotations

import json
import time
import uuid
from typing import IO, Any, Mapping

from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.python import usage

from openclaw.agent.sessions import SessionError, SessionStore, canonical_key
from openclaw.cli.base import CommandOptions
from openclaw.cli.remote import Failed, RemoteOptions

EX_INTERRUPTED = 130


class AgentOptions(RemoteOptions):
    synopsis = "-m MESSAGE [--session-key KEY] [--agent ID] [--thinking LEVEL] [--timeout SECONDS] [--json]"
    longdesc = "Run one agent turn through the gateway and print the reply (Ctrl-C aborts the run)."
    optParameters = [
        ["message", "m", None, "The message."],
        ["message-file", None, None, "Read the message from a file."],
        ["session-key", None, None, "Session key (default: main)."],
        ["agent", None, None, "Agent id."],
        ["thinking", None, None, "Thinking level."],
        ["timeout", None, 600, "Seconds the run may take.", int],
    ]

    def call_timeout(self) -> float:
        return self["timeout"] + 30.0

    def postOptions(self) -> None:
        if self["message-file"]:
            try:
                with open(self["message-file"], encoding="utf-8") as f:
                    self["message"] = f.read()
            except OSError as e:
                raise usage.UsageError(f"--message-file: {e.strerror}")
        if not self["message"]:
            raise usage.UsageError("give a message with -m/--message or --message-file")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env, ["operator.write", "operator.admin"])
        run_id = str(uuid.uuid4())
        session_key = self["session-key"] or "main"
        params: dict[str, Any] = {"message": self["message"], "idempotencyKey": run_id, "sessionKey": session_key, "timeout": self["timeout"]}
        for option, name in (("agent", "agentId"), ("thinking", "thinking")):
            if self[option]:
                params[name] = self[option]
        interrupted = []

        def abort() -> Deferred | None:
            # Ctrl-C: ask the gateway to stop this run before we go.
            if connection.core.closed_with is not None:
                return None
            interrupted.append(True)
            d = connection.call("chat.abort", {"sessionKey": session_key, "runId": run_id})
            return d.addTimeout(2, reactor).addBoth(lambda _: None)

        trigger = reactor.addSystemEventTrigger("before", "shutdown", abort)
        try:
            result = await connection.call("agent", params, expect_final=True).addTimeout(self["timeout"] + 30, reactor)
        except Exception as e:
            if interrupted:
                raise Failed("aborted", EX_INTERRUPTED)
            raise Failed(f"agent failed: {e}")
        finally:
            reactor.removeSystemEventTrigger(trigger)
            connection.close()
        if interrupted:
            raise Failed("aborted", EX_INTERRUPTED)
        if self["json"]:
            self.emit(out, result)
        else:
            for payload in (result.get("result") or {}).get("payloads") or []:
                if payload.get("text"):
                    out.write(payload["text"] + "\n")
        if result.get("status") != "ok":
            raise Failed(f"agent run {result.get('status')}: {result.get('error') or result.get('summary')}")


class SessionsOptions(CommandOptions):
    synopsis = "[--json] [--active MINUTES] [--agent ID]"
    longdesc = "List sessions from the local store (no gateway needed)."
    optParameters = [["active", None, None, "Only sessions updated in the last MINUTES.", int], ["agent", None, "main", "Agent id."]]
    optFlags = [["json", None, "Print JSON."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        try:
            store = SessionStore(self.layout(env).state_dir, self["agent"])
        except SessionError as e:
            err.write(f"{e}\n")
            return 1
        now = int(time.time() * 1000)
        rows = [{"key": k, **e} for k, e in store.rows() if not self["active"] or now - e.get("updatedAt", 0) <= self["active"] * 60_000]
        if self["json"]:
            out.write(json.dumps({"path": str(store.index_path), "count": len(rows), "sessions": rows}, indent=2) + "\n")
            return 0
        if not rows:
            out.write("No sessions.\n")
        for row in rows:
            age = max(0, (now - row.get("updatedAt", now)) // 1000)
            out.write(f"{row['key']}  {row.get('label', '')}  {row['sessionId']}  {age}s ago\n")
        return 0


class ChatInput(LineReceiver):
    delimiter = b"\n"

    def __init__(self, on_line: Any, on_end: Any) -> None:
        self.on_line = on_line
        self.on_end = on_end

    def lineReceived(self, line: bytes) -> None:
        self.on_line(line.decode("utf-8", "replace").strip())

    def connectionLost(self, reason: Any = None) -> None:
        self.on_end()


class ChatOptions(RemoteOptions):
    synopsis = "[--session-key KEY]"
    longdesc = "A small terminal chat: type a message, read the streamed reply; /new starts over, Ctrl-D quits."
    optParameters = [["session-key", None, "main", "Session key."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        from twisted.internet import stdio

        connection = await self.connection(reactor, env, ["operator.write", "operator.admin"])
        key = canonical_key(self["session-key"])
        printed = {"run": None, "length": 0}
        finished: Deferred[None] = Deferred()
        pending: set[str] = set()  # runs sent but not finished: stdin EOF waits for them
        eof: list[bool] = []

        def finish() -> None:
            if not finished.called:
                finished.callback(None)

        def on_event(frame: dict[str, Any]) -> None:
            payload = frame.get("payload") or {}
            if frame.get("event") != "chat" or payload.get("sessionKey") != key:
                return
            text = ""
            if isinstance(payload.get("message"), dict):
                text = "".join(p.get("text", "") for p in payload["message"].get("content") or [])
            if printed["run"] != payload.get("runId"):
                printed.update(run=payload.get("runId"), length=0)
            if text[printed["length"] :]:
                out.write(text[printed["length"] :])
                printed["length"] = len(text)
            if payload.get("state") in ("final", "aborted", "error"):
                if payload.get("state") != "final":
                    out.write(f"[{payload.get('state')}: {payload.get('errorMessage', '')}]")
                out.write("\n> ")
                pending.discard(payload.get("runId"))
                if eof and not pending:
                    finish()
            out.flush()

        def on_line(line: str) -> None:
            if line:
                run_id = str(uuid.uuid4())
                pending.add(run_id)
                def failed(f: Any) -> None:
                    pending.discard(run_id)
                    out.write(f"[send failed: {f.getErrorMessage()}]\n> ")

                connection.call("chat.send", {"sessionKey": key, "message": line, "idempotencyKey": run_id}).addErrback(failed)

        def on_eof() -> None:
            eof.append(True)
            if not pending:
                finish()

        connection.core.on_event = on_event
        connection.core.on_closed = lambda reason: finish()
        out.write(f"Chatting in {key} (Ctrl-D quits)\n> ")
        out.flush()
        stdio.StandardIO(ChatInput(on_line, on_eof), reactor=reactor)
        await finished
        connection.close()
