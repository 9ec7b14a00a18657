"""
A fake `imsg rpc`: the JSON-RPC side of imsg (chats.list, messages.history,
watch.subscribe with since_rowid replay, watch.unsubscribe, send, typing)
over a chat.db kept in memory, reached through tests/fake_imsg.py, the
executable the gateway spawns (it relays stdio to this server).

Like chat.db, every message is a row with a rising rowid; a send adds an
is_from_me row to the chat (imsg's watch reports it, as the real one does).
Faults: an error or a stall (no answer) or a delay per method, lines that
are not JSON-RPC, a crash mid-line, a child that exits at start with words
on stderr, and typing refused (imsg without its private-API mode).
"""

from __future__ import annotations

import json
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

HERE = Path(__file__).resolve().parent


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.define
class Fault:
    code: int = -32603
    message: str = "Internal error"
    data: Any = None
    stall: bool = False
    delay: float = 0.0


class Child(LineReceiver):
    """One spawned fake imsg (its relay's control connection)."""

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, fake: FakeImsg) -> None:
        self.fake = fake
        self.argv: list[str] = []
        self.pid = 0
        self.subscriptions: dict[int, dict[str, Any]] = {}
        self.gone: Deferred[None] = Deferred()

    def order(self, **order: Any) -> None:
        self.sendLine(json.dumps(order).encode())

    def out(self, text: str) -> None:
        self.order(out=text)

    def frame(self, value: dict[str, Any]) -> None:
        self.out(json.dumps(value) + "\n")

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.fake.children:
            self.fake.children.remove(self)
        self.gone.callback(None)

    def lineReceived(self, line: bytes) -> None:
        event = json.loads(line)
        if "hello" in event:
            self.argv = event["hello"]["argv"]
            self.pid = event["hello"]["pid"]
            self.fake.spawned.append(self)
            self.fake.children.append(self)
            startup = self.fake.on_start.pop(0) if self.fake.on_start else None
            if startup is not None:
                if startup.get("err"):
                    self.order(err=startup["err"])
                self.order(exit=startup.get("exit", 1))
            return
        if "stdin" in event:
            self.fake.lines.append(event["stdin"])
            try:
                request = json.loads(event["stdin"])
            except ValueError:
                self.frame({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error", "data": "bad json"}})
                return
            self.fake.handle(self, request)


class FakeImsg(Factory):
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.spawned: list[Child] = []
        self.lines: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.next_rowid = 100
        self.next_sub = 1
        self.faults: dict[str, list[Fault]] = {}
        self.on_start: list[dict[str, Any]] = []
        self.typing_supported = True
        self.sent: list[dict[str, Any]] = []
        self.typing: list[dict[str, Any]] = []
        self.port: Any = None

    def buildProtocol(self, addr: Any) -> Child:
        return Child(self)

    # -- scripting

    @property
    def child(self) -> Child:
        return self.children[-1]

    def fault(self, method: str, *faults: Fault) -> None:
        self.faults.setdefault(method, []).extend(faults)

    def chat(self, chat_id: int, handle: str | None = None, name: str = "", group: bool = False, participants: list[str] | None = None) -> dict[str, Any]:
        identifier = f"chat{chat_id}" if group else (handle or f"+1555000{chat_id:04d}")
        guid = f"iMessage;{'+' if group else '-'};{identifier}"
        chat = {"id": chat_id, "identifier": identifier, "guid": guid, "name": name, "service": "iMessage", "participants": participants or ([handle] if handle else []), "is_group": group}
        self.chats[chat_id] = chat
        return chat

    def add(self, chat_id: int, text: str, sender: str | None = None, from_me: bool = False, sent_ms: float | None = None, **extra: Any) -> dict[str, Any]:
        """A new row in chat.db; every watch that covers it reports it."""
        chat = self.chats.get(chat_id) or self.chat(chat_id, sender)
        self.next_rowid += 1
        row = {
            "id": self.next_rowid,
            "chat_id": chat_id,
            "guid": f"GUID-{self.next_rowid}",
            "sender": "" if from_me else (sender or chat["identifier"]),
            "is_from_me": from_me,
            "text": text,
            "created_at": iso(sent_ms if sent_ms is not None else reactor.seconds() * 1000),
            "attachments": [],
            "reactions": [],
            "chat_identifier": chat["identifier"],
            "chat_guid": chat["guid"],
            "chat_name": chat["name"],
            "participants": chat["participants"],
            "is_group": chat["is_group"],
            **extra,
        }
        self.rows.append(row)
        for child in list(self.children):
            for sub, watch in child.subscriptions.items():
                if watch.get("live") and (watch.get("chat_id") is None or watch["chat_id"] == chat_id):
                    watch["cursor"] = row["id"]
                    child.frame({"jsonrpc": "2.0", "method": "message", "params": {"subscription": sub, "message": row}})
        return row

    def dm(self, handle: str, text: str, chat_id: int | None = None, **extra: Any) -> dict[str, Any]:
        if chat_id is None:
            chat_id = next((c["id"] for c in self.chats.values() if not c["is_group"] and c["identifier"] == handle), None)
            if chat_id is None:
                chat_id = len(self.chats) + 1
                self.chat(chat_id, handle)
        return self.add(chat_id, text, handle, **extra)

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [s["text"] for s in self.sent if chat_id is None or s.get("chat_id") == chat_id]

    def garbage(self, text: str) -> None:
        """Write raw bytes (not JSON-RPC) to the current child's stdout."""
        self.child.out(text)

    def crash(self, code: int = 1, half_line: bool = True, words: str = "") -> Deferred[None]:
        """The current child dies (after half a line, and maybe stderr words)."""
        child = self.child
        if half_line:
            child.out('{"jsonrpc":"2.0","method":"mess')
        if words:
            child.order(err=words)
        child.order(exit=code)
        return child.gone

    # -- imsg's side

    def handle(self, child: Child, request: dict[str, Any]) -> None:
        self.requests.append(request)
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        queued = self.faults.get(method) if isinstance(method, str) else None
        fault = queued.pop(0) if queued else None
        if fault is not None and fault.stall:
            return
        if fault is not None and fault.delay:
            reactor.callLater(fault.delay, self._answer, child, rid, method, params, None)
            return
        self._answer(child, rid, method, params, fault)

    def _answer(self, child: Child, rid: Any, method: Any, params: dict[str, Any], fault: Fault | None) -> None:
        if child not in self.children:
            return
        if fault is not None:
            child.frame({"jsonrpc": "2.0", "id": rid, "error": {"code": fault.code, "message": fault.message, **({"data": fault.data} if fault.data is not None else {})}})
            return
        try:
            result = self.method(child, rid, method, params)
        except ValueError as e:
            child.frame({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "Invalid params", "data": str(e)}})
            return
        if result is not None and rid is not None:
            child.frame({"jsonrpc": "2.0", "id": rid, "result": result})

    def method(self, child: Child, rid: Any, method: Any, params: dict[str, Any]) -> Any:
        if method == "chats.list":
            chats = sorted(self.chats.values(), key=lambda c: -c["id"])[: int(params.get("limit") or 20)]
            return {"chats": chats}
        if method == "messages.history":
            chat_id = params.get("chat_id")
            if not isinstance(chat_id, int):
                raise ValueError("chat_id is required")
            rows = [r for r in self.rows if r["chat_id"] == chat_id][-int(params.get("limit") or 50) :]
            return {"messages": rows}
        if method == "watch.subscribe":
            sub = self.next_sub
            self.next_sub += 1
            since = params.get("since_rowid")
            start = since if isinstance(since, int) and since > 0 else (self.rows[-1]["id"] if self.rows else 0)
            watch = {"chat_id": params.get("chat_id"), "cursor": start, "live": False}
            child.subscriptions[sub] = watch
            child.frame({"jsonrpc": "2.0", "id": rid, "result": {"subscription": sub}})
            for row in [r for r in self.rows if r["id"] > start][:100]:  # imsg's batch limit
                if watch["chat_id"] is None or watch["chat_id"] == row["chat_id"]:
                    watch["cursor"] = row["id"]
                    child.frame({"jsonrpc": "2.0", "method": "message", "params": {"subscription": sub, "message": row}})
            watch["live"] = True
            return None
        if method == "watch.unsubscribe":
            child.subscriptions.pop(params.get("subscription"), None)
            return {"ok": True}
        if method == "send":
            text = params.get("text") or ""
            has_chat = any(k in params for k in ("chat_id", "chat_guid", "chat_identifier"))
            if has_chat and params.get("to"):
                raise ValueError("use to or chat_*; not both")
            if not text and not params.get("file"):
                raise ValueError("text or file is required")
            if params.get("service", "auto") not in ("imessage", "sms", "auto"):
                raise ValueError("invalid service")
            if "chat_id" in params:
                chat_id = params["chat_id"]
                if chat_id not in self.chats:
                    raise ValueError(f"unknown chat_id {chat_id}")
            elif params.get("to"):
                chat_id = next((c["id"] for c in self.chats.values() if c["identifier"] == params["to"]), None) or self.chat(len(self.chats) + 1, params["to"])["id"]
            else:
                key = "guid" if "chat_guid" in params else "identifier"
                value = params.get("chat_guid") or params.get("chat_identifier")
                chat_id = next((c["id"] for c in self.chats.values() if c[key] == value), None)
                if chat_id is None:
                    raise ValueError("missing chat identifier or guid")
            self.sent.append({"chat_id": chat_id, "text": text, "params": params})
            row = self.add(chat_id, text, from_me=True)
            return {"ok": True, "id": row["id"], "guid": row["guid"]}
        if method == "typing":
            if not self.typing_supported:
                child.frame({"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "Internal error", "data": "typing requires imsg launch (private API unavailable)"}})
                return None
            self.typing.append(params)
            return {"ok": True}
        child.frame({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found", "data": method}})
        return None


async def start_imsg(testcase: Any, directory: Path | None = None) -> tuple[FakeImsg, str]:
    """Listen on 127.0.0.1:0 and write an executable `imsg` wrapper for it; returns the fake and the wrapper's path."""
    fake = FakeImsg()
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(fake)
    fake.port = port
    folder = Path(directory or testcase.mktemp()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "imsg"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_imsg.py"}" "127.0.0.1:{port.getHost().port}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    async def stop() -> None:
        for child in list(fake.children):
            child.order(exit=0)
        for child in list(fake.children):
            timer = reactor.callLater(5, lambda c=child: c.transport.abortConnection())
            await child.gone
            if timer.active():
                timer.cancel()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, str(wrapper)

