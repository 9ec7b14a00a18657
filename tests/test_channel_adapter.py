"""
Out-of-process channel adapters (role "channel"): the frames and the channel
on a fake clock; a real gateway on loopback with raw WebSocket adapters and
the fake model provider; and examples/channel_adapter.py run as a child
process against it, its sender approved with `openclaw pairing approve`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from openclaw.channels.adapter import channel as adapter_channel
from openclaw.channels.adapter import frames
from openclaw.channels.adapter.channel import AWAY_LIMIT, AdapterChannel, AdapterLink, Declared
from openclaw.channels.adapter.registry import Adapters
from openclaw.channels.interfaces import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IInbound,
    Media,
    Moved,
    Outbound,
    Rejected,
    RetryAfter,
    Target,
    Unreachable,
    Unsupported,
)
from openclaw.channels.outbox import Outbox
from openclaw.gateway.methods import redact_config
from openclaw.protocol.errors import GatewayError, InvalidInput
from openclaw.protocol.versions import V3, V4
from openclaw.shape import check
from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.fakes_telegram import wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params

ADAPTER_TOKEN = "console-adapter-token-0123456789"
EXAMPLE = REPO / "examples" / "channel_adapter.py"


class FakeLink:
    def __init__(self, conn_id: str = "c1") -> None:
        self.conn_id = conn_id
        self.client = {"id": "gateway-client", "version": "1.0"}
        self.events: list[tuple[str, dict]] = []
        self.closed: tuple[int, str] | None = None

    def send_direct(self, name, payload):
        self.events.append((name, payload))

    def close(self, code, reason=""):
        self.closed = (code, reason)

    def sends(self):
        return [p for n, p in self.events if n == "channel.send"]


@implementer(IInbound)
class FakeSink:
    def __init__(self) -> None:
        self.messages = []
        self.states: list = []
        self.problems: list = []
        self.waiting = 0
        self.position = None

    def cursor(self):
        return self.position

    def received(self, message, cursor=None):
        if cursor is not None:
            self.position = cursor
        if any(m.key == message.key for m in self.messages):
            return False
        self.messages.append(message)
        return True

    def advance(self, cursor):
        self.position = cursor

    def connected(self):
        self.states.append("connected")

    def disconnected(self, reason):
        self.states.append(("disconnected", reason))

    def backlog(self):
        return self.waiting

    def problem(self, text):
        self.problems.append(text)


def account(channel="console", account_id="default", **config):
    return AccountConfig(channel, account_id, {"adapter": True, **config})


def dm(sender="alice", message_id="m1", text="hi", **extra):
    return {"chatId": sender, "chatType": "dm", "senderId": sender, "messageId": message_id, "text": text, **extra}


def result(d):
    """A fired Deferred's result (the Failure's exception if it failed)."""
    box = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    value = box[0]
    return value.value if hasattr(value, "value") and hasattr(value, "getTraceback") else value


class FrameTests(SynchronousTestCase):
    def test_inbound_message(self):
        """channel.inbound params become the framework's message: thread kind defaults to thread, reply and media carried; oversize cursor, media and selfIds refused as bad input."""
        params = dm(threadId="t1", replyTo={"messageId": "m0", "senderName": "Bob", "text": "earlier", "fromMe": True}, media=["photo"], mentionsMe=True, ts=5, chatTitle="x")
        self.assertEqual(check(frames.INBOUND, params)[0], [])
        message = frames.inbound_message("console", "default", params)
        self.assertEqual((message.chat_id, message.thread_id, message.thread_kind, message.reply_to.message_id, message.reply_to.from_me, message.media, message.mentions_me, message.ts_ms), ("alice", "t1", "thread", "m0", True, ("photo",), True, 5))
        self.assertEqual(frames.inbound_message("console", "default", dm(threadId="7", threadKind="topic")).thread_kind, "topic")
        self.assertRaises(InvalidInput, frames.cursor_of, {"cursor": "x" * 5000})
        self.assertEqual(frames.cursor_of({"cursor": {"offset": 3}}), {"offset": 3})
        self.assertRaises(InvalidInput, frames.inbound_message, "console", "default", dm(media=["photo"] * 21))
        self.assertRaises(InvalidInput, frames.self_ids, {"selfIds": ["x"] * 51})
        self.assertNotEqual(check(frames.INBOUND, {**dm(), "extra": 1})[0], [])

    def test_send_event_and_errors(self):
        """A send goes out with only the fields it has (media bytes in base64, the journal key); each error kind maps to the error that steers the outbox."""
        event = frames.send_event("s1", Target("alice", "t1", "m1"), Outbound("hello", Media(data=b"\x00\x01", filename="a.bin", content_type="application/x"), silent=True, key="k1"))
        self.assertEqual(event, {"id": "s1", "chatId": "alice", "text": "hello", "threadId": "t1", "replyTo": "m1", "silent": True, "key": "k1", "media": {"data": "AAE=", "filename": "a.bin", "contentType": "application/x"}})
        self.assertEqual(frames.send_event("s2", Target("bob"), Outbound("x")), {"id": "s2", "chatId": "bob", "text": "x"})
        retry = frames.send_error({"kind": "retry", "retryAfterMs": 2500, "message": "slow down"})
        self.assertIsInstance(retry, RetryAfter)
        self.assertEqual(retry.seconds, 2.5)
        moved = frames.send_error({"kind": "moved", "chatId": "new"})
        self.assertEqual((type(moved), moved.chat_id), (Moved, "new"))
        for kind, cls in (("unreachable", Unreachable), ("rejected", Rejected), ("unsupported", Unsupported), ("auth", AuthFailed)):
            self.assertIsInstance(frames.send_error({"kind": kind}), cls)
        transient = frames.send_error({"kind": "transient", "message": "try again"})
        self.assertEqual((type(transient), str(transient)), (ChannelError, "try again"))


class ChannelTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.closed = []
        self.channel = AdapterChannel(account(), self.clock, wait=30.0, on_close=self.closed.append)
        self.sink = FakeSink()
        self.run = self.channel.run(self.sink)

    def test_waits_for_an_adapter(self):
        """Without an adapter the account says what it waits for; a send waits, and goes out (in order) once one registers."""
        self.assertIn("waiting for an adapter", self.sink.problems[0])
        first = self.channel.send(Target("alice"), Outbound("one"))
        second = self.channel.send(Target("bob"), Outbound("two"))
        self.clock.advance(10)
        link = FakeLink()
        self.channel.attach(link, Declared(), {"connId": "c1"})
        self.assertEqual(self.sink.states, ["connected"])
        self.assertEqual([(s["chatId"], s["text"]) for s in link.sends()], [("alice", "one"), ("bob", "two")])
        self.channel.answered({"id": link.sends()[0]["id"], "messageId": "p1"})
        self.assertEqual(result(first).message_id, "p1")
        self.channel.answered({"id": link.sends()[1]["id"], "messageId": "p2", "chatId": "bob2"})
        self.assertEqual(result(second).chat_id, "bob2")
        self.clock.advance(60)  # the wait timers were cancelled
        self.assertEqual(self.channel.snapshot()["sendsWaiting"], 0)

    def test_send_while_away_fails_after_the_wait(self):
        """A send waits adapterWaitSeconds for the adapter, then fails (for good: Unreachable) saying so."""
        d = self.channel.send(Target("alice"), Outbound("hello"))
        self.clock.advance(29)
        self.assertFalse(d.called)
        self.clock.advance(1)
        error = result(d)
        self.assertIsInstance(error, Unreachable)
        self.assertEqual(str(error), "the console:default adapter is not connected (waited 30 s for it)")

    def test_waiting_sends_are_bounded(self):
        """At most AWAY_LIMIT sends wait per account; the next fails at once. adapterWaitSeconds 0: no waiting at all."""
        waiting = [self.channel.send(Target(f"c{i}"), Outbound("x")) for i in range(AWAY_LIMIT)]
        self.assertFalse(any(d.called for d in waiting))
        over = result(self.channel.send(Target("late"), Outbound("x")))
        self.assertIsInstance(over, Unreachable)
        self.assertIn(f"{AWAY_LIMIT} sends already wait", str(over))
        eager = AdapterChannel(account(), self.clock, wait=0)
        self.assertIn("adapterWaitSeconds is 0", str(result(eager.send(Target("a"), Outbound("x")))))
        self.channel.close()
        self.assertTrue(all(isinstance(result(d), ChannelError) for d in waiting))
        self.assertEqual(self.closed, [self.channel])

    def test_disconnect_fails_unconfirmed_sends_for_a_retry(self):
        """A send the adapter got but did not confirm fails transiently when it goes away (the outbox retries it); the account shows disconnected."""
        link = FakeLink()
        self.channel.attach(link, Declared(), {})
        d = self.channel.send(Target("alice"), Outbound("hello"))
        self.channel.detach(FakeLink("other"), "not this one")  # another connection's leaving changes nothing
        self.assertFalse(d.called)
        self.channel.detach(link, "connection closed")
        error = result(d)
        self.assertEqual(type(error), ChannelError)
        self.assertIn("went away before it confirmed", str(error))
        self.assertEqual(self.sink.states[-1], ("disconnected", "the adapter disconnected (connection closed); sends wait 30 s for it to reconnect"))

    def test_outbox_resends_after_a_reconnect(self):
        """Through the outbox: the unconfirmed chunk is sent again, with the same key, on the adapter's next connection."""
        outbox = Outbox(self.clock, self.channel.send, self.channel.limits)
        first = FakeLink("c1")
        self.channel.attach(first, Declared(), {})
        done = outbox.send(Target("alice"), Outbound("chunk", key="acct:alice:m1:0"))
        self.channel.detach(first, "connection closed")
        self.clock.advance(5)  # the outbox's retry now waits for an adapter
        second = FakeLink("c2")
        self.channel.attach(second, Declared(), {})
        [again] = second.sends()
        self.assertEqual((again["key"], again["text"]), (first.sends()[0]["key"], "chunk"))
        self.channel.answered({"id": again["id"], "messageId": "p9"})
        self.assertEqual(result(done).message_id, "p9")

    def test_answers(self):
        """channel.sent: an error kind fails the send as mapped; an unknown, repeated or timed-out id and an answer without messageId are bad input."""
        link = FakeLink()
        self.channel.attach(link, Declared(), {})
        d = self.channel.send(Target("alice"), Outbound("hello"))
        send_id = link.sends()[0]["id"]
        self.assertRaises(InvalidInput, self.channel.answered, {"id": send_id})
        self.channel.answered({"id": send_id, "error": {"kind": "rejected", "message": "too long"}})
        self.assertIsInstance(result(d), Rejected)
        self.assertRaises(InvalidInput, self.channel.answered, {"id": send_id, "messageId": "x"})
        self.assertRaises(InvalidInput, self.channel.answered, {"id": "nope", "messageId": "x"})
        cancelled = self.channel.send(Target("alice"), Outbound("slow"))
        cancelled.cancel()  # the outbox's send timeout
        cancelled.addErrback(lambda f: None)
        self.assertRaises(InvalidInput, self.channel.answered, {"id": link.sends()[1]["id"], "messageId": "late"})

    def test_inbound(self):
        """Inbound is journaled (duplicates said so); refused, retryably, while the account is stopped or too many messages wait."""
        self.assertTrue(self.channel.receive(dm(cursor={"n": 1})))
        self.assertFalse(self.channel.receive(dm()))
        self.assertEqual((self.sink.messages[0].channel, self.sink.position, self.channel.cursor()), ("console", {"n": 1}, {"n": 1}))
        self.sink.waiting = adapter_channel.INBOUND_BACKLOG
        busy = self.assertRaises(GatewayError, self.channel.receive, dm(message_id="m2"))
        self.assertEqual((busy.code, busy.retryable, busy.retry_after_ms), ("UNAVAILABLE", True, 2000))
        self.run.cancel()
        self.run.addErrback(lambda f: None)
        stopped = self.assertRaises(GatewayError, self.channel.receive, dm(message_id="m3"))
        self.assertIn("not running", stopped.message)

    def test_declared_limits_and_typing(self):
        """What the adapter declares sets the hard limit, the chunk size, typing and its own ids; typing goes out only with a link."""
        self.channel.typing(Target("alice"))
        link = FakeLink()
        self.channel.attach(link, Declared(max_text=500, typing=False, self_ids=frozenset({"bot"})), {})
        self.assertEqual((self.channel.limits.max_text, self.channel.limits.chunk, self.channel.limits.typing_every, self.channel.self_ids), (500, 500, None, frozenset({"bot"})))
        self.channel.typing(Target("alice", "t1"))
        self.assertEqual(link.events, [("channel.typing", {"chatId": "alice", "threadId": "t1"})])
        self.assertIsInstance(result(self.channel.poll(Target("a"), "q", ["a", "b"], False, None)), Unsupported)
        self.assertRaises(ValueError, self.channel.parse_target, " ")
        self.assertEqual(self.channel.parse_target(" alice ", "t", None), Target("alice", "t"))


class RegistryTests(SynchronousTestCase):
    def setUp(self):
        self.config = {
            "channels": {
                "console": {"adapter": True, "adapterToken": ADAPTER_TOKEN, "accounts": {"work": {"adapterToken": "work-token-0123456789abcdef"}}},
                "weak": {"adapter": True, "adapterToken": "short"},
                "telegram": {"adapter": True, "botToken": "x"},
                "off": {"adapter": False},
            }
        }
        self.adapters = Adapters(lambda: self.config, ["telegram"], Clock())

    def test_access(self):
        """Adapter channels are the sections with adapter: true that no built-in platform has; a token grants the channels it belongs to (tokens under 16 characters grant nothing)."""
        self.assertEqual(self.adapters.adapter_channels(), {"console", "weak"})
        self.assertEqual(self.adapters.token_grants(ADAPTER_TOKEN), {"console"})
        self.assertEqual(self.adapters.token_grants("work-token-0123456789abcdef"), {"console"})
        self.assertEqual(self.adapters.token_grants("short"), frozenset())
        self.assertEqual(self.adapters.token_grants(""), frozenset())
        self.assertIsNone(self.adapters.platform_for("telegram", self.config["channels"]["telegram"]))
        self.assertIsNone(self.adapters.platform_for("off", self.config["channels"]["off"]))
        self.assertEqual(self.adapters.platform_for("console", self.config["channels"]["console"]).label, "console")

    def test_platform_config(self):
        """An account with a weak adapterToken or an unusable adapterWaitSeconds does not start (status says why)."""
        platform = self.adapters.platform_for("console", self.config["channels"]["console"])
        host = ChannelHost(Clock(), None)
        self.assertIn("at least 16 characters", str(self.assertRaises(ConfigProblem, platform.build, account(adapterToken="short"), host)))
        self.assertIn("adapterWaitSeconds", str(self.assertRaises(ConfigProblem, platform.build, account(adapterWaitSeconds=-1), host)))
        self.assertIn("adapterWaitSeconds", str(self.assertRaises(ConfigProblem, platform.build, account(adapterWaitSeconds=True), host)))
        channel = platform.build(account(adapterToken=ADAPTER_TOKEN, adapterWaitSeconds=5), host)
        self.assertEqual((channel.wait, channel.secrets(), self.adapters.channels[("console", "default")]), (5.0, (ADAPTER_TOKEN,), channel))
        channel.close()
        self.assertEqual(self.adapters.channels, {})

    def test_register(self):
        """register: the scope must name the channel (v3 INVALID_REQUEST, v4 FORBIDDEN); built-in, unserved and unknown accounts are refused; one account per connection."""
        link = FakeLink()
        v3 = self.assertRaises(GatewayError, self.adapters.register, link, V3, ["channel:other"], {"channel": "console"})
        self.assertEqual((v3.code, v3.message), ("INVALID_REQUEST", "missing scope: channel:console"))
        v4 = self.assertRaises(GatewayError, self.adapters.register, link, V4, ["channel:other"], {"channel": "console"})
        self.assertEqual((v4.code, v4.details["missingScope"]), ("FORBIDDEN", "channel:console"))
        self.assertIn("built-in", self.assertRaises(GatewayError, self.adapters.register, link, V4, ["channel:*"], {"channel": "telegram"}).message)
        self.assertIn("adapter: true", self.assertRaises(GatewayError, self.adapters.register, link, V4, ["channel:*"], {"channel": "off"}).message)
        self.assertIn("no account", self.assertRaises(GatewayError, self.adapters.register, link, V4, ["channel:*"], {"channel": "console", "accountId": "home"}).message)
        self.assertRaises(InvalidInput, self.adapters.register, link, V4, ["channel:*"], {"channel": "console", "accountId": "../x"})
        answer = self.adapters.register(link, V4, ["channel:console"], {"channel": "console", "maxText": 300})
        self.assertEqual((answer["accountId"], answer["running"], answer["limits"]), ("default", False, {"maxText": 300, "textChunkLimit": 300}))
        other = self.assertRaises(GatewayError, self.adapters.register, link, V4, ["channel:*"], {"channel": "console", "accountId": "work"})
        self.assertIn("serves console:default already", other.message)

    def test_newer_connection_replaces_the_older(self):
        """A second connection for the same account takes over: the first is closed, its unconfirmed sends fail for a retry; only the current connection's leaving detaches."""
        channel = AdapterChannel(account(), Clock())
        self.adapters.adopt(channel)
        sink = FakeSink()
        channel.run(sink)
        old, new = FakeLink("c1"), FakeLink("c2")
        self.adapters.register(old, V4, ["channel:*"], {"channel": "console"})
        d = channel.send(Target("alice"), Outbound("x"))
        self.adapters.register(new, V4, ["channel:*"], {"channel": "console"})
        self.assertEqual(old.closed, (1000, "replaced by a newer adapter connection for console:default"))
        self.assertIsInstance(result(d), ChannelError)
        self.assertIs(channel.link, new)
        self.adapters.left(old)
        self.assertIs(channel.link, new)
        self.assertRaises(GatewayError, self.adapters.inbound, old, dm())
        self.assertEqual(self.adapters.inbound(new, dm()), {"ok": True, "duplicate": False})
        self.adapters.left(new)
        self.assertIsNone(channel.link)
        self.assertEqual(sink.states[-1][0], "disconnected")


def adapter_params(protocol=4, token=TOKEN, scopes=None, **extra):
    params = connect_params(protocol=protocol, client_id="gateway-client", mode="backend", scopes=scopes if scopes is not None else ["channel:console"], token=token, role="channel")
    params.update(extra)
    return params


class AdapterMixin(GatewayMixin):
    timeout = 60

    async def start(self, console=None, replies=(), **config):
        self.model, url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"adapter": True, "adapterToken": ADAPTER_TOKEN, **(console or {})}
        merged = model_config(url)
        channels = {"console": section, **config.pop("channels", {})}
        await self.gateway(channels=channels, **merged, **config)

    async def adapter(self, protocol=4, token=TOKEN, register=None, **connect):
        ws, res = await self.connect(adapter_params(protocol, token, **connect))
        self.assertTrue(res["ok"], res)
        if register is not False:
            answer = await ws.request("channel.register", {"channel": "console", **(register or {})})
            self.assertTrue(answer["ok"], answer)
        return ws

    def account(self):
        return self.service.channels.accounts[("console", "default")]

    async def answer_sends(self, ws, count, texts=None):
        """Answer the next C{count} channel.send events; their payloads."""
        out = []
        for _ in range(count):
            send = (await ws.event("channel.send", timeout=15))["payload"]
            res = await ws.request("channel.sent", {"id": send["id"], "messageId": f"p{len(out)}"})
            self.assertTrue(res["ok"], res)
            out.append(send)
        return out


class HandshakeTests(AdapterMixin, TestCase):
    async def test_v3_and_v4_accept_role_channel(self):
        """Both generations' connect (valid against upstream's ConnectParams, whose role is a free string) admit role channel; hello-ok (valid HelloOk) shows an adapter no presence and no health; status shows the account connected."""
        await self.start()
        for protocol in (3, 4):
            params = adapter_params(protocol, ADAPTER_TOKEN)
            ws, res = await self.connect(params)
            self.assertTrue(res["ok"], res)
            hello = res["payload"]
            self.assertEqual((hello["protocol"], hello["snapshot"]["presence"], hello["snapshot"]["health"]), (protocol, [], {}))
            self.assertIn("channel.inbound", hello["features"]["methods"])
            self.assertIn("channel.send", hello["features"]["events"])
            answer = await ws.request("channel.register", {"channel": "console"})
            self.assertEqual((answer["payload"]["channel"], answer["payload"]["running"]), ("console", True))
            await wait_for(lambda: self.account().connected, what="connected")
            operator, _ = await self.connect(connect_params(protocol=4))
            row = (await operator.request("channels.status", {}))["payload"]["channelAccounts"]["console"][0]
            self.assertEqual((row["connected"], row["mode"], row["adapterConnected"], row["adapter"]["connId"] is not None), (True, "adapter", True, True))
            schemas.validate(protocol, "ConnectParams", params)
            schemas.validate(protocol, "HelloOk", hello)

    async def test_adapter_hears_only_tick_and_shutdown(self):
        """Of the broadcasts, an adapter gets the tick (and the goodbye), not health, presence, cron or pairing."""
        await self.start()
        ws = await self.adapter(token=ADAPTER_TOKEN)
        events = self.service.core.events
        events.broadcast("health", {"ok": True})
        events.broadcast("presence", {"presence": []})
        events.emit("cron", {"jobId": "x", "action": "added"})
        events.broadcast("tick", {"ts": 1})
        tick = await ws.event("tick")
        self.assertEqual((tick["payload"], tick["seq"]), ({"ts": 1}, 1))
        self.assertEqual([e.get("event") for e in ws.events], [])

    async def test_adapter_token_stays_secret(self):
        """The adapter token is masked in config.get and in the log."""
        await self.start()
        config = redact_config({"channels": {"console": {"adapter": True, "adapterToken": ADAPTER_TOKEN}}})
        self.assertEqual(config["channels"]["console"]["adapterToken"], "__OPENCLAW_REDACTED__")
        await wait_for(lambda: self.account().running, what="the account")
        self.assertNotIn(ADAPTER_TOKEN, self.service.redactor.values(f"token {ADAPTER_TOKEN}"))

    async def test_refusals(self):
        """Role or scope not allowed: refused with the reason and closed 1008; each role calls only its own methods; register names only what it may serve."""
        await self.start(channels={"other": {"adapter": True}})
        ws, res = await self.connect(adapter_params(4, ADAPTER_TOKEN, scopes=["channel:other"]))
        self.assertEqual((res["error"]["message"], res["error"]["details"]["code"]), ("scope not allowed for role channel: channel:other", "CHANNEL_SCOPE_NOT_ALLOWED"))
        self.assertEqual((await ws.closed)[0], 1008)
        ws, res = await self.connect(adapter_params(4, TOKEN, scopes=["operator.admin"]))
        self.assertIn("scope not allowed", res["error"]["message"])
        ws, res = await self.connect(connect_params(protocol=4, token=ADAPTER_TOKEN))  # an adapter token is no operator token
        self.assertFalse(res["ok"])
        self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH")
        ws, res = await self.connect(adapter_params(4, "wrong-token-0123456789"))
        self.assertFalse(res["ok"])

        adapter = await self.adapter(token=ADAPTER_TOKEN, register=False, scopes=[])
        for method in ("health", "channels.status", "send", "chat.send"):
            error = (await adapter.request(method, {}))["error"]
            self.assertEqual(error["message"], "unauthorized role: channel", method)
        self.assertIn("register first", (await adapter.request("channel.inbound", dm()))["error"]["message"])
        error = (await adapter.request("channel.register", {"channel": "other"}))["error"]
        self.assertEqual((error["code"], error["message"]), ("FORBIDDEN", "missing scope: channel:other"))
        full = await self.adapter(register=False, scopes=[])
        self.assertIn("built-in", (await full.request("channel.register", {"channel": "telegram"}))["error"]["message"])
        self.assertIn("channels.nope is not served", (await full.request("channel.register", {"channel": "nope"}))["error"]["message"])
        operator, _ = await self.connect(connect_params(protocol=4))
        self.assertEqual((await operator.request("channel.inbound", dm()))["error"]["message"], "unauthorized role: operator")
        self.assertTrue(self.service.running)

    async def test_role_refused_without_adapter_channels(self):
        """With no channel configured for an adapter, role channel is refused at connect."""
        await self.gateway()
        ws, res = await self.connect(adapter_params(3, TOKEN, scopes=[]))
        self.assertEqual((res["error"]["code"], res["error"]["details"]["code"]), ("INVALID_REQUEST", "CHANNEL_ROLE_NOT_ALLOWED"))
        self.assertEqual((await ws.closed)[0], 1008)


class RoundTripTests(AdapterMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """An unknown DM gets a pairing code (the agent never sees it) and a pairing event; once approved the next DM runs in the main session, with typing, and the reply comes back chunked to the declared maxText, threaded to the question."""
        reply = " ".join(f"word{i}" for i in range(90))
        await self.start(replies=[openai_text(reply)])
        operator, _ = await self.connect(connect_params(protocol=4, scopes=["operator.admin", "operator.pairing"]))
        ws = await self.adapter(register={"maxText": 200})
        res = await ws.request("channel.inbound", dm("alice", "m1", "hello", senderName="Alice"))
        self.assertEqual(res["payload"], {"ok": True, "duplicate": False})
        [pairing] = await self.answer_sends(ws, 1)
        self.assertEqual(pairing["chatId"], "alice")
        self.assertIn("openclaw pairing approve console ", pairing["text"])
        event = await operator.event("pairing", timeout=10)
        self.assertEqual((event["payload"]["action"], event["payload"]["channel"]), ("requested", "console"))
        self.assertEqual(self.model.requests, [])
        listing = (await operator.request("channels.pairing.list", {"channel": "console"}))["payload"]
        [request] = listing["requests"]
        approved = await operator.request("channels.pairing.approve", {"channel": "console", "accountId": "default", "requestId": request["requestId"]})
        self.assertTrue(approved["ok"], approved)

        again = await ws.request("channel.inbound", dm("alice", "m1", "hello"))
        self.assertEqual(again["payload"]["duplicate"], True)  # a redelivery is dropped
        await ws.request("channel.inbound", dm("alice", "m2", "what is the plan?"))
        self.assertEqual(len(reply), 619)  # four chunks of at most 200
        sends = await self.answer_sends(ws, 4)
        self.assertTrue(all(len(s["text"]) <= 200 for s in sends))
        self.assertEqual(" ".join(s["text"] for s in sends), reply)
        self.assertEqual([s.get("replyTo") for s in sends], ["m2", None, None, None])
        self.assertTrue(all(s["key"] for s in sends))
        self.assertTrue(any(e.get("event") == "channel.typing" and e["payload"]["chatId"] == "alice" for e in ws.events))
        self.assertIn("what is the plan?", self.model.requests[0]["body"]["messages"][-1]["content"])
        sessions = (await operator.request("sessions.list", {}))["payload"]["sessions"]
        self.assertIn("agent:main:main", [s["key"] for s in sessions])
        await wait_for(lambda: self.account().last_outbound_at, what="lastOutboundAt")

    async def test_chat_commands_for_known_senders(self):
        """A listed sender's /status is answered by the gateway (the model never sees it); an open-policy stranger's /status is text for the model."""
        await self.start(console={"dmPolicy": "open", "allowFrom": ["alice"]}, replies=[openai_text("just text to me")])
        ws = await self.adapter()
        await ws.request("channel.inbound", dm("alice", "c1", "/status"))
        [status] = await self.answer_sends(ws, 1)
        self.assertIn("Session: agent:main:main", status["text"])
        self.assertEqual(self.model.requests, [])
        await ws.request("channel.inbound", dm("bob", "c2", "/status"))
        [answer] = await self.answer_sends(ws, 1)
        self.assertEqual((answer["chatId"], answer["text"]), ("bob", "just text to me"))
        self.assertIn("/status", self.model.requests[0]["body"]["messages"][-1]["content"])

    async def test_group_policy_and_routing(self):
        """Groups follow groupPolicy and mention gating like any channel: unmentioned is dropped, a mention runs in the group's own session."""
        await self.start(console={"dmPolicy": "open", "groupPolicy": "open"}, replies=[openai_text("group answer")])
        ws = await self.adapter()
        group = {"chatId": "g1", "chatType": "group", "senderId": "bob", "chatTitle": "Team"}
        await ws.request("channel.inbound", {**group, "messageId": "x1", "text": "chatter"})
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(self.model.requests, [])
        await ws.request("channel.inbound", {**group, "messageId": "x2", "text": "@bot help", "mentionsMe": True})
        [send] = await self.answer_sends(ws, 1)
        self.assertEqual((send["chatId"], send["text"]), ("g1", "group answer"))
        self.assertIn("[console group Team] bob: @bot help", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.assertIn("agent:main:console:group:g1", self.service.core.agent.store("main").index)


class LinkTests(AdapterMixin, TestCase):
    async def test_send_waits_for_a_reconnect(self):
        """The adapter goes away: status says so; a `send` made meanwhile is delivered once an adapter registers again; a newer connection replaces an older one."""
        await self.start(console={"dmPolicy": "open"})
        operator, _ = await self.connect(connect_params(protocol=4))
        ws = await self.adapter()
        await wait_for(lambda: self.account().connected, what="connected")
        ws.close()
        await ws.closed
        await wait_for(lambda: not self.account().connected, what="disconnected")
        row = (await operator.request("channels.status", {}))["payload"]["channelAccounts"]["console"][0]
        self.assertEqual((row["connected"], row["adapterConnected"], row["healthState"]), (False, False, "disconnected"))
        self.assertIn("the adapter disconnected", row["lastError"])
        sending = Deferred.fromCoroutine(operator.request("send", {"channel": "console", "to": "alice", "message": "while you were away", "idempotencyKey": "k1"}))
        await deferLater(reactor, 0.5, lambda: None)
        self.assertFalse(sending.called)
        back = await self.adapter(protocol=3)
        [send] = await self.answer_sends(back, 1)
        self.assertEqual(send["text"], "while you were away")
        res = await sending
        self.assertEqual((res["ok"], res["payload"]["messageId"]), (True, "p0"))

        newer = await self.adapter()
        code, reason = await back.closed
        self.assertEqual(reason, "replaced by a newer adapter connection for console:default")
        res = Deferred.fromCoroutine(operator.request("send", {"channel": "console", "to": "bob", "message": "to the newer one", "idempotencyKey": "k2"}))
        [send] = await self.answer_sends(newer, 1)
        self.assertEqual(send["chatId"], "bob")
        self.assertTrue((await res)["ok"])

    async def test_send_fails_when_the_adapter_stays_away(self):
        """Past adapterWaitSeconds a send fails with a clear error; an adapter's send error reaches the caller."""
        await self.start(console={"adapterWaitSeconds": 1})
        operator, _ = await self.connect(connect_params(protocol=4))
        res = await operator.request("send", {"channel": "console", "to": "alice", "message": "hello?", "idempotencyKey": "k1"})
        self.assertEqual(res["error"]["code"], "UNAVAILABLE")
        self.assertIn("the console:default adapter is not connected (waited 1 s for it)", res["error"]["message"])
        ws = await self.adapter()
        pending = Deferred.fromCoroutine(operator.request("send", {"channel": "console", "to": "bob", "message": "x", "idempotencyKey": "k2"}))
        send = (await ws.event("channel.send", timeout=10))["payload"]
        await ws.request("channel.sent", {"id": send["id"], "error": {"kind": "unreachable", "message": "bob blocked the bot"}})
        res = await pending
        self.assertEqual(res["error"]["message"], "bob blocked the bot")

    async def test_cursor_survives_a_restart(self):
        """The cursor an adapter sends with a message is journaled; after a gateway restart, register hands it back."""
        await self.start(console={"dmPolicy": "disabled"})
        ws = await self.adapter()
        await ws.request("channel.inbound", dm(cursor={"offset": 41}))
        await self.service.stopService()
        await self.start(console={"dmPolicy": "disabled"})
        ws = await self.adapter(register=False)
        answer = (await ws.request("channel.register", {"channel": "console"}))["payload"]
        self.assertEqual(answer["cursor"], {"offset": 41})


class Adapter(ProcessProtocol):
    """examples/channel_adapter.py as a child: its stdout JSON lines."""

    def __init__(self) -> None:
        self.lines: list[dict] = []
        self.errors = b""
        self.buffer = b""
        self.ended: Deferred = Deferred()

    def outReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines.append(json.loads(line))

    def errReceived(self, data):
        self.errors += data

    def processEnded(self, reason):
        self.ended.callback(reason.value)

    def said(self, key, value=None):
        return next((line for line in self.lines if key in line and (value is None or line[key] == value)), None)

    def type(self, text):
        self.transport.write(text.encode() + b"\n")


class ExampleTests(AdapterMixin, TestCase):
    async def test_example_adapter_round_trip(self):
        """The example adapter, run as its user would against a gateway on port 0: a DM gets a pairing code, `openclaw pairing approve` (the CLI) lets the next DM reach the agent, and the reply comes back to the adapter."""
        await self.start(replies=[openai_text("The plan is to ship it.")])
        child = Adapter()
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
        reactor.spawnProcess(child, sys.executable, [sys.executable, str(EXAMPLE), f"ws://127.0.0.1:{self.service.port}", ADAPTER_TOKEN, "console"], env=env)
        self.addCleanup(self.reap, child)
        await wait_for(lambda: child.said("ready") or child.said("error"), what="the adapter registered")
        self.assertEqual(child.said("ready"), {"ready": "console"}, child.errors)
        out, err, status = await self.cli("channels", "status", "--channel", "console")
        self.assertEqual(status, 0, err)
        self.assertIn("- console default: running, connected, mode:adapter, dm:pairing", out)
        child.type("alice hello")
        line = await wait_for(lambda: child.said("to", "alice"), what="the pairing code")
        code = line["text"].split("Pairing code: ")[1][:8]
        self.assertEqual(self.model.requests, [])
        out, err, status = await self.cli("pairing", "approve", "console", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved console sender alice", out)
        child.type("alice what is the plan?")
        await wait_for(lambda: any(line.get("text") == "The plan is to ship it." for line in child.lines), timeout=15, what="the reply")
        self.assertIn("what is the plan?", self.model.requests[0]["body"]["messages"][-1]["content"])
        child.transport.closeStdin()
        await child.ended
        self.assertEqual(child.lines[-1]["closed"], 1000)
        await wait_for(lambda: not self.account().connected, what="the account without its adapter")
        out, err, status = await self.cli("channels", "status", "--channel", "console")
        self.assertIn("- console default: waiting for its link, disconnected, mode:adapter", out)
        self.assertIn("error: the adapter disconnected", out)

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor)
        return out.decode(), err.decode(), code

    async def reap(self, child):
        if not child.ended.called:
            child.transport.signalProcess("KILL")
            await child.ended
