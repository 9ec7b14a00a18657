"""
IRC end to end: the gateway against the fake IRC server (tests/fakes_irc.py,
TLS with a throwaway CA the test trusts, or plain) and the fake model
provider; plus the protocol on a StringTransport and a fake clock (SASL,
keepalive, pacing) and the text rules (byte-bounded lines, mentions).
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.channels.interfaces import AccountConfig, AuthFailed, ChannelError, ConfigProblem
from openclaw.channels.irc.platform import IrcPlatform
from openclaw.channels.irc.protocol import IrcConnection, Settings, sasl_plain
from openclaw.channels.irc.text import casefold, line_budget, mentions, parse_prefix, split_message, strip_formatting
from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.fakes_irc import start_irc
from tests.fakes_telegram import wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
SASL = {"password": "sasl-secret-pw"}


class IrcMixin(GatewayMixin):
    timeout = 60

    async def start(self, irc=None, replies=(), tls=True, **config):
        if not hasattr(self, "fake"):
            self.fake, self.irc_port, self.ca = await start_irc(self, tls=tls)
            self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"host": "127.0.0.1", "port": self.irc_port, "tls": tls, "nick": "claw", "channels": ["#team"], "lineRate": 0.01, "connectTimeoutSeconds": 5}
        if self.ca is not None:
            section["tlsCaFile"] = str(self.ca)
        section.update(irc or {})
        section = {k: v for k, v in section.items() if v is not None}
        await self.gateway(channels={"irc": section}, **model_config(self.model_url), **config)
        return self.service

    async def server(self, tls=True):
        self.fake, self.irc_port, self.ca = await start_irc(self, tls=tls)
        self.model, self.model_url = await start_fake(self)
        return self.fake

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("irc", account_id)]

    async def connected(self):
        await wait_for(lambda: self.account().connected and self.fake.registered(), what="connected")

    async def code_for(self, nick):
        text = await wait_for(lambda: next((t for t in self.fake.sent(nick) if CODE.search(t)), None), what="a pairing code")
        return CODE.search(text).group(1)

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor)
        return code, out.decode(), err.decode()


class RoundTripTests(IrcMixin, TestCase):
    async def test_pairing_then_chunked_reply_over_tls_with_sasl(self):
        """TLS (verified against the test's CA) and SASL PLAIN; a query from a stranger gets a pairing code; `openclaw pairing approve irc` lets the next through; the reply is cut at 350 characters and every wire line fits 512 bytes (multi-byte text)."""
        long = " ".join(f"naïve café ünïcödé sentence number {i} with some more words." for i in range(40))
        await self.start(irc={"sasl": SASL}, replies=[openai_text(long)])
        await self.connected()
        commands = [line.split(" :")[0] for _, line in self.fake.lines]
        self.assertEqual(commands[0], "CAP LS 302")
        self.assertLess(commands.index("CAP REQ"), commands.index("AUTHENTICATE PLAIN"))
        self.assertLess(commands.index("AUTHENTICATE PLAIN"), commands.index("CAP END"))
        self.assertEqual(self.fake.client.account, "claw")
        await wait_for(lambda: "#team" in self.fake.client.channels, what="the JOIN after registration")  # sent after 001, not with it

        self.fake.say("alice", "claw", "hello there")
        code = await self.code_for("alice")
        self.assertIn("your IRC id: alice!~alice@users.fake.test", self.fake.sent("alice")[0])
        self.assertEqual(self.model.requests, [])
        status, out, err = await self.cli("pairing", "approve", "irc", code)
        self.assertEqual(status, 0, err)

        before = len(self.fake.sent("alice"))
        self.fake.say("alice", "claw", "what is the plan?")
        words = " ".join(long.split())
        await wait_for(lambda: " ".join(" ".join(self.fake.sent("alice")[before:]).split()) == words, timeout=30, what="the whole chunked reply")
        replies = self.fake.sent("alice")[before:]
        self.assertGreater(len(replies), 5)
        self.assertTrue(all(len(r) <= 350 for r in replies))
        self.assertEqual(self.fake.too_long, 0)
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)

    async def test_mention_gating_in_channels(self):
        """In a listed channel (any case) only lines naming the bot's nick reach the agent, in the channel's session; unlisted channels are ignored; the prompt names the speaker."""
        await self.start(irc={"groups": {"#Team": {}}, "channels": ["#team", "#other"]}, replies=[openai_text("here"), openai_text("again")])
        await self.connected()
        self.fake.say("bob", "#team", "chatting among ourselves")
        self.fake.say("bob", "#other", "claw: unlisted channel")
        self.fake.say("bob", "#team", "clawdia is not me")
        self.fake.say("bob", "#team", "claw: what time is it?")
        await wait_for(lambda: self.fake.sent("#team"), what="the channel answer")
        self.fake.say("carol", "#TEAM", "thanks \x02claw\x02!")
        await wait_for(lambda: len(self.fake.sent("#team")) == 2, what="the second answer")
        await self.pause(0.3)
        self.assertEqual(len(self.model.requests), 2)
        self.assertEqual(self.fake.sent("#other"), [])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("[IRC group #team] bob: claw: what time is it?", prompt)
        self.assertIsNotNone(self.service.core.agent.store("main").get("agent:main:irc:group:#team"))

    async def test_status_and_probe(self):
        """channels.status (in v3's and v4's shape): connected, nick, joined channels, lastInboundAt/lastOutboundAt, and a probe that measures a PING round trip."""
        await self.start(irc={"dmPolicy": "open"}, replies=[openai_text("hi")])
        await self.connected()
        self.fake.say("alice", "claw", "hello")
        await wait_for(lambda: self.fake.sent("alice"), what="the reply")
        ws, _ = await self.connect()
        status = (await ws.request("channels.status", {"probe": True}))["payload"]
        schemas.validate(3, "ChannelsStatusResult", status)
        schemas.validate(4, "ChannelsStatusResult", status)
        row = status["channelAccounts"]["irc"][0]
        self.assertEqual((row["connected"], row["nick"], row["channels"], row["mode"], row["dedupe"]), (True, "claw", ["#team"], "tls", "per-connection"))
        self.assertIsInstance(row["lastInboundAt"], int)
        self.assertIsInstance(row["lastOutboundAt"], int)
        self.assertTrue(row["probe"]["ok"], row["probe"])
        self.assertIsInstance(row["probe"]["lagMs"], int)
        self.assertNotIn("lastError", row)


class AuthTests(IrcMixin, TestCase):
    async def test_sasl_failure_stops(self):
        """904 (SASL failed) stops the account with the fix in status; it does not reconnect."""
        await self.server()
        await self.start(irc={"sasl": {"password": "wrong"}})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("SASL PLAIN authentication failed (904)", self.account().last_error)
        await self.pause(2.5)
        self.assertEqual(len(self.fake.clients), 1)

    async def test_server_password(self):
        """PASS goes first; a wrong one (464) stops the account; the right one registers."""
        await self.server()
        self.fake.password = "letmein"
        await self.start(irc={"password": "nope"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("464", self.account().last_error)
        await self.service.stopService()
        await self.start(irc={"password": "letmein"})
        await self.connected()

    async def test_nickserv_identify(self):
        """With nickserv.password (upstream's key) the bot identifies to NickServ after the welcome."""
        await self.start(irc={"nickserv": {"password": "ns-pass"}})
        await self.connected()
        await wait_for(lambda: self.fake.sent("NickServ"), what="IDENTIFY")
        self.assertEqual(self.fake.sent("NickServ"), ["IDENTIFY ns-pass"])

    async def test_no_sasl_on_the_server_falls_back_to_nickserv(self):
        """SASL configured but not offered (no sasl cap, or no CAP at all): registration goes on and NickServ IDENTIFY stands in."""
        await self.server()
        self.fake.caps = "multi-prefix"
        await self.start(irc={"sasl": SASL})
        await self.connected()
        await wait_for(lambda: self.fake.sent("NickServ"), what="IDENTIFY")
        self.assertEqual(self.fake.sent("NickServ"), ["IDENTIFY claw sasl-secret-pw"])
        self.assertEqual(self.account().snapshot()["sasl"], "unavailable")
        await self.service.stopService()
        self.fake.caps = None
        await self.start(irc={"sasl": SASL})
        await self.connected()
        await wait_for(lambda: len(self.fake.sent("NickServ")) == 2, what="IDENTIFY on a server without CAP")

    async def test_secrets_never_logged(self):
        """The SASL, server and NickServ passwords never reach the gateway's log."""
        await self.server()
        self.fake.password = "server-pass-123"
        await self.start(irc={"sasl": SASL, "password": "server-pass-123", "nickserv": {"password": "ns-pass-456"}, "dmPolicy": "open"}, replies=[openai_text("x")])
        await self.connected()
        self.fake.client.error("Closing Link: testing")
        await wait_for(lambda: self.account().reconnect_attempts >= 1 and self.account().connected, timeout=15, what="a reconnect")
        log = Path(self.service.settings.logging.file).read_text()
        self.assertIn("reconnecting", log)
        for secret in ("sasl-secret-pw", "server-pass-123", "ns-pass-456"):
            self.assertNotIn(secret, log)


class LinkTests(IrcMixin, TestCase):
    async def test_nick_in_use(self):
        """433 registers as claw_, status says so, mentions follow the nick in use; NickServ GHOST frees the nick and it is taken back."""
        await self.server()
        self.fake.taken = {"claw"}
        await self.start(irc={"nickserv": {"password": "ns-pass"}, "groups": {"#team": {}}, "pingIntervalSeconds": 1}, replies=[openai_text("as claw_")])
        await self.connected()
        self.assertEqual(self.account().snapshot()["nick"], "claw_")
        self.assertIn("the nick claw is in use; connected as claw_", self.account().snapshot()["lastError"])
        self.fake.say("bob", "#team", "claw_: are you there?")
        await wait_for(lambda: self.fake.sent("#team"), what="the answer to claw_")
        await wait_for(lambda: "GHOST claw ns-pass" in self.fake.sent("NickServ"), what="GHOST")
        self.fake.taken.clear()
        await wait_for(lambda: self.account().snapshot()["nick"] == "claw", timeout=10, what="the nick taken back")
        self.assertNotIn("lastError", self.account().snapshot())

    async def test_error_closing_link_reconnects(self):
        """ERROR :Closing Link ends the connection; status shows the server's words and the account reconnects with backoff."""
        await self.server()
        self.fake.on_register = lambda client: (setattr(self.fake, "on_register", None), client.error("Closing Link: 127.0.0.1 (Too many connections)"))
        await self.start(irc={"dmPolicy": "open"}, replies=[openai_text("back")])
        await wait_for(lambda: "Closing Link" in (self.account().last_error or ""), what="the ERROR in status")
        await wait_for(lambda: self.account().connected, timeout=15, what="reconnected")
        self.assertEqual(self.account().reconnect_attempts, 1)
        self.fake.say("alice", "claw", "hello?")
        await wait_for(lambda: self.fake.sent("alice"), what="the answer after reconnecting")

    async def test_dead_link_is_noticed(self):
        """A server that stops answering PINGs is dropped after pingIntervalSeconds + pingTimeoutSeconds, and the account reconnects."""
        await self.server()
        await self.start(irc={"pingIntervalSeconds": 1, "pingTimeoutSeconds": 1})
        await self.connected()
        self.fake.answer_pings = False
        await wait_for(lambda: "did not answer a PING" in (self.account().last_error or ""), timeout=10, what="the dead link noticed")
        self.fake.answer_pings = True
        await wait_for(lambda: self.account().connected, timeout=15, what="reconnected")
        self.assertGreaterEqual(len(self.fake.clients), 2)

    async def test_refused_connection(self):
        """Nothing listening: status says the connection was refused, and the account keeps retrying with backoff."""
        await self.server()
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.internet.protocol import Factory

        closed = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
        port = closed.getHost().port
        await closed.stopListening()
        await self.start(irc={"port": port})
        await wait_for(lambda: self.account().reconnect_attempts >= 1, timeout=10, what="a failed attempt")
        self.assertIn(f"cannot connect to 127.0.0.1:{port}", self.account().last_error)
        self.assertIn("refused", self.account().last_error.lower())
        self.assertEqual(self.account().state, "backoff")

    async def test_sends_wait_for_the_next_connection(self):
        """A reply due while the link is down (longer than the send queue's retries) waits for the next connection instead of being dropped."""
        slow = openai_text("late answer")
        slow.delay = 0.3  # the reply is due after the link went down, before the reconnect
        await self.server()
        await self.start(irc={"dmPolicy": "open"}, replies=[slow])
        await self.connected()
        first = self.fake.client
        self.fake.say("alice", "claw", "question")
        await wait_for(lambda: self.model.requests, what="the run")
        self.fake.on_register = lambda client: client.error("Closing Link: maintenance")
        first.error("Closing Link: maintenance")
        # Down for longer than the outbox's own retries (about 7 s) would wait.
        await self.pause(9.0)
        self.assertEqual(self.fake.sent("alice"), [])
        self.fake.on_register = None
        await wait_for(lambda: self.fake.sent("alice"), timeout=30, what="the answer on the next connection")
        self.assertEqual(self.fake.sent("alice"), ["late answer"])
        self.assertIsNot(self.fake.senders[0], first)
        # the server has the line before the account marks the work done
        await wait_for(lambda: self.account().inbox.pending() == [], what="the inbox emptied")

    async def test_server_ping_is_answered(self):
        """PING from the server gets its PONG."""
        await self.start()
        await self.connected()
        self.fake.client.send(":irc.fake.test PING :are-you-alive")
        await wait_for(lambda: "are-you-alive" in self.fake.pongs, what="the PONG")

    async def test_untrusted_certificate(self):
        """With TLS on (the default) and a certificate the system does not trust, nothing is sent in the clear; status says what to fix."""
        await self.server()
        await self.start(irc={"tlsCaFile": None})
        await wait_for(lambda: "TLS" in (self.account().last_error or ""), timeout=10, what="the TLS error")
        self.assertIn("tlsCaFile", self.account().last_error)
        self.assertFalse(self.account().connected)
        self.assertEqual(self.fake.lines, [])

    async def test_line_rate(self):
        """A multi-line reply goes out in order, a burst of 4 lines and then one line per lineRate seconds."""
        lines = [f"line {i}" for i in range(8)]
        await self.start(irc={"lineRate": 0.25, "dmPolicy": "open"}, replies=[openai_text("\n".join(lines))])
        await self.connected()
        self.fake.say("alice", "claw", "count")
        await wait_for(lambda: len(self.fake.sent("alice")) == 8, timeout=10, what="all lines")
        self.assertEqual(self.fake.sent("alice"), lines)
        times = [t for t, line in self.fake.lines if line.startswith("PRIVMSG alice")]
        self.assertLess(times[3] - times[0], 0.2)
        self.assertGreaterEqual(times[7] - times[3], 4 * 0.25 - 0.1)

    async def test_bad_lines_do_not_break_the_link(self):
        """Garbage from the server (no command, Latin-1, empty NOTICE, CTCP DCC) is ignored: the connection stays and the next message is answered."""
        await self.start(irc={"dmPolicy": "open"}, replies=[openai_text("still fine")])
        await self.connected()
        client = self.fake.client
        client.transport.write(b":onlyprefix\r\n\r\n:x NOTICE claw :\r\n:bob!b@h PRIVMSG claw :caf\xe9\r\n:bob!b@h PRIVMSG claw :\x01DCC SEND x 1 2 3\x01\r\n")
        await wait_for(lambda: self.fake.sent("bob"), what="the answer to the Latin-1 line")
        self.assertEqual(self.fake.sent("bob"), ["still fine"])
        self.assertEqual(self.model.requests[0]["body"]["messages"][-1]["content"], "café")
        self.assertTrue(self.account().connected)

    async def test_stop_mid_turn_then_restart(self):
        """Stopping the gateway mid-turn (a plain-text server): QUIT is sent, and at the next start the interrupted question is answered once."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.server(tls=False)
        await self.start(tls=False, irc={"dmPolicy": "open"}, replies=[hanging, openai_text("complete answer")])
        await self.connected()
        self.fake.say("alice", "claw", "long question")
        await wait_for(lambda: self.model.requests, what="the first run")
        await self.service.stopService()
        await wait_for(lambda: self.fake.quits, what="the QUIT")
        await self.start(tls=False, irc={"dmPolicy": "open"})
        await wait_for(lambda: self.fake.sent("alice"), what="the answer")
        await self.pause(0.5)
        self.assertEqual(self.fake.sent("alice"), ["complete answer"])
        self.assertEqual([r["body"]["messages"][-1]["content"] for r in self.model.requests], ["long question", "long question"])


# -- the protocol on a fake clock


class ProtocolTests(SynchronousTestCase):
    def connect(self, **settings):
        self.clock = Clock()
        self.messages = []
        base = {"nick": "claw", "username": "claw", "realname": "OpenClaw", "ping_interval": 10.0, "ping_timeout": 5.0, "line_rate": 1.0}
        base.update(settings)
        proto = IrcConnection(Settings(**base), self.clock, lambda conn, user, target, text: self.messages.append((user, target, text)))
        self.transport = StringTransport()
        proto.makeConnection(self.transport)
        return proto

    def written(self):
        lines = self.transport.value().decode().split("\r\n")
        self.transport.clear()
        return [line for line in lines if line]

    def feed(self, proto, *lines):
        proto.dataReceived("".join(f"{line}\r\n" for line in lines).encode())

    def welcome(self, proto):
        self.feed(proto, ":srv 001 claw :Welcome")

    def test_registration_and_sasl(self):
        """CAP LS (in two parts) → CAP REQ :sasl → AUTHENTICATE PLAIN → credentials → 903 → CAP END; registration waits for it."""
        proto = self.connect(sasl_password="pw")
        self.assertEqual(self.written(), ["CAP LS 302", "NICK claw", "USER claw 0 * :OpenClaw"])
        self.feed(proto, ":srv CAP * LS * :multi-prefix away-notify", ":srv CAP * LS :sasl=PLAIN,EXTERNAL")
        self.assertEqual(self.written(), ["CAP REQ :sasl"])
        self.feed(proto, ":srv CAP * ACK :sasl")
        self.assertEqual(self.written(), ["AUTHENTICATE PLAIN"])
        self.feed(proto, "AUTHENTICATE +")
        self.assertEqual(self.written(), ["AUTHENTICATE " + base64.b64encode(b"claw\0claw\0pw").decode()])
        self.feed(proto, ":srv 900 claw claw!c@h claw :logged in", ":srv 903 claw :SASL authentication successful")
        self.assertEqual(self.written(), ["CAP END"])
        self.assertEqual(proto.sasl, "ok")

    def test_server_ignoring_cap(self):
        """A server that ignores CAP and welcomes at once: SASL counts as unavailable and NickServ IDENTIFY stands in."""
        proto = self.connect(sasl_password="pw")
        self.written()
        self.welcome(proto)
        self.assertEqual(proto.sasl, "unavailable")
        self.assertEqual(self.written()[0], "PRIVMSG NickServ :IDENTIFY claw pw")
        self.successResultOf(proto.registered)

    def test_sasl_failure_is_auth_failed(self):
        """904 aborts the connection and fails registration with AuthFailed."""
        proto = self.connect(sasl_password="pw")
        self.feed(proto, ":srv CAP * LS :sasl", ":srv CAP * ACK :sasl", "AUTHENTICATE +", ":srv 904 claw :SASL authentication failed")
        self.assertTrue(self.transport.disconnecting)
        proto.connectionLost(Failure_done())
        self.failureResultOf(proto.registered, AuthFailed)

    def test_sasl_pieces(self):
        """Credentials go in 400-byte base64 pieces, with `+` after an exact multiple of 400."""
        pieces = sasl_plain("u", "p" * 600)
        self.assertEqual([len(p) for p in pieces[:-1]], [400] * (len(pieces) - 1))
        self.assertEqual(base64.b64decode("".join(pieces)), b"u\0u\0" + b"p" * 600)
        exact = sasl_plain("u", "p" * 296)  # "u\0u\0" + 296 = 300 bytes → 400 base64 characters
        self.assertEqual(exact[-1], "+")

    def test_keepalive(self):
        """Quiet for ping_interval: PING; no answer within ping_timeout: the link is dropped as dead; any line keeps it alive."""
        proto = self.connect()
        self.welcome(proto)
        self.written()
        self.clock.advance(9)
        self.assertEqual(self.written(), [])
        self.feed(proto, ":srv NOTICE claw :still here")  # activity resets the timer
        self.clock.advance(9)
        self.assertEqual(self.written(), [])
        self.clock.advance(1)
        self.assertTrue(self.written()[0].startswith("PING :keepalive-"))
        self.feed(proto, ":srv PONG srv :keepalive")
        self.clock.advance(5)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(self.written()[0].startswith("PING"))
        self.clock.advance(5)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("did not answer a PING", str(proto.failure))

    def test_pacing(self):
        """send_lines: a burst of 4, then one line per line_rate; the Deferred fires when the PONG to a PING after the last line comes; a lost link fails what waits."""
        proto = self.connect()
        self.welcome(proto)
        self.written()
        done = proto.send_lines([f"PRIVMSG x :{i}" for i in range(6)])
        self.assertEqual(len(self.written()), 4)
        self.assertNoResult(done)
        self.clock.advance(1)
        self.assertEqual(self.written(), ["PRIVMSG x :4"])
        self.clock.advance(1)
        written = self.written()
        self.assertEqual(written[0], "PRIVMSG x :5")
        self.assertRegex(written[1], r"^PING :oc-\d+$")
        self.assertNoResult(done)  # written, not yet confirmed
        self.feed(proto, f":srv PONG srv :{written[1][6:]}")
        self.successResultOf(done)
        waiting = proto.send_lines(["PRIVMSG x :a", "PRIVMSG x :b"])
        unconfirmed = proto.send_lines(["PRIVMSG x :c"])
        self.clock.advance(3)
        self.assertEqual(self.written()[-2], "PRIVMSG x :c")
        proto.connectionLost(Failure_done())
        self.failureResultOf(waiting, ChannelError)
        self.failureResultOf(unconfirmed, ChannelError)

    def test_nick_fallbacks(self):
        """433 before the welcome tries claw_, claw__, claw___, then gives up; after the welcome a 433 keeps the current nick."""
        proto = self.connect()
        self.written()
        self.feed(proto, ":srv 433 * claw :in use")
        self.assertEqual(self.written(), ["NICK claw_"])
        self.feed(proto, ":srv 433 * claw_ :in use", ":srv 433 * claw__ :in use")
        self.assertEqual(self.written(), ["NICK claw__", "NICK claw___"])
        self.feed(proto, ":srv 433 * claw___ :in use")
        self.assertTrue(self.transport.disconnecting)

    def test_erroneous_nick_is_a_config_problem(self):
        """432 before the welcome is a configuration problem (the account stops)."""
        proto = self.connect()
        self.feed(proto, ":srv 432 * claw :Erroneous Nickname")
        proto.connectionLost(Failure_done())
        self.failureResultOf(proto.registered, ConfigProblem)

    def test_messages(self):
        """PRIVMSG and CTCP ACTION reach the handler; other CTCP (DCC) does not."""
        proto = self.connect()
        self.welcome(proto)
        self.feed(proto, ":bob!b@h PRIVMSG #team :hello", ":bob!b@h PRIVMSG claw :\x01ACTION waves\x01", ":bob!b@h PRIVMSG claw :\x01DCC SEND f 1 2 3\x01")
        self.assertEqual(self.messages, [("bob!b@h", "#team", "hello"), ("bob!b@h", "claw", "* waves")])


def Failure_done():
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    return Failure(ConnectionDone())


class TextTests(SynchronousTestCase):
    def test_split_by_bytes(self):
        """Lines are cut by UTF-8 bytes, never inside a character, preferring spaces; blank lines go; control characters are removed."""
        text = "é" * 300 + "\n\nword " * 3 + "\x01CTCP\x01 and\ttab"
        lines = split_message(text, 100)
        self.assertTrue(all(len(line.encode()) <= 100 for line in lines))
        self.assertEqual("".join(lines[:6]), "é" * 300)
        self.assertNotIn("", lines)
        self.assertIn("CTCP and    tab", lines[-1])
        self.assertEqual(split_message("one two three four five", 16), ["one two three", "four five"])

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=2000), st.integers(16, 500))
    def test_split_keeps_every_word_within_the_budget(self, text, budget):
        """Any text: every line fits the byte budget, holds no control character, and the words come out as they went in."""
        lines = split_message(text, budget)
        self.assertTrue(all(0 < len(line.encode()) <= budget for line in lines))
        self.assertFalse(any(c in line for line in lines for c in "\r\n\x00\x01"))
        from openclaw.channels.irc.text import clean

        expected = "".join("".join(clean(part).split()) for part in text.replace("\r", "\n").split("\n"))
        self.assertEqual("".join("".join(line.split()) for line in lines), expected)

    def test_budget(self):
        """The budget leaves room for our full prefix (longest host) and the command."""
        budget = line_budget("claw", "claw", "#team")
        self.assertEqual(budget, 512 - 2 - len(":claw!claw@ ") - 63 - len("PRIVMSG #team :"))

    def test_mentions(self):
        """The nick counts as a word of its own, case-insensitively, through formatting; not inside another nick."""
        self.assertTrue(mentions("claw: hi", "claw"))
        self.assertTrue(mentions("hey Claw!", "claw"))
        self.assertTrue(mentions("\x02claw\x02, look", "claw"))
        self.assertFalse(mentions("clawdia: hi", "claw"))
        self.assertFalse(mentions("claw_ is someone else", "claw"))
        self.assertTrue(mentions("cl[a]w: yo", "cl[a]w"))

    def test_names(self):
        """Hostmasks split; RFC 1459 case folding; formatting stripped."""
        self.assertEqual(parse_prefix("bob!~b@host"), ("bob", "~b", "host"))
        self.assertEqual(parse_prefix("irc.server"), ("irc.server", None, None))
        self.assertEqual(casefold("#Foo[]\\~"), "#foo{}|^")
        self.assertEqual(strip_formatting("\x0304,02red\x03 \x02bold\x02"), "red bold")


class ConfigTests(SynchronousTestCase):
    def account(self, config, env=None, account_id="default"):
        return AccountConfig("irc", account_id, config, env or {}, Path(self.mktemp()), Path(self.mktemp()))

    def test_env_and_defaults(self):
        """IRC_* fill the default account only; TLS is on by default (port 6697), 6667 without it."""
        platform = IrcPlatform()
        env = {"IRC_HOST": "irc.example.org", "IRC_NICK": "claw"}
        self.assertTrue(platform.configured(self.account({}, env)))
        self.assertFalse(platform.configured(self.account({}, env, "other")))
        from openclaw.channels.irc.platform import resolve

        self.assertEqual((resolve(self.account({}, env))["port"], resolve(self.account({}, env))["tls"]), (6697, True))
        self.assertEqual(resolve(self.account({"tls": False, "host": "h", "nick": "n"}))["port"], 6667)

    def test_refusals(self):
        """Bad nick, bad channel names, register without email, an unreadable CA file, a password file that is not a file: ConfigProblem."""
        platform = IrcPlatform()
        host = None
        base = {"host": "irc.example.org", "nick": "claw"}
        for extra in (
            {"nick": "1bad nick"},
            {"channels": ["team"]},
            {"nickserv": {"register": True, "password": "x"}},
            {"tlsCaFile": "/nonexistent/ca.pem"},
            {"passwordFile": "/"},
        ):
            with self.assertRaises(ConfigProblem, msg=str(extra)):
                platform.build(self.account({**base, **extra}), host)

    def test_group_keys_are_folded(self):
        """groups keys that are channel names are case-folded (messages carry folded names)."""
        self.assertEqual(IrcPlatform().normalize({"groups": {"#Team[1]": {}, "*": {}}})["groups"], {"#team{1}": {}, "*": {}})
