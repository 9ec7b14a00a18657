"""
Signal end to end: the gateway against a fake signal-cli daemon
(tests/fakes_signal.py: HTTP JSON-RPC + Server-Sent Events) and the fake
model provider (tests/fakes.py), on loopback; plus the sans-IO parts.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from openclaw.channels.interfaces import DM, GROUP, AccountConfig, ChannelError, ChannelHost, ConfigProblem, Rejected, RetryAfter, Target, Unreachable
from openclaw.channels.signal.api import map_error
from openclaw.channels.signal.events import normalize
from openclaw.channels.signal.platform import NEEDS, SignalPlatform, base_url
from tests.fakes import openai_text, start_fake
from tests.fakes_signal import ACCOUNT, Fault, start_signal
from tests.fakes_telegram import wait_for
from tests import schemas
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
ALICE = "+15551230001"
GROUP_ID = "Pmpi+EfPWmsxiomLe9Nx2XF9HOE483p6iKiFj65iMwI="


class SignalMixin(GatewayMixin):
    timeout = 60

    async def start(self, signal=None, replies=(), keepalive=15.0, **config):
        self.fake, self.url = await start_signal(self, keepalive=keepalive)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"account": ACCOUNT, "httpUrl": self.url, **(signal or {})}
        await self.gateway(channels={"signal": section}, **model_config(self.model_url), **config)
        return self.service

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("signal", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    def sends(self):
        return [r for r in self.fake.requests if r.get("method") == "send"]

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor
        )
        return code, out.decode(), err.decode()


class RoundTripTests(SignalMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown sender gets a code (the agent never sees it); `openclaw pairing approve signal` (a subprocess) lets the next message through; the reply comes back chunked at textChunkLimit, quoting the question, with typing started and stopped."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 150 for i in range(3))
        await self.start(signal={"textChunkLimit": 800}, replies=[openai_text(long)])
        await self.connected()
        self.fake.dm(ALICE, "hello there")
        text = await wait_for(lambda: next((t for t in self.fake.texts(ALICE) if CODE.search(t)), None), what="a pairing code")
        code = CODE.search(text).group(1)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve signal {code}", text)

        status, out, err = await self.cli("pairing", "list", "signal")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "signal", code)
        self.assertEqual(status, 0, err)

        question = self.fake.dm(ALICE, "what is the plan?")
        await wait_for(lambda: len(self.fake.texts(ALICE)) >= 4, what="the chunked reply")
        await self.pause(0.3)
        replies = self.fake.sent[1:]
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["message"]) <= 800 for r in replies))
        self.assertEqual(" ".join(" ".join(r["message"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual(replies[0]["params"]["recipient"], [ALICE])
        self.assertEqual((replies[0]["params"]["quoteTimestamp"], replies[0]["params"]["quoteAuthor"]), (question, ALICE))
        self.assertNotIn("quoteTimestamp", replies[1]["params"])
        self.assertIn("what is the plan?", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.assertEqual(self.fake.typing[0], {"recipient": [ALICE]})
        self.assertEqual(self.fake.typing[-1], {"recipient": [ALICE], "stop": True})

    async def test_uuid_only_sender(self):
        """A sender who hides their number is `uuid:<id>`: allowFrom matches it and the reply goes to the UUID."""
        uuid = "123e4567-e89b-42d3-a456-426614174000"
        await self.start(signal={"dmPolicy": "allowlist", "allowFrom": [f"uuid:{uuid}"]}, replies=[openai_text("hi stranger")])
        await self.connected()
        self.fake.dm(None, "hello", uuid=uuid, name=None)
        await wait_for(lambda: self.fake.sent, what="the reply")
        self.assertEqual(self.fake.sent[0]["params"]["recipient"], [uuid])
        self.assertEqual(self.fake.sent[0]["chat"], f"uuid:{uuid}")

    async def test_group_mention_gating(self):
        """In a listed group only native mentions of the bot (or quotes of its messages) reach the agent, in the group's session; replies go to the groupId; the bot's own messages synced from another device are ignored."""
        await self.start(signal={"groups": {GROUP_ID: {}}}, replies=[openai_text("hi group"), openai_text("hi again")])
        await self.connected()
        self.fake.group(GROUP_ID, "+15550000001", "chatting among ourselves")
        self.fake.group("b3RoZXItZ3JvdXAtaWQtdGhhdC1pcy1ub3QtbGlzdGVk", "+15550000001", "unlisted", mention=True)
        self.fake.push(self.fake.envelope(ACCOUNT, None, "Me", syncMessage={"sentMessage": {"destination": None, "timestamp": 1, "message": "sent from my phone", "groupInfo": {"groupId": GROUP_ID}}}))
        asked = self.fake.group(GROUP_ID, "+15550000002", "what time is it?", mention=True)
        await wait_for(lambda: self.fake.texts(GROUP_ID), what="the group reply")
        self.assertEqual(self.fake.sent[0]["params"]["groupId"], GROUP_ID)
        self.assertEqual((self.fake.sent[0]["params"]["quoteTimestamp"], self.fake.sent[0]["params"]["quoteAuthor"]), (asked, "+15550000002"))
        self.assertIn("Bob: @Claw Bot what time is it?", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.fake.group(GROUP_ID, "+15550000003", "and you?", quote_bot=self.fake.sent[0]["timestamp"])
        await wait_for(lambda: len(self.fake.texts(GROUP_ID)) == 2, what="the answer to a quote")
        self.assertEqual(len(self.model.requests), 2)
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:signal:group:{GROUP_ID}"))

    async def test_status_and_probe(self):
        """channels.status reports the account truthfully: connected, last inbound/outbound, and a live probe (check + version)."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("pong")])
        await self.connected()
        self.fake.dm(ALICE, "ping")
        await wait_for(lambda: self.fake.sent, what="the reply")
        ws, _ = await self.connect()
        payload = (await ws.request("channels.status", {"probe": True}))["payload"]
        schemas.validate(3, "ChannelsStatusResult", payload)
        schemas.validate(4, "ChannelsStatusResult", payload)
        row = payload["channelAccounts"]["signal"][0]
        self.assertEqual((row["configured"], row["running"], row["connected"], row["mode"], row["account"]), (True, True, True, "http", ACCOUNT))
        self.assertIsInstance(row["lastInboundAt"], int)
        self.assertIsInstance(row["lastOutboundAt"], int)
        self.assertEqual((row["probe"]["ok"], row["probe"]["version"]), (True, "0.13.99-fake"))
        self.assertNotIn("lastError", row)

    async def test_message_tool_send_with_attachment(self):
        """`send` to a Signal group with bytes: one message with a data-URI attachment and the caption."""
        await self.start(signal={"dmPolicy": "open"})
        await self.connected()
        ws, _ = await self.connect()
        res = await ws.request("send", {"channel": "signal", "to": f"signal:group:{GROUP_ID}", "message": "see this", "buffer": base64.b64encode(b"PNGDATA").decode(), "filename": "a b.png", "contentType": "image/png", "idempotencyKey": "k1"})
        self.assertTrue(res["ok"], res)
        (sent,) = self.fake.sent
        self.assertEqual(sent["params"]["groupId"], GROUP_ID)
        self.assertEqual(sent["params"]["attachments"], ["data:image/png;filename=a_b.png;base64," + base64.b64encode(b"PNGDATA").decode()])
        self.assertEqual(sent["message"], "see this")

    async def test_media_urls_are_fetched_within_the_cap(self):
        """A media URL is fetched and sent as a data URI; one larger than mediaMaxMb (sent chunked, without a length) is refused and nothing is sent."""
        class Files(Resource):
            isLeaf = True

            def render_GET(self, request):
                if request.path == b"/small.jpg":
                    request.setHeader(b"Content-Type", b"image/jpeg")
                    return b"JPEGDATA"
                for _ in range(3):
                    request.write(b"x" * (512 * 1024))  # chunked: no Content-Length to check up front
                request.finish()
                return NOT_DONE_YET

        files = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(Files()))
        self.addCleanup(files.stopListening)
        base = f"http://127.0.0.1:{files.getHost().port}"
        await self.start(signal={"dmPolicy": "open", "mediaMaxMb": 1})
        await self.connected()
        ws, _ = await self.connect()
        res = await ws.request("send", {"channel": "signal", "to": ALICE, "message": "pic", "mediaUrl": f"{base}/small.jpg", "idempotencyKey": "k1"})
        self.assertTrue(res["ok"], res)
        self.assertEqual(self.fake.sent[0]["params"]["attachments"], ["data:image/jpeg;filename=small.jpg;base64," + base64.b64encode(b"JPEGDATA").decode()])
        res = await ws.request("send", {"channel": "signal", "to": ALICE, "message": "big", "mediaUrl": f"{base}/big.bin", "idempotencyKey": "k2"})
        self.assertFalse(res["ok"])
        self.assertIn("larger than", json.dumps(res["error"]))
        self.assertEqual(len(self.fake.sent), 1)


class StreamTests(SignalMixin, TestCase):
    async def test_stream_drop_resumes_after_last_event(self):
        """The event stream drops: the account reconnects with Last-Event-ID, and a message that came meanwhile is answered once."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("one"), openai_text("two")])
        await self.connected()
        self.fake.dm(ALICE, "first")
        await wait_for(lambda: self.fake.texts() == ["one"], what="the first answer")
        seen = self.fake.events[-1][0]
        self.fake.drop_streams()
        await wait_for(lambda: "event stream dropped" in (self.account().last_error or ""), what="the drop in status")
        self.fake.dm(ALICE, "while you were away")
        await wait_for(lambda: self.fake.texts() == ["one", "two"], timeout=15, what="the missed message answered")
        self.assertEqual(self.fake.stream_ids, [None, seen])
        self.assertEqual(self.account().reconnect_attempts, 1)
        await self.pause(0.5)
        self.assertEqual([r["body"]["messages"][-1]["content"] for r in self.model.requests], ["first", "while you were away"])

    async def test_clean_end_and_unknown_id_replay_without_duplicates(self):
        """The daemon ends the stream and then does not know our last id (it replays everything it kept): nothing is answered twice."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("one"), openai_text("two")])
        await self.connected()
        self.fake.dm(ALICE, "first")
        await wait_for(lambda: self.fake.texts() == ["one"], what="the first answer")
        self.fake.started += 1  # ids from before are unknown now
        self.fake.events = [(f"{self.fake.started}-{i + 1}", data) for i, (_, data) in enumerate(self.fake.events)]
        self.fake.drop_streams(abort=False)
        self.fake.dm(ALICE, "second")
        await wait_for(lambda: self.fake.texts() == ["one", "two"], timeout=15, what="the second answer")
        await self.pause(0.5)
        self.assertEqual(self.fake.texts(), ["one", "two"])
        self.assertEqual(len(self.model.requests), 2)
        self.assertNotIn(self.fake.stream_ids[1], [eid for eid, _ in self.fake.events])  # so the daemon sent all it kept

    async def test_silent_stream_is_reopened(self):
        """Keepalives stop (a stalled daemon or proxy): after idleTimeoutSeconds the stream is dropped and opened again."""
        await self.start(signal={"dmPolicy": "open", "idleTimeoutSeconds": 1}, replies=[openai_text("awake")], keepalive=0.2)
        await self.connected()
        await self.pause(1.5)
        self.assertEqual(self.account().reconnect_attempts, 0)  # keepalives hold it open
        self.fake.keepalives = False
        await wait_for(lambda: self.account().reconnect_attempts >= 1, timeout=10, what="the silent stream dropped")
        self.assertIn("silent for 1 s", self.account().last_error)
        self.fake.keepalives = True
        await self.connected()
        self.fake.dm(ALICE, "hello?")
        await wait_for(lambda: self.fake.texts() == ["awake"], timeout=15, what="the answer")

    async def test_daemon_down_shows_the_fix_and_retries(self):
        """No daemon at httpUrl: status says how to start it; the account keeps retrying with backoff and connects once it is up."""
        closed = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
        port = closed.getHost().port
        await closed.stopListening()
        self.model, self.model_url = await start_fake(self)
        await self.gateway(channels={"signal": {"account": ACCOUNT, "httpUrl": f"http://127.0.0.1:{port}"}}, **model_config(self.model_url))
        await wait_for(lambda: self.account().reconnect_attempts >= 1, what="a failed attempt")
        error = self.account().snapshot()["lastError"]
        self.assertIn(f"cannot reach signal-cli at http://127.0.0.1:{port}", error)
        self.assertIn(f"signal-cli -a {ACCOUNT} daemon --http", error)
        self.assertEqual(self.account().state, "backoff")

    async def test_wrong_account_stops(self):
        """A daemon without the configured account refuses the stream (400): the account stops with the reason instead of looping."""
        self.fake, self.url = await start_signal(self)
        self.model, self.model_url = await start_fake(self)
        await self.gateway(channels={"signal": {"account": "+15550001234", "httpUrl": self.url}}, **model_config(self.model_url))
        await wait_for(lambda: self.account().state == "misconfigured", what="stopped")
        self.assertIn("does not have this account", self.account().snapshot()["lastError"])
        await self.pause(2.5)
        self.assertEqual(self.fake.stream_requests, 1)


class SendErrorTests(SignalMixin, TestCase):
    async def test_server_error_is_retried(self):
        """A 5xx from the daemon on send is transient: the same reply goes again and arrives once."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("persistent")])
        await self.connected()
        self.fake.fault("send", Fault(status=502))
        self.fake.dm(ALICE, "hi")
        await wait_for(lambda: self.fake.texts() == ["persistent"], timeout=15, what="the retried reply")
        self.assertEqual(len(self.sends()), 2)

    async def test_rate_limit_waits(self):
        """RATE_LIMIT_FAILURE with retryAfterSeconds holds that chat that long, then the same reply goes once; HTTP 429 with Retry-After too."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("patience"), openai_text("more patience")])
        await self.connected()
        self.fake.rate_limited.append(1)
        started = reactor.seconds()
        self.fake.dm(ALICE, "hi")
        await wait_for(lambda: self.fake.texts() == ["patience"], timeout=15, what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.fake.fault("send", Fault(status=429, retry_after="1"))
        started = reactor.seconds()
        self.fake.dm(ALICE, "again")
        await wait_for(lambda: self.fake.texts() == ["patience", "more patience"], timeout=15, what="the second reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(len(self.sends()), 4)

    async def test_unregistered_and_untrusted_are_dropped(self):
        """A recipient not on Signal, or whose safety number changed, drops the reply at once (with the trust command in status); other chats are served."""
        await self.start(signal={"dmPolicy": "open"}, replies=[openai_text("a"), openai_text("b"), openai_text("c")])
        await self.connected()
        self.fake.unregistered.add("+15550000404")
        self.fake.untrusted.add("+15550000405")
        self.fake.dm("+15550000404", "hi")
        await wait_for(lambda: "not on Signal" in (self.account().last_error or ""), what="unregistered in status")
        self.fake.dm("+15550000405", "hi")
        await wait_for(lambda: "safety number" in (self.account().last_error or ""), what="untrusted in status")
        self.assertIn(f"signal-cli -a {ACCOUNT} trust -a +15550000405", self.account().last_error)
        self.fake.dm(ALICE, "hi")
        await wait_for(lambda: self.fake.texts() == ["c"], what="another chat served")
        self.assertEqual(len(self.sends()), 3)
        # the daemon has the send before the account marks the work done
        await wait_for(lambda: self.account().inbox.pending() == [], what="the inbox emptied")


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


class RestartTests(SignalMixin, TestCase):
    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs (a real gateway process): the next gateway resumes the stream after its journaled event id and answers the interrupted question and the one sent meanwhile, once each."""
        self.fake, self.url = await start_signal(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"signal": {"account": ACCOUNT, "httpUrl": self.url, "dmPolicy": "open"}},
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
        await wait_for(lambda: self.fake.streams, timeout=30, what="the gateway streaming")
        self.fake.dm(ALICE, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        self.fake.dm(ALICE, "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.fake.texts()) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.fake.texts(), ["answer one", "answer two"], second.output.decode()[-2000:])
        self.assertEqual(self.fake.stream_ids[1], self.fake.events[0][0])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked.count("question one"), 2)
        self.assertEqual(asked.count("question two"), 1)


class UnitTests(TestCase):
    def test_map_error(self):
        """signal-cli's errors steer the framework: rate limits wait, unregistered/untrusted drop, network failures retry, bad params reject, a missing account is config."""
        results = lambda *kinds, **extra: {"response": {"timestamp": 1, "results": [{"recipientAddress": {"number": "+1555"}, "type": k, **extra} for k in kinds]}}
        error = map_error("send", -1, "Failed to send message", results("RATE_LIMIT_FAILURE", retryAfterSeconds=42, token="t"))
        self.assertIsInstance(error, RetryAfter)
        self.assertEqual(error.seconds, 42)
        self.assertIn("captcha", str(error))
        self.assertEqual(map_error("send", -5, "Rate limit", None).seconds, 60)
        self.assertIsInstance(map_error("send", -1, "Failed to send message", results("UNREGISTERED_FAILURE")), Unreachable)
        self.assertIsInstance(map_error("send", -4, "untrusted", results("IDENTITY_FAILURE"), "+1999"), Unreachable)
        self.assertEqual(type(map_error("send", -1, "Failed to send message", results("NETWORK_FAILURE"))), ChannelError)
        self.assertIsInstance(map_error("send", -1, "Invalid group id", None), Rejected)
        self.assertIsInstance(map_error("send", -32602, "Specified account does not exist", None, "+1"), ConfigProblem)
        self.assertEqual(type(map_error("send", -3, "IO", None)), ChannelError)

    def test_normalize(self):
        """DMs by number or uuid, groups by groupId, mentions written out (and of the bot: mentions_me), own messages, syncs, reactions and typing dropped."""
        env = lambda **data: {"envelope": {"sourceNumber": ALICE, "sourceUuid": "u-1", "sourceName": "Alice", "timestamp": 7, **data}, "account": ACCOUNT}
        message = normalize(env(dataMessage={"timestamp": 7, "message": "hi"}), ACCOUNT)
        self.assertEqual((message.chat_id, message.chat_type, message.sender_id, message.message_id, message.sender_name), (ALICE, DM, ALICE, "7", "Alice"))
        hidden = normalize({"envelope": {"sourceUuid": "123e4567-e89b-42d3-a456-426614174000", "timestamp": 8, "dataMessage": {"message": "x"}}}, ACCOUNT)
        self.assertEqual(hidden.sender_id, "uuid:123e4567-e89b-42d3-a456-426614174000")
        group = normalize(env(dataMessage={"timestamp": 9, "message": "\ufffc and \ufffc", "groupInfo": {"groupId": GROUP_ID, "groupName": "G"}, "mentions": [{"name": "Bot", "number": ACCOUNT, "start": 0, "length": 1}, {"name": "Eve", "number": "+1", "start": 6, "length": 1}]}), ACCOUNT)
        self.assertEqual((group.chat_id, group.chat_type, group.chat_title, group.text, group.mentions_me), (GROUP_ID, GROUP, "G", "@Bot and @Eve", True))
        self.assertIsNone(normalize({"envelope": {"sourceNumber": ACCOUNT, "timestamp": 1, "dataMessage": {"message": "me"}}}, ACCOUNT))
        self.assertIsNone(normalize(env(syncMessage={"sentMessage": {"message": "x"}}), ACCOUNT))
        self.assertIsNone(normalize(env(typingMessage={"action": "STARTED"}), ACCOUNT))
        self.assertIsNone(normalize(env(dataMessage={"timestamp": 7, "reaction": {"emoji": "👍"}}), ACCOUNT))
        self.assertIsNone(normalize(env(dataMessage={"timestamp": 7, "message": ""}), ACCOUNT))
        self.assertEqual(normalize(env(dataMessage={"timestamp": 7, "attachments": [{"contentType": "image/jpeg"}]}), ACCOUNT).media, ("image",))

    def test_targets_and_config(self):
        """Upstream's delivery targets parse; the platform needs an account and takes httpUrl or httpHost/httpPort, never credentials in the URL."""
        from twisted.internet.task import Clock

        platform = SignalPlatform()
        host = ChannelHost(Clock(), None)
        account = AccountConfig("signal", "default", {"account": ACCOUNT, "httpUrl": "127.0.0.1:9999/"})
        self.assertEqual(base_url(account), "http://127.0.0.1:9999")
        self.assertEqual(base_url(AccountConfig("signal", "default", {"httpHost": "::1", "httpPort": 8081})), "http://[::1]:8081")
        self.assertRaises(ConfigProblem, base_url, AccountConfig("signal", "default", {"httpUrl": "http://u:p@host:1"}))
        self.assertFalse(platform.configured(AccountConfig("signal", "default", {})))
        self.assertEqual(platform.unconfigured(AccountConfig("signal", "default", {})), NEEDS)
        self.assertRaises(ConfigProblem, platform.build, AccountConfig("signal", "default", {"account": "bob"}), host)
        channel = platform.build(account, host)
        self.assertEqual(channel.parse_target("signal:+1 (555) 123-4567"), Target("+15551234567"))
        self.assertEqual(channel.parse_target(f"signal:group:{GROUP_ID}"), Target(GROUP_ID))
        self.assertEqual(channel.parse_target("uuid:123E4567-E89B-42D3-A456-426614174000"), Target("uuid:123e4567-e89b-42d3-a456-426614174000"))
        self.assertEqual(channel.parse_target("123e4567-e89b-42d3-a456-426614174000"), Target("uuid:123e4567-e89b-42d3-a456-426614174000"))
        self.assertEqual(channel.parse_target("username:bob.42"), Target("username:bob.42"))
        for bad in ("", "bob", "group:!!", "+1", "uuid:nope"):
            self.assertRaises(ValueError, channel.parse_target, bad)
        self.assertEqual(channel._address("+15551234567"), {"recipient": ["+15551234567"]})
        self.assertEqual(channel._address(GROUP_ID), {"groupId": GROUP_ID})
        self.assertEqual(channel._address("username:bob.42"), {"username": ["bob.42"]})
