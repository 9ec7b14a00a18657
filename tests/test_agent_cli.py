"""`openclaw agent`, `openclaw sessions`, `openclaw chat` against a live gateway and a fake provider."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin


class Collect(ProcessProtocol):
    def __init__(self, stdin: bytes | None = None) -> None:
        self.out = b""
        self.err = b""
        self.stdin = stdin
        self.ended: Deferred = Deferred()

    def connectionMade(self):
        if self.stdin is not None:
            self.transport.write(self.stdin)
            self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode if reason.value.exitCode is not None else -reason.value.signal)


class AgentCLITests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    def env(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}

    def target(self):
        return ["--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN]

    async def test_agent_prints_reply(self):
        """`openclaw agent -m` prints the reply; --json prints the final payload."""
        self.fake.replies += [openai_text("Hello ", "world"), openai_text("again")]
        await self.gateway(**model_config(self.url))
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "agent", "-m", "hi", *self.target()], env=self.env(), reactor=reactor)
        self.assertEqual((code, out.decode()), (0, "Hello world\n"), err)
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "agent", "-m", "hi", "--json", *self.target()], env=self.env(), reactor=reactor)
        self.assertEqual(json.loads(out)["result"]["payloads"], [{"text": "again"}])

    async def test_agent_failure_exits_nonzero(self):
        """With no provider the command says why and exits 1."""
        await self.gateway()
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "agent", "-m", "hi", *self.target()], env=self.env(), reactor=reactor)
        self.assertEqual(code, 1)
        self.assertIn("No model provider is configured", err.decode())

    async def test_ctrl_c_aborts(self):
        """Ctrl-C while waiting sends chat.abort: the run ends aborted, the command exits 130."""
        hanging = openai_text("thinking")
        hanging.chunks = hanging.chunks[:2]
        hanging.hang = True
        self.fake.replies.append(hanging)
        await self.gateway(**model_config(self.url))
        proto = Collect()
        process = reactor.spawnProcess(proto, sys.executable, [sys.executable, "-m", "openclaw", "agent", "-m", "hi", *self.target()], env=self.env())
        for _ in range(300):
            if self.service.core.agent.active and self.service.core.agent.active["agent:main:main"].text:
                break
            await deferLater(reactor, 0.02, lambda: None)
        run = self.service.core.agent.active["agent:main:main"]
        process.signalProcess(signal.SIGINT)
        code = await proto.ended
        self.assertEqual(code, 130, proto.err)
        self.assertEqual(run.status, "aborted")

    async def test_sessions_and_chat(self):
        """`openclaw chat` streams replies from stdin lines; `openclaw sessions` lists the local store."""
        self.fake.replies.append(openai_text("pong"))
        await self.gateway(**model_config(self.url))
        proto = Collect(stdin=b"ping\n")
        env = self.env()
        reactor.spawnProcess(proto, sys.executable, [sys.executable, "-m", "openclaw", "chat", *self.target()], env=env)
        for _ in range(300):
            if b"pong" in proto.out:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertIn(b"pong", proto.out, proto.err)
        await proto.ended
        env = {**env, "HOME": str(self.home)}  # the gateway's own state dir
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "sessions", "--json"], env=env, reactor=reactor)
        self.assertEqual(code, 0, err)
        self.assertEqual([s["key"] for s in json.loads(out)["sessions"]], ["agent:main:main"])
