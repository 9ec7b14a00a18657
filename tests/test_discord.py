"""
Discord end to end: the gateway against the fake Discord (tests/fakes_discord.py:
REST and a WebSocket gateway) and the fake model provider (tests/fakes.py), on
loopback.
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

from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.fakes_discord import RestFault, start_discord, too_many, wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
GENERAL = "700000000000000001"
RANDOM = "700000000000000002"
GUILD = "800000000000000001"
ALICE = "600000000000000042"
BOB = "600000000000000043"


class DiscordMixin(GatewayMixin):
    timeout = 60

    async def start(self, discord=None, replies=(), heartbeat_ms=41250, before=None, **config):
        self.dc, self.api = await start_discord(self, heartbeat_ms)
        self.dc.add_guild(GUILD, "Test Server", {GENERAL: "general", RANDOM: "random"})
        if before is not None:
            before(self.dc)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        self.section = {k: v for k, v in {"token": self.dc.token, "apiBase": self.api, **(discord or {})}.items() if v is not None}
        await self.gateway(channels={"discord": self.section}, **model_config(self.model_url), **config)
        return self.service

    async def restart(self):
        await self.service.stopService()
        await self.gateway(channels={"discord": self.section}, **model_config(self.model_url))

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("discord", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    def dm_texts(self, user):
        return self.dc.sent_to(self.dc.dm_channel(user))

    async def code_for(self, user):
        text = await wait_for(lambda: next((t for t in self.dm_texts(user) if CODE.search(t)), None), what="a pairing code")
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

    def asked(self):
        return [r["body"]["messages"][-1]["content"] for r in self.model.requests]


class RoundTripTests(DiscordMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve --notify` (a subprocess) tells the sender and lets the next DM through; the reply comes back chunked at 2000, the first chunk a reply without pings, with typing shown."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 350 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        identify = self.dc.identifies[0]
        self.assertEqual(identify["intents"], 1 | 1 << 9 | 1 << 12 | 1 << 15)
        self.dc.dm(ALICE, "hello there")
        code = await self.code_for(ALICE)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve discord {code}", self.dm_texts(ALICE)[0])

        status, out, err = await self.cli("pairing", "list", "discord")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "discord", code, "--notify")
        self.assertEqual(status, 0, err)
        await wait_for(lambda: len(self.dm_texts(ALICE)) == 2, what="the approval notice")
        self.assertIn("access approved", self.dm_texts(ALICE)[1])

        question = self.dc.dm(ALICE, "what is the plan?")
        await wait_for(lambda: len(self.dm_texts(ALICE)) >= 5, what="the chunked reply")
        replies = [m for m in self.dc.sent if m["channel_id"] == self.dc.dm_channel(ALICE)][2:]
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["content"]) <= 2000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["content"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([(r.get("message_reference") or {}).get("message_id") for r in replies], [question, None, None])
        self.assertTrue(all(r["allowed_mentions"] == {"parse": []} for r in replies))
        self.assertEqual(self.asked(), ["what is the plan?"])
        self.assertIn(self.dc.dm_channel(ALICE), self.dc.typing)
        self.assertTrue(all(ua.startswith("DiscordBot (") for ua in self.dc.user_agents))
        await self.pause(0.3)
        self.assertEqual(len(self.model.requests), 1)  # the bot's own echoed messages were not answered


class GatewayFaultTests(DiscordMixin, TestCase):
    async def test_zombie_connection_resumes(self):
        """Heartbeats without ACK: the client closes with a non-1000 code and RESUMEs at resume_gateway_url (no new IDENTIFY, no framework backoff); messages flow again."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("still alive")], heartbeat_ms=200)
        await self.connected()
        await wait_for(lambda: len(self.dc.heartbeats) >= 2, what="heartbeats")
        first = self.dc.session.id
        self.dc.zombie = True
        await wait_for(lambda: self.dc.resumes, what="a RESUME")
        self.dc.zombie = False
        self.assertEqual(self.dc.client_closes[0], 4000)
        self.assertEqual(self.dc.resumes[0]["session_id"], first)
        self.assertEqual(self.dc.conns[-1].path, "/resume")
        self.assertEqual(self.dc.conns[-1].params, {"v": ["10"], "encoding": ["json"]})
        self.assertEqual(len(self.dc.identifies), 1)
        await wait_for(lambda: self.dc.session.conn is not None and self.dc.session.conn.identified, what="resumed")
        self.dc.dm(ALICE, "are you there?")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply after resuming")
        self.assertEqual(self.dm_texts(ALICE), ["still alive"])
        self.assertEqual(self.account().reconnect_attempts, 0)

    async def test_heartbeat_on_request(self):
        """op 1 from the server gets a heartbeat at once, not at the next interval."""
        await self.start(heartbeat_ms=60_000)
        await self.connected()
        before = len(self.dc.heartbeats)
        self.dc.ask_heartbeat()
        await wait_for(lambda: len(self.dc.heartbeats) > before, timeout=2, what="the requested beat")

    async def test_drop_replays_missed_events(self):
        """A dropped connection is resumed; a DM sent while it was down is replayed by Discord and answered once."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("caught up"), openai_text("live")])
        await self.connected()
        self.dc.drop()
        missed = self.dc.dm(ALICE, "sent while you were away")
        await wait_for(lambda: self.dm_texts(ALICE), what="the replayed message answered")
        self.assertEqual(len(self.dc.resumes), 1)
        self.dc.dm(ALICE, "and now")
        await wait_for(lambda: len(self.dm_texts(ALICE)) == 2, what="the live message answered")
        await self.pause(0.3)
        self.assertEqual(self.asked(), ["sent while you were away", "and now"])
        self.assertEqual(self.dc.sent[0]["message_reference"]["message_id"], missed)

    async def test_reconnect_op7(self):
        """op 7: close and RESUME at once; the same session goes on."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("ok")])
        await self.connected()
        session = self.dc.session.id
        self.dc.reconnect()
        await wait_for(lambda: self.dc.resumes, what="a RESUME")
        self.assertNotIn(self.dc.client_closes[0], (1000, 1001))
        self.assertEqual((self.dc.resumes[0]["session_id"], len(self.dc.identifies)), (session, 1))
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply")

    async def test_invalid_session_resumable(self):
        """op 9 d:true: reconnect and RESUME the same session."""
        await self.start()
        await self.connected()
        self.dc.invalid_session(True)
        await wait_for(lambda: self.dc.resumes, what="a RESUME")
        self.assertEqual(len(self.dc.identifies), 1)

    async def test_invalid_session_not_resumable(self):
        """op 9 d:false: wait 1-5 s, then IDENTIFY afresh (a new session), and messages flow."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("fresh")])
        await self.connected()
        started = reactor.seconds()
        self.dc.invalid_session(False)
        await wait_for(lambda: len(self.dc.identifies) == 2, timeout=15, what="a second IDENTIFY")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertGreaterEqual(self.dc.identified_at[1] - self.dc.identified_at[0], 5.0)  # identifies 5 s apart
        self.assertEqual(self.dc.resumes, [])
        await wait_for(lambda: self.account().connected and self.dc.session.conn is not None, what="connected again")
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply")

    async def test_resume_refused_identifies(self):
        """A RESUME Discord no longer accepts (op 9 d:false) falls back to a fresh IDENTIFY."""
        await self.start()
        await self.connected()
        self.dc.session.valid = False
        self.dc.close(4000)
        await wait_for(lambda: len(self.dc.identifies) == 2, timeout=15, what="a fresh IDENTIFY")
        self.assertEqual(len(self.dc.resumes), 1)
        await self.connected()

    async def test_close_4000_resumes(self):
        """Close 4000 (unknown error) is reconnectable: RESUME."""
        await self.start()
        await self.connected()
        self.dc.close(4000, "Unknown error.")
        await wait_for(lambda: self.dc.resumes, what="a RESUME")
        await wait_for(lambda: self.account().connected, what="connected")

    async def test_reconnect_storm_backs_off(self):
        """A gateway that closes every connection right after READY/RESUMED is not hammered: after three short connections the framework's backoff takes over."""
        await self.start(before=lambda dc: setattr(dc, "storm", 4000))
        await wait_for(lambda: self.account().reconnect_attempts >= 1, what="a backoff")
        self.assertLessEqual(len(self.dc.conns), 4)
        await self.pause(1.0)
        self.assertLessEqual(len(self.dc.conns), 7)
        self.dc.storm = None
        await wait_for(lambda: self.account().connected and self.dc.session.conn is not None, timeout=20, what="connected once the storm is over")

    async def test_close_4009_identifies(self):
        """Close 4009 (session timed out): reconnect with a fresh IDENTIFY."""
        await self.start()
        await self.connected()
        self.dc.close(4009, "Session timed out.")
        await wait_for(lambda: len(self.dc.identifies) == 2, timeout=15, what="a fresh IDENTIFY")
        self.assertEqual(self.dc.resumes, [])

    async def test_close_4004_stops(self):
        """Close 4004: the account stops with the token fix in status and never reconnects."""
        await self.start()
        await self.connected()
        self.dc.close(4004, "Authentication failed.")
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        await self.pause(2.5)
        self.assertEqual(len(self.dc.conns), 1)
        self.assertEqual(self.dc.calls.count(("GET", "/gateway/bot")), 1)
        self.assertIn("channels.discord.token", self.account().snapshot()["lastError"])

    async def test_disallowed_intent_4014(self):
        """Without the Message Content intent enabled for the app, IDENTIFY is closed with 4014: the account stops, status names the fix, and one IDENTIFY was made."""
        await self.start(before=lambda dc: setattr(dc, "app_flags", 0))
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        await self.pause(2.5)
        error = self.account().snapshot()["lastError"]
        self.assertIn("Message Content Intent", error)
        self.assertIn("intents.messageContent", error)
        self.assertEqual(len(self.dc.identifies), 1)

    async def test_message_content_off(self):
        """intents.messageContent: false leaves the privileged intent out, so an app without it connects."""
        await self.start(discord={"intents": {"messageContent": False}}, before=lambda dc: setattr(dc, "app_flags", 0))
        await self.connected()
        self.assertEqual(self.dc.identifies[0]["intents"] & (1 << 15), 0)
        probe = await self.account().probe(5)
        self.assertEqual((probe["ok"], probe["messageContentIntent"]), (True, "disabled"))

    async def test_identify_budget_used_up(self):
        """With Discord's daily session starts used up, the account waits for reset_after (saying so in status) before it identifies."""

        def spent(dc):
            dc.remaining, dc.reset_after_ms = 0, 1500

        await self.start(before=spent)
        await wait_for(lambda: "daily limit" in (self.account().snapshot().get("lastError") or ""), what="the wait in status")
        self.assertEqual(self.dc.identifies, [])
        await wait_for(lambda: self.account().connected, what="connected after the reset")
        self.assertNotIn("lastError", self.account().snapshot())

    async def test_bad_token_stops_without_looping(self):
        """401 from /gateway/bot stops the account before any gateway connection; nothing is asked again."""
        await self.start(discord={"token": "Bot wrong-token"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        await self.pause(2.5)
        self.assertEqual(self.dc.calls, [("GET", "/gateway/bot")])
        self.assertEqual(self.dc.conns, [])
        self.assertIn("channels.discord.token", self.account().snapshot()["lastError"])


class RestFaultTests(DiscordMixin, TestCase):
    async def test_buckets_prevent_429(self):
        """A reply of five chunks into a bucket of 2 per 1.5 s: the client waits for each reset the headers announce, so Discord never answers 429, and the chunks arrive in order."""
        text = "\n\n".join(f"part {i} " + "x" * 1900 for i in range(5))
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text(text)], before=lambda dc: (setattr(dc, "bucket_limit", 2), setattr(dc, "bucket_window", 1.5)))
        await self.connected()
        self.dc.dm(ALICE, "long please")
        await wait_for(lambda: len(self.dm_texts(ALICE)) == 5, timeout=20, what="five chunks")
        self.assertEqual(self.dc.served_429, 0)
        self.assertEqual([t.split()[1] for t in self.dm_texts(ALICE)], ["0", "1", "2", "3", "4"])

    async def test_429_retry_after(self):
        """A 429 with a float retry_after holds the chat that long; the same reply then goes once."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("patience")])
        await self.connected()
        self.dc.fault("POST /channels/{id}/messages", too_many(0.8))
        started = reactor.seconds()
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 0.8)
        self.assertEqual(self.dm_texts(ALICE), ["patience"])
        self.assertEqual(self.dc.served_429, 1)

    async def test_global_429(self):
        """A global 429 holds every route for retry_after, then the reply goes."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("after the pause")])
        await self.connected()
        self.dc.fault("POST /channels/{id}/messages", too_many(0.6, is_global=True))
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply")
        self.assertEqual(self.dm_texts(ALICE), ["after the pause"])

    async def test_missing_access_dropped(self):
        """50001 Missing Access and 50013 Missing Permissions drop the reply (one attempt, no retry); typing refused there is not asked again; other chats are served."""
        replies = [openai_text("never seen"), openai_text("nor this"), openai_text("fine here")]
        await self.start(discord={"groups": {"*": {"requireMention": False}}}, replies=replies)
        await self.connected()
        self.dc.forbidden[GENERAL] = 50001
        self.dc.forbidden[RANDOM] = 50013
        self.dc.post(GENERAL, BOB, "one")
        self.dc.post(RANDOM, BOB, "two")
        await wait_for(lambda: len([c for c in self.dc.calls if c[0] == "POST" and c[1].endswith("/messages")]) == 2, what="both attempts")
        await self.pause(1.5)
        attempts = [c for c in self.dc.calls if c[0] == "POST" and c[1].endswith("/messages")]
        self.assertEqual(len(attempts), 2)
        self.assertEqual(self.account().inbox.pending(), [])
        self.assertIn("Send Messages", self.account().last_error)
        typing = [c for c in self.dc.calls if c[1] == f"/channels/{GENERAL}/typing"]
        self.assertEqual(len(typing), 1)
        del self.dc.forbidden[GENERAL]
        self.dc.forbidden.clear()
        self.dc.dm(ALICE, "hello")  # DM pairing code still goes out
        await wait_for(lambda: self.dm_texts(ALICE), what="another chat served")

    async def test_unknown_channel_send(self):
        """`send` to a channel Discord does not know (10003) fails once with Discord's words; a bare id is refused as ambiguous."""
        await self.start()
        await self.connected()
        ws, _ = await self.connect()
        answer = await ws.request("send", {"channel": "discord", "to": "channel:123456789012345678", "message": "hi", "idempotencyKey": "k1"})
        self.assertFalse(answer["ok"])
        self.assertIn("Unknown Channel", answer["error"]["message"])
        answer = await ws.request("send", {"channel": "discord", "to": "123456789012345678", "message": "hi", "idempotencyKey": "k2"})
        self.assertFalse(answer["ok"])
        self.assertIn("user:123456789012345678", answer["error"]["message"])
        self.assertEqual(len([c for c in self.dc.calls if c[1] == "/channels/123456789012345678/messages"]), 1)

    async def test_server_error_retried(self):
        """A 502 on send is retried with backoff; the reply arrives once."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("eventually")])
        await self.connected()
        self.dc.fault("POST /channels/{id}/messages", RestFault(502, {"message": "Bad Gateway", "code": 0}))
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), timeout=15, what="the reply")
        self.assertEqual(self.dm_texts(ALICE), ["eventually"])

    async def test_revoked_token_never_loops(self):
        """A token revoked while running: the first 401 (typing or the reply) ends every later request locally, so Discord sees exactly one; the replies are dropped with the fix in status."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("a"), openai_text("b")])
        await self.connected()
        before = len(self.dc.calls)
        self.dc.token = "revoked"
        self.dc.dm(ALICE, "one")
        self.dc.dm(ALICE, "two")
        await wait_for(lambda: len(self.model.requests) == 2, what="both runs")
        await wait_for(lambda: self.account().inbox.pending() == [], what="both dropped")
        await self.pause(1.0)
        self.assertEqual(len(self.dc.calls) - before, 1)
        self.assertEqual(self.dm_texts(ALICE), [])
        self.assertIn("channels.discord.token", self.account().last_error)


class GuildTests(DiscordMixin, TestCase):
    async def test_mention_gating_and_channel_session(self):
        """In a listed channel only mentions (or replies to the bot) reach the agent, in the channel's own session; the prompt names the speaker; unlisted channels are ignored."""
        await self.start(discord={"groups": {GENERAL: {}}}, replies=[openai_text("hi channel"), openai_text("again")])
        await self.connected()
        self.dc.post(GENERAL, BOB, "chatting among ourselves")
        self.dc.post(RANDOM, BOB, "unlisted", mention=True)
        asked = self.dc.post(GENERAL, BOB, "what time is it?", mention=True)
        await wait_for(lambda: self.dc.sent_to(GENERAL), what="the channel reply")
        self.assertEqual(len(self.model.requests), 1)
        self.assertIn("Bob (@bob): @claw_test_bot what time is it?", self.asked()[0])
        self.assertIn("Test Server #general", self.asked()[0])
        self.assertEqual(self.dc.sent[0]["message_reference"]["message_id"], asked)
        earlier = self.dc.sent[0]
        self.dc.post(GENERAL, BOB, "and you?", referenced_message={"id": earlier["id"], "author": self.dc.user(self.dc.bot_id, self.dc.username, bot=True), "content": "hi channel"})
        await wait_for(lambda: len(self.dc.sent_to(GENERAL)) == 2, what="the reply to a reply")
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:discord:channel:{GENERAL}"))
        self.assertIsNone(store.get(f"agent:main:discord:channel:{RANDOM}"))

    async def test_threads(self):
        """Thread messages run in `:thread:<id>` sessions of the parent channel (its rules apply) and are answered in the thread; a thread Discord never announced is looked up once."""
        thread, hidden = "710000000000000001", "710000000000000002"

        def threads(dc):
            dc.add_thread(thread, GENERAL)
            dc.add_thread(hidden, GENERAL, hidden=True)

        await self.start(discord={"groups": {GENERAL: {"requireMention": False}}}, replies=[openai_text("in thread"), openai_text("in hidden"), openai_text("again")], before=threads)
        await self.connected()
        self.dc.post(thread, BOB, "thread question")
        await wait_for(lambda: self.dc.sent_to(thread), what="the thread reply")
        self.dc.post(hidden, BOB, "hidden question")
        await wait_for(lambda: self.dc.sent_to(hidden), what="the hidden thread reply")
        self.dc.post(hidden, BOB, "second")
        await wait_for(lambda: len(self.dc.sent_to(hidden)) == 2, what="the second reply")
        self.assertEqual(self.dc.sent_to(GENERAL), [])
        self.assertIn(thread, self.dc.typing)
        self.assertEqual(self.dc.calls.count(("GET", f"/channels/{hidden}")), 1)
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:discord:channel:{GENERAL}:thread:{thread}"))
        self.assertIsNotNone(store.get(f"agent:main:discord:channel:{GENERAL}:thread:{hidden}"))


class SendTests(DiscordMixin, TestCase):
    async def test_cli_message_send_to_user(self):
        """`openclaw message send --channel discord --to user:<id>` opens the DM channel and posts there, without pings."""
        await self.start()
        await self.connected()
        status, out, err = await self.cli("message", "send", "--channel", "discord", "--to", f"user:{ALICE}", "--message", "hello <@everyone>")
        self.assertEqual(status, 0, err)
        (sent,) = self.dc.sent
        self.assertEqual((sent["channel_id"], sent["content"], sent["allowed_mentions"]), (self.dc.dm_channel(ALICE), "hello <@everyone>", {"parse": []}))
        self.assertIn(("POST", "/users/@me/channels"), self.dc.calls)

    async def test_media_upload_and_link(self):
        """`send` with a buffer uploads it as multipart (payload_json + files[0]); a media URL goes as a link after the text."""
        import base64

        await self.start()
        await self.connected()
        ws, _ = await self.connect()
        answer = await ws.request("send", {"channel": "discord", "to": f"channel:{GENERAL}", "buffer": base64.b64encode(b"meeting notes").decode(), "filename": "notes.txt", "contentType": "text/plain", "message": "notes", "idempotencyKey": "m1"})
        self.assertTrue(answer["ok"], answer)
        upload = self.dc.sent[-1]
        self.assertEqual((upload["content"], upload["_files"], upload["_sizes"], upload["attachments"]), ("notes", ["files[0]"], [13], [{"id": 0, "filename": "notes.txt"}]))
        answer = await ws.request("send", {"channel": "discord", "to": f"channel:{GENERAL}", "message": "a cat", "mediaUrl": "https://example.com/cat.jpg", "idempotencyKey": "m2"})
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(self.dc.sent[-1]["content"], "a cat\nhttps://example.com/cat.jpg")

    async def test_poll_and_thread_target(self):
        """`poll` posts a Discord poll; `channel:<id>:thread:<id>` posts into the thread."""
        thread = "710000000000000003"
        await self.start(before=lambda dc: dc.add_thread(thread, GENERAL))
        await self.connected()
        ws, _ = await self.connect()
        answer = await ws.request("poll", {"channel": "discord", "to": f"channel:{GENERAL}", "question": "Lunch?", "options": ["pizza", "soup"], "idempotencyKey": "p1"})
        self.assertTrue(answer["ok"], answer)
        poll = self.dc.sent[0]["poll"]
        self.assertEqual((poll["question"]["text"], [a["poll_media"]["text"] for a in poll["answers"]], poll["duration"]), ("Lunch?", ["pizza", "soup"], 24))
        answer = await ws.request("send", {"channel": "discord", "to": f"channel:{GENERAL}:thread:{thread}", "message": "in the thread", "idempotencyKey": "s1"})
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(self.dc.sent_to(thread), ["in the thread"])


class StatusTests(DiscordMixin, TestCase):
    async def test_status_reports_truthfully(self):
        """channels.status: connected, bot, last inbound/outbound times after a conversation, a live probe; after a fatal close, not connected with the reason."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("hey")])
        await self.connected()
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["discord"][0]
        self.assertEqual((row["connected"], row["running"], row["mode"], row["bot"]["id"]), (True, True, "gateway", self.dc.bot_id))
        self.assertNotIn("lastInboundAt", row)
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), what="the reply")
        payload = (await ws.request("channels.status", {"probe": True}))["payload"]
        row = payload["channelAccounts"]["discord"][0]
        self.assertIn("lastInboundAt", row)
        await wait_for(lambda: self.account().last_outbound_at, what="outbound time")
        status = (await ws.request("channels.status", {"probe": True}))["payload"]
        for protocol in (3, 4):
            schemas.validate(protocol, "ChannelsStatusResult", status)
        row = status["channelAccounts"]["discord"][0]
        self.assertIn("lastOutboundAt", row)
        self.assertEqual((row["probe"]["ok"], row["probe"]["bot"]["username"], row["probe"]["messageContentIntent"]), (True, "claw_test_bot", "enabled"))
        self.dc.close(4004)
        await wait_for(lambda: self.account().state == "auth-failed", what="stopped")
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["discord"][0]
        self.assertEqual((row["connected"], row["running"]), (False, False))
        self.assertIn("4004", row["lastError"])

    async def test_token_never_logged(self):
        """The bot token never reaches the gateway's log file, through reconnects and failed sends included."""
        await self.start(discord={"dmPolicy": "open"}, replies=[openai_text("x")])
        await self.connected()
        self.dc.fault("POST /channels/{id}/messages", RestFault(500, {"message": "oops", "code": 0}))
        self.dc.close(4000)
        self.dc.dm(ALICE, "hi")
        await wait_for(lambda: self.dm_texts(ALICE), timeout=15, what="the reply")
        log = Path(self.service.settings.logging.file).read_text()
        self.assertIn("discord", log)
        self.assertNotIn(self.dc.token, log)


class ConfigTests(TestCase):
    def test_discord_keys_are_checked(self):
        """Wrong Discord values stop the gateway from starting, naming the key; upstream keys this gateway does not use are warnings."""
        from openclaw.config import ConfigError
        from tests.helpers import scratch_home
        from tests.wsclient import gateway_settings

        home = scratch_home(self)
        with self.assertRaises(ConfigError) as caught:
            gateway_settings(home, channels={"discord": {"intents": {"messageContent": "yes"}, "accounts": {"work": {"timeoutSeconds": 0}}}})
        self.assertEqual([i.path for i in caught.exception.issues], ["channels.discord.intents.messageContent", "channels.discord.accounts.work.timeoutSeconds"])
        settings = gateway_settings(home, channels={"discord": {"token": "t", "guilds": {}, "dm": {"policy": "open"}}})
        self.assertEqual([w.path for w in settings.warnings], ["channels.discord.guilds", "channels.discord.dm"])

    def test_token_sources(self):
        """The token comes from config (a pasted "Bot " prefix removed), else tokenFile, else DISCORD_BOT_TOKEN for the default account only; a bad apiBase is refused."""
        from openclaw.channels.discord.platform import DiscordPlatform, resolve_token
        from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem

        env = {"DISCORD_BOT_TOKEN": "from-env"}
        self.assertEqual(resolve_token(AccountConfig("discord", "default", {"token": " Bot abc.def "}, env)), ("abc.def", "config"))
        path = Path(self.mktemp())
        path.write_text("from-file\n")
        self.assertEqual(resolve_token(AccountConfig("discord", "default", {"tokenFile": str(path)}, env)), ("from-file", "file"))
        self.assertEqual(resolve_token(AccountConfig("discord", "default", {}, env)), ("from-env", "env"))
        self.assertEqual(resolve_token(AccountConfig("discord", "work", {}, env)), (None, "none"))
        with self.assertRaises(ConfigProblem):
            resolve_token(AccountConfig("discord", "default", {"tokenFile": str(path) + ".missing"}, env))
        host = ChannelHost(reactor, None)
        for base in ("ftp://discord.com/api", "https://user@discord.com/api", "https://discord.com/api?x=1"):
            with self.assertRaises(ConfigProblem):
                DiscordPlatform().build(AccountConfig("discord", "default", {"token": "t", "apiBase": base}), host)


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


class RestartTests(DiscordMixin, TestCase):
    async def test_stop_mid_turn_then_restart(self):
        """Stopping the gateway mid-turn and starting it again: the session is RESUMEd from the journal (no new IDENTIFY), Discord replays the DM sent while it was down, and each question is answered once."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.start(discord={"dmPolicy": "open"}, replies=[hanging, openai_text("complete answer"), openai_text("second answer")])
        await self.connected()
        session = self.dc.session.id
        first = self.dc.dm(ALICE, "long question")
        await wait_for(lambda: self.model.requests, what="the first run")
        await self.service.stopService()
        self.assertNotIn(self.dc.client_closes[-1], (1000, 1001))
        self.dc.dm(ALICE, "second question")
        await self.gateway(channels={"discord": self.section}, **model_config(self.model_url))
        await wait_for(lambda: len(self.dm_texts(ALICE)) >= 2, what="both answers")
        await self.pause(0.5)
        self.assertEqual(self.dm_texts(ALICE), ["complete answer", "second answer"])
        self.assertEqual(self.dc.sent[0]["message_reference"]["message_id"], first)
        self.assertEqual(self.asked(), ["long question", "long question", "second question"])
        self.assertEqual((len(self.dc.identifies), [r["session_id"] for r in self.dc.resumes]), (1, [session]))

    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs: the next gateway process RESUMEs, answers that question once and the DM sent meanwhile once (a real process, a real crash)."""
        self.dc, self.api = await start_discord(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"discord": {"token": self.dc.token, "apiBase": self.api, "dmPolicy": "open"}},
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
        await wait_for(lambda: self.dc.session is not None and self.dc.session.conn is not None, timeout=30, what="the gateway identified")
        self.dc.dm(ALICE, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        self.dc.dm(ALICE, "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.dm_texts(ALICE)) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.dm_texts(ALICE), ["answer one", "answer two"], second.output.decode()[-2000:])
        self.assertEqual(self.asked().count("question one"), 2)
        self.assertEqual(self.asked().count("question two"), 1)
        self.assertEqual(len(self.dc.identifies), 1)
        self.assertEqual(len(self.dc.resumes), 1)
