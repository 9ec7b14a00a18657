"""
Slack end to end: the gateway against the fake Slack (tests/fakes_slack.py:
Web API and Socket Mode server) and the fake model provider (tests/fakes.py),
on loopback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import treq
import txaio
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from openclaw.channels.interfaces import AccountConfig
from openclaw.channels.slack import socket as slack_socket
from openclaw.channels.slack.signing import signature
from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.fakes_slack import APP_TOKEN, BOT_TOKEN, BOT_USER, Fault, start_slack, wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class SlackMixin(GatewayMixin):
    timeout = 60

    async def start(self, slack=None, replies=(), ack_timeout=3.0, **config):
        self.slack, self.api = await start_slack(self)
        self.slack.ack_timeout = ack_timeout
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        await self.gateway(channels={"slack": self.section(slack)}, **model_config(self.model_url), **config)
        return self.service

    def section(self, slack=None):
        section = {"botToken": BOT_TOKEN, "appToken": APP_TOKEN, "apiBase": self.api, **(slack or {})}
        return {k: v for k, v in section.items() if v is not None}

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("slack", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    def methods(self, name):
        return [p for m, p in self.slack.calls if m == name]

    async def code_for(self, channel):
        text = await wait_for(lambda: next((t for t in self.slack.texts(channel) if CODE.search(t)), None), what="a pairing code")
        return CODE.search(text).group(1)

    def cli_env(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}

    async def cli(self, *args):
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=self.cli_env(), reactor=reactor
        )
        return code, out.decode(), err.decode()

    def inbox(self, account_id="default"):
        path = Path(self.service.settings.state_dir) / "channels" / "slack" / account_id / "inbox.json"
        return json.loads(path.read_text()) if path.exists() else {}


class RoundTripTests(SlackMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back in order, chunked under 4000, in the DM (no thread by default), as mrkdwn."""
        long = "\n\n".join(f"Paragraph {i}: **bold** " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        self.slack.dm("UALICE01", "hello there", user_profile={"display_name": "Alice", "name": "alice"})
        code = await self.code_for("DALICE01")
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve slack {code}", self.slack.texts("DALICE01")[0])
        self.assertIn("UALICE01", self.slack.texts("DALICE01")[0])

        status, out, err = await self.cli("pairing", "list", "slack")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "slack", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved slack sender", out)

        self.slack.dm("UALICE01", "what is the plan?")
        replies = await wait_for(lambda: len(self.slack.texts("DALICE01")) >= 4 and self.slack.sent[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["text"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["text"].split()) for r in replies), " ".join(long.replace("**bold**", "*bold*").split()))
        self.assertEqual([r["thread_ts"] for r in replies], [None, None, None])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        # every Web API call carried its token in the Authorization header, never in a URL or body
        self.assertTrue(all("token" not in p for _, p in self.slack.calls))
        self.assertFalse([p for p in self.slack.paths if "xox" in p or "xapp" in p])
        self.assertEqual({h["authorization"] for h in self.slack.headers}, {f"Bearer {BOT_TOKEN}", f"Bearer {APP_TOKEN}"})

    async def test_ack_follows_the_journal_and_never_waits_for_the_agent(self):
        """Each envelope is acknowledged once the message is in the journal and while the agent still works; Slack never has to resend it."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.start(slack={"dmPolicy": "open"}, replies=[hanging], ack_timeout=2.0)
        await self.connected()
        journal_at_ack = []
        self.slack.on_ack.append(lambda frame: journal_at_ack.append([w["message"]["text"] for w in self.inbox().get("pending", [])]))
        started = reactor.seconds()
        ts = self.slack.dm("UBOB0001", "take your time")
        envelope_id = self.slack.delivered[-1]["envelope_id"]
        await wait_for(lambda: any(a["envelope_id"] == envelope_id for a in self.slack.acks), what="the ack")
        ack = next(a for a in self.slack.acks if a["envelope_id"] == envelope_id)
        self.assertLess(ack["at"] - started, 2.0)
        self.assertEqual(journal_at_ack[0], ["take your time"])
        await wait_for(lambda: self.model.requests, what="the run")
        await self.pause(2.5)  # past the fake's ack window
        self.assertEqual(self.slack.unacked, {})
        self.assertEqual([e["envelope_id"] for e in self.slack.delivered].count(envelope_id), 1)
        self.assertEqual(self.inbox()["pending"][0]["message"]["message_id"], ts)
        self.assertEqual(self.slack.sent, [])


class ErrorTests(SlackMixin, TestCase):
    async def test_bad_bot_token_stops_without_looping(self):
        """invalid_auth from auth.test stops the account: status says to check the bot token, and auth.test is not called again."""
        await self.start(slack={"botToken": "xoxb-9999-refused-token-value"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        await self.pause(3.0)
        self.assertEqual(len(self.methods("auth.test")), 1)
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["slack"][0]
        self.assertEqual((row["running"], row["connected"]), (False, False))
        self.assertIn("check channels.slack.botToken", row["lastError"])
        self.assertIn("invalid_auth", row["lastError"])

    async def test_bad_app_token_stops(self):
        """A refused app token (apps.connections.open invalid_auth) stops the account with the appToken fix; a bot token given as the app token is refused before any call."""
        await self.start(slack={"appToken": "xapp-1-A0001-refused"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("check channels.slack.appToken", self.account().last_error)
        self.assertEqual(self.slack.connections, 0)
        await self.service.channels.remove("slack", "default")
        self.service.channels.add(AccountConfig("slack", "default", self.section({"appToken": BOT_TOKEN}), {}, Path(self.mktemp())))
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        self.assertIn("holds a bot token", self.account().last_error)

    async def test_post_message_errors(self):
        """chat.postMessage's ok:false errors: channel_not_found / not_in_channel / is_archived and msg_too_long / no_text drop the reply at once (one call, journal emptied); invalid_auth drops it too; the account keeps serving."""
        cases = ["channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text", "invalid_auth"]
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text(f"answer {i}") for i in range(len(cases) + 1)])
        await self.connected()
        for i, error in enumerate(cases):
            self.slack.fault("chat.postMessage", Fault(error))
            self.slack.dm(f"UERR{i:04d}", "hi")
            await wait_for(lambda: len(self.methods("chat.postMessage")) == i + 1, what=f"the {error} attempt")
            await wait_for(lambda: self.account().inbox.pending() == [], what=f"{error} dropped")
            self.assertIn(error, self.account().last_error)
        await self.pause(1.5)
        self.assertEqual(len(self.methods("chat.postMessage")), len(cases))
        self.assertEqual(self.slack.sent, [])
        self.slack.dm("UFINE001", "still there?")
        await wait_for(lambda: self.slack.texts("DFINE001"), what="another chat still served")
        self.assertTrue(self.account().connected)

    async def test_real_unreachable_channels(self):
        """The fake's own conversation state: an archived channel and one the bot is not in answer is_archived / not_in_channel, and the reply is dropped without retrying."""
        await self.start(slack={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("a"), openai_text("b")])
        await self.connected()
        self.slack.conversation("CARCHIVE1", archived=True)
        self.slack.conversation("COUTSIDE1", member=False)
        self.slack.message("CARCHIVE1", "UBOB0001", "anyone?")
        self.slack.message("COUTSIDE1", "UBOB0001", "anyone?")
        await wait_for(lambda: len(self.methods("chat.postMessage")) == 2, what="both attempts")
        await self.pause(1.5)
        self.assertEqual(len(self.methods("chat.postMessage")), 2)
        self.assertEqual(self.account().inbox.pending(), [])

    async def test_rate_limited_send_waits_retry_after(self):
        """429 with Retry-After on chat.postMessage holds that chat for that long, then the same reply goes out once."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("patience")])
        await self.connected()
        self.slack.fault("chat.postMessage", Fault(status=429, retry_after=1))
        started = reactor.seconds()
        self.slack.dm("UBOB0001", "hi")
        await wait_for(lambda: self.slack.texts("DBOB0001"), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(self.slack.texts("DBOB0001"), ["patience"])
        self.assertEqual(len(self.methods("chat.postMessage")), 2)

    async def test_connections_open_rate_limited(self):
        """429 on apps.connections.open waits Retry-After and asks again, without a reconnect."""
        self.slack, self.api = await start_slack(self)
        self.slack.fault("apps.connections.open", Fault(status=429, retry_after=1))
        self.model, self.model_url = await start_fake(self)
        await self.gateway(channels={"slack": self.section()}, **model_config(self.model_url))
        await self.connected()
        self.assertEqual(len(self.methods("apps.connections.open")), 2)
        self.assertEqual(self.account().reconnect_attempts, 0)

    async def test_server_errors_back_off_and_recover(self):
        """A 5xx with a body that is not JSON, then internal_error, from apps.connections.open: the account backs off, reconnects and then serves messages."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("back")])
        self.slack.fault("apps.connections.open", Fault(status=502, garbage=True), Fault("internal_error"))
        await self.connected()
        self.assertEqual(self.account().reconnect_attempts, 2)
        self.slack.dm("UBOB0001", "still there?")
        await wait_for(lambda: self.slack.texts("DBOB0001"), timeout=20, what="the answer after the outage")


class SocketTests(SlackMixin, TestCase):
    async def test_refresh_opens_a_new_socket_with_a_fresh_url(self):
        """disconnect warning, then refresh_requested: a new connection opens at once on a fresh URL (no backoff, no reconnect counted), the old one closes, and nothing is lost meanwhile."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("one"), openai_text("two")])
        await self.connected()
        self.assertEqual(len(self.slack.urls), 1)
        self.slack.disconnect("warning")
        await wait_for(lambda: self.slack.connections == 2 and len(self.slack.live()) == 1, what="the replacement")
        self.slack.dm("UBOB0001", "during the switch")
        await wait_for(lambda: self.slack.texts("DBOB0001"), what="an answer on the new socket")
        self.slack.disconnect("refresh_requested", close_after=0.2)
        await wait_for(lambda: self.slack.connections == 3 and len(self.slack.live()) == 1, what="the second replacement")
        self.slack.dm("UBOB0001", "after the refresh")
        await wait_for(lambda: len(self.slack.texts("DBOB0001")) == 2, what="the second answer")
        self.assertEqual(len(set(self.slack.urls)), 3)
        self.assertEqual(self.slack.refused, 0)
        self.assertEqual(self.account().reconnect_attempts, 0)
        self.assertTrue(self.account().connected)
        self.assertEqual(self.account().snapshot()["lastDisconnect"], "refresh_requested")

    async def test_link_disabled_stops_with_the_fix(self):
        """disconnect link_disabled stops the account (no reconnect loop) with a status message saying how to turn Socket Mode back on."""
        await self.start()
        await self.connected()
        self.slack.disconnect("link_disabled", close_after=0.1)
        await wait_for(lambda: self.account().state == "misconfigured", what="stopped")
        self.assertIn("Socket Mode", self.account().last_error)
        self.assertIn("openclaw channels login slack", self.account().last_error)
        row = self.account().snapshot()
        self.assertEqual((row["running"], row["connected"], row["lastDisconnect"]), (False, False, "link_disabled"))
        await self.pause(2.5)
        self.assertEqual(len(self.methods("apps.connections.open")), 1)
        self.assertEqual(self.slack.live(), [])

    async def test_dropped_socket_reconnects_with_backoff(self):
        """A socket dropped without a disconnect frame ends the session; the framework reconnects on a fresh URL after a backoff, and envelopes Slack queued meanwhile arrive."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("back again")])
        await self.connected()
        self.slack.drop_all()
        await wait_for(lambda: self.account().reconnect_attempts == 1, what="the reconnect")
        self.assertIn("the Slack socket closed", self.account().last_error)
        self.slack.dm("UBOB0001", "queued while down")
        await wait_for(lambda: self.slack.texts("DBOB0001"), timeout=15, what="the answer")
        self.assertEqual(len(set(self.slack.urls)), 2)

    async def test_silent_socket_is_dropped(self):
        """A socket whose pings go unanswered (a zombie) is dropped and replaced."""
        # autobahn's ping timers run on txaio's batched timer, which truncates each
        # deadline to a whole second: a sub-second timeout can fire before the pong.
        self.patch(slack_socket, "PING_INTERVAL", 1.0)
        self.patch(slack_socket, "PING_TIMEOUT", 2.0)
        await self.start()
        await self.connected()
        self.slack.zombie = True
        await wait_for(lambda: self.account().reconnect_attempts >= 1, what="the zombie dropped")
        self.slack.zombie = False
        await wait_for(lambda: self.account().connected and self.slack.connections >= 2, timeout=15, what="a new socket")

    async def test_redelivery_and_double_events_answered_once(self):
        """A redelivered envelope (retry_attempt 1, same event_id), a message's app_mention twin (same ts, other event_id), and the bot's own echoed reply: one agent run, one reply, all acknowledged."""
        await self.start(slack={"groups": {"CTEAM0001": {}}}, replies=[openai_text("once"), openai_text("never")])
        await self.connected()
        ts = self.slack.message("CTEAM0001", "UBOB0001", "what's up?", mention=True)
        first = self.slack.delivered[-2]
        await wait_for(lambda: self.slack.texts("CTEAM0001"), what="the reply")
        self.slack.redeliver(first, attempt=1)
        await self.pause(1.0)
        self.assertEqual(len(self.model.requests), 1)
        self.assertEqual(self.slack.texts("CTEAM0001"), ["once"])
        self.assertEqual(self.slack.unacked, {})
        self.assertEqual(self.slack.sent[0]["thread_ts"], None)
        self.assertEqual(self.inbox()["seen"].count(f"CTEAM0001:{ts}"), 1)

    async def test_unacknowledged_envelope_is_resent(self):
        """When the journal cannot take a message, the envelope is left unacknowledged; Slack resends it (retry_attempt 1) and it is answered once."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("got it")], ack_timeout=0.5)
        await self.connected()
        account = self.account()
        real = account.inbox.accept
        calls = []

        def flaky(message, cursor=None):
            calls.append(message.message_id)
            if len(calls) == 1:
                raise OSError("disk full")
            return real(message, cursor)

        account.inbox.accept = flaky
        self.slack.dm("UBOB0001", "hello?")
        await wait_for(lambda: self.slack.texts("DBOB0001"), what="the reply after the resend")
        retried = [e for e in self.slack.delivered if e.get("retry_attempt") == 1]
        self.assertEqual(len(retried), 1)
        self.assertEqual(len(calls), 2)
        self.assertEqual(self.slack.texts("DBOB0001"), ["got it"])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    async def test_slash_command_is_acknowledged(self):
        """A slash command is acknowledged at once with an ephemeral note (no agent run)."""
        await self.start(slack={"dmPolicy": "open"})
        await self.connected()
        envelope = self.slack.slash("/openclaw", "hi", "UBOB0001", "CTEAM0001")
        await wait_for(lambda: any(a["envelope_id"] == envelope["envelope_id"] for a in self.slack.acks), what="the ack")
        ack = next(a for a in self.slack.acks if a["envelope_id"] == envelope["envelope_id"])
        self.assertIn("slash commands", ack["payload"]["text"])
        self.assertEqual(self.model.requests, [])


class ChannelTests(SlackMixin, TestCase):
    async def test_mention_gating_threads_and_own_messages(self):
        """In a listed channel only mentions (or thread replies under the bot's message) reach the agent; a thread gets its own `:thread:<ts>` session and the reply goes into it; edits, joins, bots and our own user are ignored."""
        await self.start(slack={"groups": {"CTEAM0001": {}}}, replies=[openai_text("in channel"), openai_text("in thread"), openai_text("under you")])
        await self.connected()
        self.slack.message("CTEAM0001", "UBOB0001", "chatting among ourselves")
        self.slack.message("COTHER001", "UBOB0001", "unlisted channel", mention=True)
        self.slack.message("CTEAM0001", "UBOB0001", "edited", subtype="message_changed")
        self.slack.message("CTEAM0001", "UBOB0001", "joined", subtype="channel_join")
        self.slack.message("CTEAM0001", "UOTHERBOT", "beep", mention=True, bot_id="BOTHER01")
        self.slack.message("CTEAM0001", BOT_USER, "myself", mention=True)
        asked = self.slack.message("CTEAM0001", "UBOB0001", "what time is it?", mention=True, user_profile={"display_name": "Bob", "name": "bob"})
        await wait_for(lambda: self.slack.texts("CTEAM0001"), what="the channel reply")
        self.assertEqual(self.slack.sent[0]["thread_ts"], None)
        self.assertEqual(len(self.model.requests), 1)
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("Bob (@bob): @clawbot what time is it?", prompt)

        root = self.slack.message("CTEAM0001", "UBOB0001", "a thread question", mention=True, thread_ts=asked)
        await wait_for(lambda: len(self.slack.texts("CTEAM0001")) == 2, what="the thread reply")
        self.assertEqual(self.slack.sent[1]["thread_ts"], asked)
        self.slack.message("CTEAM0001", "UCAROL01", "no mention, but under the bot", thread_ts=asked, parent_user_id=BOT_USER)
        await wait_for(lambda: len(self.slack.texts("CTEAM0001")) == 3, what="the reply under the bot's thread")
        self.assertEqual(len(self.model.requests), 3)
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:slack:channel:CTEAM0001"))
        self.assertIsNotNone(store.get(f"agent:main:slack:channel:CTEAM0001:thread:{asked}"))
        self.assertIsNone(store.get("agent:main:slack:channel:COTHER001"))
        self.assertTrue(root)

    async def test_app_mention_only_and_reply_to_mode(self):
        """An app without message.channels only gets app_mention events: they are answered; with replyToMode first, the reply starts a thread under the question; an mpim is a group."""
        await self.start(slack={"groups": {"*": {}}, "replyToMode": "first"}, replies=[openai_text("threaded"), openai_text("group")])
        await self.connected()
        asked = self.slack.message("CTEAM0001", "UBOB0001", "ping", mention=True, app_mention_only=True)
        await wait_for(lambda: self.slack.texts("CTEAM0001"), what="the reply")
        self.assertEqual(self.slack.sent[0]["thread_ts"], asked)
        self.slack.message("GMPIM0001", "UBOB0001", "group dm", mention=True, channel_type="mpim")
        await wait_for(lambda: self.slack.texts("GMPIM0001"), what="the group reply")
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:slack:group:GMPIM0001"))

    async def test_send_method_and_targets(self):
        """`send` to user:U… lands in that user's DM, channel:C… with a thread id in the thread; a name that is no id is refused with the accepted forms."""
        await self.start()
        await self.connected()
        ws, _ = await self.connect()
        res = await ws.request("send", {"channel": "slack", "to": "user:UCAROL01", "message": "hello **Carol**", "idempotencyKey": "k1"})
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["payload"]["chatId"], "DCAROL01")
        self.assertEqual(self.slack.sent[-1]["text"], "hello *Carol*")
        self.slack.conversation("CTEAM0001")
        res = await ws.request("send", {"channel": "slack", "to": "channel:CTEAM0001", "threadId": "1712345678.000100", "message": "in thread", "idempotencyKey": "k2"})
        self.assertTrue(res["ok"], res)
        self.assertEqual(self.slack.sent[-1]["thread_ts"], "1712345678.000100")
        res = await ws.request("send", {"channel": "slack", "to": "#general", "message": "x", "idempotencyKey": "k3"})
        self.assertFalse(res["ok"])
        self.assertIn("channel:C0123ABC", res["error"]["message"])


class StatusTests(SlackMixin, TestCase):
    async def test_status_and_probe(self):
        """channels.status: connected, mode, bot and team, lastInboundAt/lastOutboundAt after a conversation, a live probe (auth.test), and lastError after a failed send."""
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("hi"), openai_text("lost")])
        await self.connected()
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["slack"][0]
        self.assertEqual((row["running"], row["connected"], row["mode"], row["appTokenSource"]), (True, True, "socket", "config"))
        self.assertNotIn("lastInboundAt", row)
        self.slack.dm("UBOB0001", "hi")
        await wait_for(lambda: self.slack.texts("DBOB0001"), what="the reply")
        self.slack.fault("chat.postMessage", Fault("is_archived"))
        self.slack.dm("UBOB0001", "again")
        await wait_for(lambda: len(self.methods("chat.postMessage")) == 2 and self.account().last_error, what="the failed send")
        payload = (await ws.request("channels.status", {"probe": True}))["payload"]
        row = payload["channelAccounts"]["slack"][0]
        self.assertEqual(row["bot"], {"id": BOT_USER, "name": "clawbot"})
        self.assertEqual(row["team"], {"id": "T0001", "name": "Fake Team"})
        self.assertIsInstance(row["lastInboundAt"], int)
        self.assertIsInstance(row["lastOutboundAt"], int)
        self.assertTrue(row["probe"]["ok"])
        self.assertEqual(row["probe"]["socketConnections"], 1)
        self.assertIn("is_archived", row["lastError"])
        self.assertEqual(row["socketConnections"], 1)
        self.assertEqual(payload["channelLabels"]["slack"], "Slack")
        for protocol in (3, 4):
            schemas.validate(protocol, "ChannelsStatusResult", payload)
        code, out, err = await self.cli("channels", "status", "--probe")
        self.assertEqual(code, 0, err)
        self.assertIn("slack default", out)

    async def test_secrets_never_logged(self):
        """Neither token nor the socket URL's one-time ticket reaches the gateway's log file (at debug level), even through errors and reconnects."""
        txaio.set_global_log_level("debug")  # autobahn's own debug lines too (they print the handshake request)
        self.addCleanup(txaio.set_global_log_level, "info")
        await self.start(slack={"dmPolicy": "open"}, replies=[openai_text("x")], logging={"level": "debug"})
        await self.connected()
        self.slack.fault("chat.postMessage", Fault(status=500, garbage=True))
        self.slack.drop_all()
        self.slack.dm("UBOB0001", "hi")
        await wait_for(lambda: self.slack.texts("DBOB0001"), timeout=20, what="the reply")
        log = Path(self.service.settings.logging.file).read_text()
        self.assertIn("reconnecting", log)
        for secret in (BOT_TOKEN, APP_TOKEN, BOT_TOKEN.split("-", 1)[1], APP_TOKEN.split("-", 1)[1]):
            self.assertNotIn(secret, log)
        for url in self.slack.urls:
            self.assertNotIn(url.split("ticket=")[1].split("&")[0], log)


class HttpModeTests(SlackMixin, TestCase):
    async def post(self, body, secret=SECRET, ts=None, path="/slack/events", headers=None, ctype="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = str(int(ts if ts is not None else reactor.seconds()))
        all_headers = {"Content-Type": [ctype], "X-Slack-Request-Timestamp": [stamp]}
        if secret is not None:
            all_headers["X-Slack-Signature"] = [signature(secret, stamp, raw)]
        all_headers.update(headers or {})
        response = await treq.post(f"http://127.0.0.1:{self.service.port}{path}", raw, headers=all_headers, pool=HTTPConnectionPool(reactor, persistent=False))
        return response.code, await treq.content(response)

    def event(self, text, ts="1712345678.000100", event_id="Ev1", user="UBOB0001"):
        return {"type": "event_callback", "event_id": event_id, "team_id": "T0001", "event": {"type": "message", "channel": "DBOB0001", "channel_type": "im", "user": user, "text": text, "ts": ts}}

    async def test_signed_events(self):
        """HTTP mode: no socket; url_verification echoes the challenge; a wrong, missing or stale signature gets 401; a signed event is answered once even when Slack retries it."""
        await self.start(slack={"mode": "http", "appToken": None, "signingSecret": SECRET, "dmPolicy": "open"}, replies=[openai_text("via http")])
        await self.connected()
        self.slack.conversation("DBOB0001", "im")
        self.assertEqual(self.methods("apps.connections.open"), [])
        code, body = await self.post({"type": "url_verification", "challenge": "c-123"})
        self.assertEqual((code, json.loads(body)), (200, {"challenge": "c-123"}))
        self.assertEqual((await self.post(self.event("hi"), secret="wrong-secret"))[0], 401)
        self.assertEqual((await self.post(self.event("hi"), secret=None))[0], 401)
        self.assertEqual((await self.post(self.event("hi"), ts=reactor.seconds() - 600))[0], 401)
        self.assertEqual(self.model.requests, [])
        self.assertEqual((await self.post(self.event("hi")))[0], 200)
        self.assertEqual((await self.post(self.event("hi"), headers={"X-Slack-Retry-Num": ["1"], "X-Slack-Retry-Reason": ["http_timeout"]}))[0], 200)
        await wait_for(lambda: self.slack.texts("DBOB0001"), what="the reply")
        await self.pause(0.3)
        self.assertEqual(self.slack.texts("DBOB0001"), ["via http"])
        self.assertEqual(len(self.model.requests), 1)
        code, body = await self.post(b"command=%2Fopenclaw&text=hi&user_id=UBOB0001", ctype="application/x-www-form-urlencoded")
        self.assertEqual(code, 200)
        self.assertIn("slash commands", json.loads(body)["text"])

    async def test_blank_signing_secret_fails_closed(self):
        """HTTP mode with a blank signing secret does not start and serves no route; status says why."""
        await self.start(slack={"mode": "http", "appToken": None, "signingSecret": "  "})
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        self.assertIn("signingSecret", self.account().snapshot()["lastError"])
        unrouted = (await self.post(self.event("hi"), secret="", path="/never-routed"))[0]
        self.assertEqual((await self.post(self.event("hi"), secret=""))[0], unrouted)  # the root's answer for no route


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


class RestartTests(SlackMixin, TestCase):
    async def test_stop_mid_turn_then_restart(self):
        """Stopping the gateway mid-turn and starting it again: the interrupted question is answered once, a message Slack queued while it was down is answered once, and a late redelivery of the first is dropped."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.start(slack={"dmPolicy": "open"}, replies=[hanging, openai_text("complete answer"), openai_text("second answer")])
        await self.connected()
        self.slack.dm("UBOB0001", "long question")
        first = self.slack.delivered[-1]
        await wait_for(lambda: self.model.requests, what="the first run")
        await self.service.stopService()
        self.slack.dm("UBOB0001", "second question")
        await self.gateway(channels={"slack": self.section({"dmPolicy": "open"})}, **model_config(self.model_url))
        await wait_for(lambda: len(self.slack.texts("DBOB0001")) >= 2, what="both answers")
        self.slack.redeliver(first, attempt=2, reason="timeout")
        await self.pause(0.5)
        self.assertEqual(self.slack.texts("DBOB0001"), ["complete answer", "second answer"])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked, ["long question", "long question", "second question"])

    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs: the next gateway answers that question once and the message sent meanwhile once (a real process, a real crash)."""
        self.slack, self.api = await start_slack(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"slack": self.section({"dmPolicy": "open"})},
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
        await wait_for(lambda: self.slack.live(), timeout=30, what="the gateway's socket")
        self.slack.dm("UBOB0001", "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        self.slack.dm("UBOB0001", "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.slack.texts("DBOB0001")) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.slack.texts("DBOB0001"), ["answer one", "answer two"], second.output.decode()[-2000:])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked.count("question one"), 2)
        self.assertEqual(asked.count("question two"), 1)
