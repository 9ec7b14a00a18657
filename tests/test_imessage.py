"""
iMessage end to end: the gateway spawns a fake `imsg rpc` (tests/fake_imsg.py,
played by tests/fakes_imsg.py) and talks JSON-RPC to it over stdio; the agent
is the fake model provider (tests/fakes.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.fakes_imsg import Fault, start_imsg
from tests.fakes_telegram import wait_for
from tests import schemas
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
ALICE = "+15551230001"
HOUR_MS = 3600 * 1000


class IMessageMixin(GatewayMixin):
    timeout = 60

    async def start(self, imessage=None, replies=(), **config):
        self.imsg, self.cli_path = await start_imsg(self)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"cliPath": self.cli_path, **(imessage or {})}
        await self.gateway(channels={"imessage": section}, **model_config(self.model_url), **config)
        return self.service

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("imessage", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    def subscribes(self):
        return [r["params"] for r in self.imsg.requests if r.get("method") == "watch.subscribe"]

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor
        )
        return code, out.decode(), err.decode()


class RoundTripTests(IMessageMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown sender gets a code (the agent never sees it); `openclaw pairing approve imessage` (a subprocess) lets the next message through; the reply comes back in order, chunked at textChunkLimit, with typing shown and then taken down."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 150 for i in range(3))
        await self.start(imessage={"textChunkLimit": 800}, replies=[openai_text(long)])
        await self.connected()
        self.assertEqual(self.imsg.spawned[0].argv, ["rpc"])
        self.imsg.dm(ALICE, "hello there")
        text = await wait_for(lambda: next((t for t in self.imsg.texts() if CODE.search(t)), None), what="a pairing code")
        code = CODE.search(text).group(1)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve imessage {code}", text)
        self.assertIn(ALICE, text)

        status, out, err = await self.cli("pairing", "list", "imessage")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "imessage", code)
        self.assertEqual(status, 0, err)

        chat_id = self.imsg.sent[0]["chat_id"]
        self.imsg.dm(ALICE, "what is the plan?")
        await wait_for(lambda: len(self.imsg.texts(chat_id)) >= 4, what="the chunked reply")
        await self.pause(0.3)
        replies = self.imsg.texts(chat_id)[1:]
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r) <= 800 for r in replies))
        self.assertEqual(" ".join(" ".join(r.split()) for r in replies), " ".join(long.split()))
        self.assertTrue(all(s["params"] == {"chat_id": chat_id, "text": s["text"]} for s in self.imsg.sent))
        self.assertIn("what is the plan?", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.assertEqual(len(self.model.requests), 1)  # our own sent rows (is_from_me) never reach the agent
        self.assertEqual(self.imsg.typing[0], {"chat_id": chat_id, "typing": True})
        self.assertEqual(self.imsg.typing[-1], {"chat_id": chat_id, "typing": False})

    async def test_group_mention_gating(self):
        """In groups only messages matching the mention patterns reach the agent, in the group's own session; a thread imsg calls a DM is a group when listed under groups."""
        await self.start(
            imessage={"groupPolicy": "open", "groups": {"77": {"requireMention": False}}},
            replies=[openai_text("hi group"), openai_text("hi thread")],
            messages={"groupChat": {"mentionPatterns": ["@claw"]}},
        )
        await self.connected()
        self.imsg.chat(40, name="Team", group=True, participants=["+15550000001", "+15550000002"])
        self.imsg.add(40, "chatting among ourselves", "+15550000001")
        self.imsg.add(40, "@claw what time is it?", "+15550000002")
        await wait_for(lambda: self.imsg.texts(40), what="the group reply")
        self.imsg.chat(77, "+15550000003")
        self.imsg.add(77, "no mention needed here", "+15550000003")
        await wait_for(lambda: self.imsg.texts(77), what="the listed thread's reply")
        self.assertEqual(len(self.model.requests), 2)
        self.assertIn("+15550000002: @claw what time is it?", self.model.requests[0]["body"]["messages"][-1]["content"])
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:imessage:group:40"))
        self.assertIsNotNone(store.get("agent:main:imessage:group:77"))

    async def test_status_and_probe(self):
        """channels.status reports the account truthfully: connected, last inbound/outbound times, and a live probe through imsg (chats.list)."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("pong")])
        await self.connected()
        self.imsg.dm(ALICE, "ping")
        await wait_for(lambda: self.imsg.texts(), what="the reply")
        ws, _ = await self.connect()
        payload = (await ws.request("channels.status", {"probe": True}))["payload"]
        schemas.validate(3, "ChannelsStatusResult", payload)
        schemas.validate(4, "ChannelsStatusResult", payload)
        row = payload["channelAccounts"]["imessage"][0]
        self.assertEqual((row["configured"], row["running"], row["connected"], row["mode"]), (True, True, True, "rpc"))
        self.assertIsInstance(row["lastInboundAt"], int)
        self.assertIsInstance(row["lastOutboundAt"], int)
        self.assertEqual(row["probe"]["ok"], True)
        self.assertNotIn("lastError", row)
        self.assertIn("chats.list", [r.get("method") for r in self.imsg.requests])


class NotAMacTests(IMessageMixin, TestCase):
    async def test_missing_cli_reports_and_does_not_loop(self):
        """A cliPath that is not an executable: status says what is needed (on Linux: macOS with imsg, or an SSH wrapper), nothing is spawned, and the account does not retry."""
        await self.start(imessage={"cliPath": "/nonexistent/imsg"})
        await wait_for(lambda: self.account().state == "not-configured", what="not-configured")
        await self.pause(2.5)
        self.assertEqual(self.imsg.spawned, [])
        self.assertEqual(self.account().reconnect_attempts, 0)
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["imessage"][0]
        self.assertEqual((row["configured"], row["running"], row["connected"]), (False, False, False))
        expected = "imsg was not found" if sys.platform == "darwin" else "needs macOS with imsg (or channels.imessage.cliPath pointing at an SSH wrapper)"
        self.assertIn(expected, row["lastError"])


class FaultTests(IMessageMixin, TestCase):
    async def test_crash_mid_stream_restarts_and_replays_without_loss(self):
        """The child dies mid-line: the account backs off, starts a new child that resumes after the last journaled row (since_rowid), and a message that arrived meanwhile is answered once; nothing is answered twice."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("one"), openai_text("two"), openai_text("three")])
        await self.connected()
        self.imsg.dm(ALICE, "first")
        await wait_for(lambda: self.imsg.texts() == ["one"], what="the first answer")
        first_child = self.imsg.child
        await self.imsg.crash(code=1, words="imsg: lost the database")
        missed = self.imsg.dm(ALICE, "while you were down")
        await wait_for(lambda: "imsg rpc exited (code 1): imsg: lost the database" in (self.account().last_error or ""), what="the crash in status")
        await wait_for(lambda: self.imsg.texts() == ["one", "two"], timeout=15, what="the missed message answered")
        self.assertIsNot(self.imsg.child, first_child)
        since = self.subscribes()[1]["since_rowid"]
        self.assertLess(since, missed["id"])
        self.imsg.dm(ALICE, "third")
        await wait_for(lambda: self.imsg.texts() == ["one", "two", "three"], what="the third answer")
        await self.pause(0.5)
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked, ["first", "while you were down", "third"])
        self.assertGreaterEqual(self.account().reconnect_attempts, 1)
        self.assertTrue(self.account().connected)

    async def test_backlog_bomb_is_suppressed_after_restart(self):
        """Rows that reach chat.db while the gateway is down with old send times (Apple's backlog flush) are not answered; a message sent meanwhile is; the suppressions show in status."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("fresh"), openai_text("missed")])
        await self.connected()
        self.imsg.dm(ALICE, "hello")
        await wait_for(lambda: self.imsg.texts() == ["fresh"], what="the first answer")
        now = reactor.seconds() * 1000
        await self.service.stopService()
        self.imsg.dm(ALICE, "old news from an hour ago", sent_ms=now - HOUR_MS)
        self.imsg.dm("+15559990000", "from last week", sent_ms=now - 7 * 24 * HOUR_MS)
        self.imsg.dm(ALICE, "sent while you were down")
        await self.gateway(channels={"imessage": {"cliPath": self.cli_path, "dmPolicy": "open"}}, **model_config(self.model_url))
        await self.connected()
        await wait_for(lambda: self.imsg.texts() == ["fresh", "missed"], what="the missed message answered")
        await self.pause(0.5)
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked, ["hello", "sent while you were down"])
        self.assertEqual(self.account().snapshot()["suppressedBacklog"], 2)

    async def test_malformed_lines_are_skipped(self):
        """Lines that are not JSON-RPC (not JSON, not an object, an answer to no request, an over-long line) are skipped; the child keeps serving."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("still fine")])
        await self.connected()
        self.imsg.garbage("this is not json\n")
        self.imsg.garbage("[1, 2, 3]\n")
        self.imsg.garbage('{"jsonrpc":"2.0","id":"424242","result":{}}\n')
        self.imsg.garbage('{"jsonrpc":"2.0","method":"message","params":{"message":{"text":"no ids"}}}\n')
        self.imsg.dm(ALICE, "are you ok?")
        await wait_for(lambda: self.imsg.texts() == ["still fine"], what="the answer")
        self.assertEqual(self.account().reconnect_attempts, 0)
        self.assertEqual(len(self.imsg.spawned), 1)
        self.assertEqual(self.account().snapshot()["skippedLines"], 3)

    async def test_subscribe_that_never_answers_restarts_the_child(self):
        """watch.subscribe without an answer is cut after timeoutSeconds: that child is stopped and a new one subscribes."""
        self.imsg, self.cli_path = await start_imsg(self)
        self.imsg.fault("watch.subscribe", Fault(stall=True))
        self.model, self.model_url = await start_fake(self)
        self.model.replies.append(openai_text("up"))
        await self.gateway(channels={"imessage": {"cliPath": self.cli_path, "dmPolicy": "open", "timeoutSeconds": 1}}, **model_config(self.model_url))
        await wait_for(lambda: self.account().reconnect_attempts >= 1, what="the stalled subscribe cut")
        self.assertIn("watch.subscribe: no answer within 1 s", self.account().last_error)
        await wait_for(lambda: self.account().connected, timeout=15, what="connected with the second child")
        first = self.imsg.spawned[0]
        await wait_for(lambda: first.gone.called, what="the first child stopped")
        self.imsg.dm(ALICE, "hi")
        await wait_for(lambda: self.imsg.texts() == ["up"], what="the answer")

    async def test_slow_sends(self):
        """A send imsg answers slowly but within timeoutSeconds goes once; one it does not answer in time is retried (transient), and the reply arrives."""
        await self.start(imessage={"dmPolicy": "open", "timeoutSeconds": 1}, replies=[openai_text("slowly"), openai_text("eventually")])
        await self.connected()
        self.imsg.fault("send", Fault(delay=0.6), Fault(stall=True))
        self.imsg.dm(ALICE, "hello?")
        await wait_for(lambda: self.imsg.texts() == ["slowly"], timeout=15, what="the slow reply")
        self.imsg.dm(ALICE, "still there?")
        await wait_for(lambda: self.imsg.texts() == ["slowly", "eventually"], timeout=15, what="the retried reply")
        self.assertEqual(len([r for r in self.imsg.requests if r.get("method") == "send"]), 3)

    async def test_refused_send_is_dropped(self):
        """imsg refusing a send's parameters (-32602) drops that reply at once (no retry); the account keeps serving."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("lost"), openai_text("delivered")])
        await self.connected()
        self.imsg.fault("send", Fault(-32602, "Invalid params", "unknown chat_id 5"))
        self.imsg.dm(ALICE, "first")
        await wait_for(lambda: "send failed" in (self.account().last_error or ""), what="the refusal in status")
        self.imsg.dm(ALICE, "second")
        await wait_for(lambda: self.imsg.texts() == ["delivered"], what="the next reply")
        self.assertEqual(len([r for r in self.imsg.requests if r.get("method") == "send"]), 2)
        self.assertEqual(self.account().inbox.pending(), [])

    async def test_full_disk_access_in_status(self):
        """A child that cannot open chat.db exits at start: status names the fix (Full Disk Access) and the account retries with backoff until it works."""
        self.imsg, self.cli_path = await start_imsg(self)
        self.imsg.on_start.append({"err": "Error: unable to open database file: /Users/me/Library/Messages/chat.db (authorization denied)\n", "exit": 1})
        self.model, self.model_url = await start_fake(self)
        await self.gateway(channels={"imessage": {"cliPath": self.cli_path}}, **model_config(self.model_url))
        await wait_for(lambda: "Full Disk Access" in (self.account().snapshot().get("lastError") or ""), what="the fix in status")
        self.assertIn("chat.db", self.account().snapshot()["lastError"])
        await wait_for(lambda: self.account().connected, timeout=15, what="connected once the child can read chat.db")
        self.assertNotIn("lastError", self.account().snapshot())

    async def test_typing_refused_is_not_asked_again(self):
        """Without imsg's private-API mode typing is refused once; that child is not asked again, and the reply is delivered."""
        await self.start(imessage={"dmPolicy": "open"}, replies=[openai_text("no dots")])
        self.imsg.typing_supported = False
        await self.connected()
        self.imsg.dm(ALICE, "hi")
        await wait_for(lambda: self.imsg.texts() == ["no dots"], what="the reply")
        self.assertEqual(len([r for r in self.imsg.requests if r.get("method") == "typing"]), 1)


class Gateway(ProcessProtocol):
    """`openclaw gateway run` as a child process."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred = Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(reason.value)


class RestartTests(IMessageMixin, TestCase):
    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs (a real gateway process and its imsg child): the next gateway answers that question once and the message sent meanwhile once."""
        self.imsg, self.cli_path = await start_imsg(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"imessage": {"cliPath": self.cli_path, "dmPolicy": "open"}},
            **model_config(self.model_url),
        }
        (home / ".openclaw").mkdir(parents=True)
        (home / ".openclaw" / "openclaw.json").write_text(json.dumps(config))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}

        def spawn():
            process = Gateway()
            reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "openclaw", "gateway", "run", "--port", "0"], env=env)
            return process

        first = spawn()
        self.addCleanup(lambda: first.ended if first.ended.called else (first.transport.signalProcess("KILL"), first.ended)[1])
        await wait_for(lambda: self.subscribes(), timeout=30, what="the gateway subscribed")
        self.imsg.dm(ALICE, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        child = self.imsg.child
        first.transport.signalProcess("KILL")
        await first.ended
        await child.gone  # imsg sees its stdin close and exits
        self.imsg.dm(ALICE, "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.imsg.texts()) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.imsg.texts(), ["answer one", "answer two"], second.output.decode()[-2000:])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked.count("question one"), 2)
        self.assertEqual(asked.count("question two"), 1)
