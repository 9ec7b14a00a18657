"""
Crash safety (issue 15): a gateway process killed with SIGKILL at random
points while clients write, restarted on the same state each time.

After every kill, every state file must parse (a JSON file whole; a JSONL
transcript line by line, only a last line without its newline may be torn),
and everything a client was told is stored must be there: each chat message
whose C{chat.send} was answered, each reply whose C{final} was seen, each
acknowledged C{sessions.patch} label and C{voicewake.set}. After the restart
no stray temp file is left.

20 cycles here (CI); OPENCLAW_CRASH_CYCLES=200 for a longer run locally,
OPENCLAW_CRASH_SEED to replay one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from openclaw.store import TEMP_MARK
from tests.fakes import FakeProvider, openai_text
from tests.helpers import REPO, base_env, scratch_home, write_config
from tests.wsclient import TOKEN, WS, connect_params, open_ws

CYCLES = int(os.environ.get("OPENCLAW_CRASH_CYCLES", "20"))
SEED = int(os.environ.get("OPENCLAW_CRASH_SEED", str(random.randrange(1 << 30))))
WRITERS = 3


class Endless(FakeProvider):
    """Never out of replies: each request streams a short answer naming the turn it answers."""

    def render_POST(self, request: Any) -> Any:
        body = json.loads(request.content.read() or b"{}")
        asked = body.get("messages", [{}])[-1].get("content", "")
        reply = openai_text("reply ", "to ", str(asked)[:60])
        reply.delay = 0.01
        self.replies.append(reply)
        request.content.seek(0)
        return super().render_POST(request)


async def ask(ws: WS, method: str, params: Any, timeout: float = 10.0) -> dict[str, Any]:
    ws._ids += 1
    frame_id = f"k{ws._ids}"
    ws.protocol.send_json({"type": "req", "id": frame_id, "method": method, "params": params})
    return await ws.response(frame_id, timeout)


def free_ports() -> int:
    """A loopback port for the gateway (the bridge and canvas are off)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_of(entry: dict[str, Any]) -> str:
    message = entry.get("message") or {}
    return "".join(p.get("text", "") for p in message.get("content") or [] if isinstance(p, dict))


def damaged_files(state: Path) -> list[str]:
    """Every state file that does not parse, as a list of problems (temp files excepted: start removes them)."""
    problems = []
    for path in sorted(state.rglob("*")):
        if not path.is_file() or TEMP_MARK in path.name:
            continue
        if path.suffix == ".json":
            try:
                json.loads(path.read_bytes())
            except ValueError as e:
                problems.append(f"{path.relative_to(state)}: {e}")
        elif path.suffix == ".jsonl":
            lines = path.read_bytes().split(b"\n")
            for n, line in enumerate(lines[:-1]):  # the part after the last newline may be a torn append
                try:
                    json.loads(line)
                except ValueError as e:
                    problems.append(f"{path.relative_to(state)} line {n + 1}: {e}")
    return problems


class Acked:
    """What the gateway acknowledged before it was killed."""

    def __init__(self) -> None:
        self.messages: dict[str, list[str]] = {}  # session key → user texts whose chat.send was answered
        self.replies: dict[str, list[str]] = {}  # session key → assistant texts seen final
        self.labels: dict[str, str] = {}
        self.triggers: list[str] | None = None
        # sent, answer not seen: on disk may be one step ahead of what was acknowledged
        self.sending_labels: dict[str, str] = {}
        self.sending_triggers: list[str] | None = None

    def missing(self, state: Path) -> list[str]:
        folder = state / "agents" / "main" / "sessions"
        index = json.loads((folder / "sessions.json").read_text()) if (folder / "sessions.json").exists() else {}
        problems = []
        for key in set(self.messages) | set(self.replies) | set(self.labels):
            entry = index.get(f"agent:main:{key}")
            if entry is None:
                problems.append(f"{key}: not in the index")
                continue
            stored: list[str] = []
            path = folder / f"{entry['sessionId']}.jsonl"
            for line in path.read_bytes().split(b"\n")[:-1]:
                record = json.loads(line)
                if record.get("type") == "message":
                    stored.append(text_of(record))
            for text in self.messages.get(key, []) + self.replies.get(key, []):
                if text not in stored:
                    problems.append(f"{key}: acknowledged {text!r} is not in {path.name}")
            if key in self.labels and entry.get("label") not in (self.labels[key], self.sending_labels.get(key)):
                problems.append(f"{key}: label {entry.get('label')!r}, acknowledged {self.labels[key]!r}")
        if self.triggers is not None:
            stored_triggers = json.loads((state / "settings" / "voicewake.json").read_text())["triggers"]
            if stored_triggers not in (self.triggers, self.sending_triggers):
                problems.append(f"voicewake: {stored_triggers}, acknowledged {self.triggers}")
        return problems


class CrashTests(TestCase):
    timeout = 60 + CYCLES * 15

    async def setUp(self) -> None:
        self.provider = Endless()
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        root = Resource()
        root.putChild(b"v1", self.provider)
        site = Site(root)
        site.noisy = False
        self.listening = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self._stop_provider)
        self.home = scratch_home(self)
        self.state = self.home / ".openclaw"
        url = f"http://127.0.0.1:{self.listening.getHost().port}/v1"
        write_config(
            self.state / "openclaw.json",
            {
                "gateway": {"mode": "local", "auth": {"token": TOKEN}},
                "bridge": {"enabled": False},
                "canvasHost": {"enabled": False},
                "logging": {"level": "warn"},
                "models": {"providers": {"fake": {"baseUrl": url, "apiKey": "sk-crash-0123456789", "api": "openai-completions", "models": [{"id": "m1"}]}}},
                "agents": {"defaults": {"model": {"primary": "fake/m1"}}},
            },
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.addCleanup(self._kill)

    async def _stop_provider(self) -> None:
        for request in self.provider.open:
            if not request.finished and request.channel is not None:
                request.channel.transport.abortConnection()
        await self.listening.stopListening()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def start(self) -> int:
        port = free_ports()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw", "gateway", "--port", str(port)],
            env={**base_env(self.home), "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            if self.proc.poll() is not None:
                self.fail(f"the gateway exited {self.proc.returncode} at start (seed {SEED})")
            try:
                ws = await open_ws(port)
            except Exception:
                await deferLater(reactor, 0.05, lambda: None)
                continue
            ok = (await ws.request("connect", connect_params(scopes=["operator.admin"])))["ok"]
            ws.close()
            if ok:
                return port
        self.fail(f"the gateway did not come up (seed {SEED})")

    async def writer(self, port: int, n: int, cycle: int, acked: Acked) -> None:
        """
        Turns in its own session (a new one each cycle), until the socket dies;
        writer 1 labels its session after each turn, writer 0 sets voicewake.
        """
        key = f"crash-{cycle}-{n}"
        ws: WS | None = None
        try:
            ws = await open_ws(port)
            await ws.request("connect", connect_params(scopes=["operator.admin"]))
            for turn in range(1000):
                text = f"cycle {cycle} writer {n} turn {turn}"
                run_id = f"c{cycle}-w{n}-t{turn}"
                res = await ask(ws, "chat.send", {"sessionKey": key, "message": text, "idempotencyKey": run_id})
                if not res.get("ok"):
                    continue
                acked.messages.setdefault(key, []).append(text)
                while True:
                    payload = (await ws.event("chat", timeout=10))["payload"]
                    if payload["runId"] == run_id and payload["state"] in ("final", "error", "aborted"):
                        break
                if payload["state"] == "final":
                    acked.replies.setdefault(key, []).append(text_of(payload))
                if n == 1:
                    label = f"label {cycle}.{turn}"
                    acked.sending_labels[key] = label
                    if (await ask(ws, "sessions.patch", {"key": key, "label": label})).get("ok"):
                        acked.labels[key] = label
                if n == 0:
                    triggers = [f"wake {cycle}.{turn}"]
                    acked.sending_triggers = triggers
                    if (await ask(ws, "voicewake.set", {"triggers": triggers})).get("ok"):
                        acked.triggers = triggers
        except Exception:
            return  # the gateway was killed under it
        finally:
            if ws is not None and not ws.closed.called:
                ws.protocol.transport.abortConnection()

    async def test_kill_9_at_random_points(self) -> None:
        """SIGKILL at random points while clients write: every state file parses, nothing acknowledged is lost."""
        rng = random.Random(SEED)
        acked = Acked()
        for cycle in range(CYCLES):
            port = await self.start()
            left = [p.name for p in self.state.rglob("*") if TEMP_MARK in p.name]
            self.assertEqual(left, [], f"stray temp files after a restart (seed {SEED}, cycle {cycle})")
            writers: list[Deferred[None]] = [Deferred.fromCoroutine(self.writer(port, n, cycle, acked)) for n in range(WRITERS)]
            await deferLater(reactor, rng.uniform(0.0, 1.2), lambda: None)
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            await DeferredList(writers)
            problems = damaged_files(self.state) + acked.missing(self.state)
            self.assertEqual(problems, [], f"seed {SEED}, cycle {cycle}")
        self.assertTrue(acked.messages, "no message was acknowledged in any cycle")
        port = await self.start()  # the last state loads too
        self.proc.terminate()
        self.proc.wait(30)
