"""
Matrix end to end: the gateway against the fake homeserver (tests/fakes_matrix.py)
and the fake model provider (tests/fakes.py), on loopback; plus the sans-IO
parts (sync parsing, mentions, threads, config spellings, transaction ids).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.channels.interfaces import DM, GROUP, THREAD, AccountConfig, Outbound
from openclaw.channels.matrix.api import TokenRefused, map_error
from openclaw.channels.matrix.channel import html, txn_for
from openclaw.channels.matrix.events import JoinedRoom, Me, Rooms, parse_sync, strip_reply_fallback, to_message
from openclaw.channels.matrix.platform import MatrixPlatform
from openclaw.channels.interfaces import RetryAfter, Unreachable
from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.fakes_matrix import BOT, Fault, start_matrix
from tests.fakes_telegram import wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
ALICE = "@alice:fake.test"
BOB = "@bob:fake.test"


class MatrixMixin(GatewayMixin):
    timeout = 60

    async def start(self, matrix=None, replies=(), login=False, **config):
        if not hasattr(self, "hs"):
            self.hs, self.url = await start_matrix(self)
            self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        await self.gateway(channels={"matrix": self.section(matrix, login)}, **model_config(self.model_url), **config)
        return self.service

    def section(self, matrix=None, login=False):
        section = {"homeserver": self.url, "syncTimeoutSeconds": 1}
        if login:
            section.update({"userId": BOT, "password": self.hs.password})
        else:
            if not getattr(self, "access_token", None):
                self.access_token = self.hs.token()
            section["accessToken"] = self.access_token
        section.update(matrix or {})
        return {k: v for k, v in section.items() if v is not None}

    async def hs_only(self):
        """The fake homeserver and model without a gateway yet (to script rooms before the first sync)."""
        self.hs, self.url = await start_matrix(self)
        self.model, self.model_url = await start_fake(self)

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("matrix", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    async def code_for(self, room):
        text = await wait_for(lambda: next((t for t in self.hs.texts(room) if CODE.search(t)), None), what="a pairing code")
        return CODE.search(text).group(1)

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    def sent(self, room):
        return [m for m in self.hs.sent if m["room"] == room]


class RoundTripTests(MatrixMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve matrix` (a subprocess) lets the next DM through; the chunked reply arrives in order with typing shown and one transaction id per chunk."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        room, _ = self.hs.dm(ALICE, "hello there")
        code = await self.code_for(room)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve matrix {code}", self.hs.texts(room)[0])
        self.assertIn(f"your Matrix id: {ALICE}", self.hs.texts(room)[0])

        status, out, err = await self.cli("pairing", "list", "matrix")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "matrix", code)
        self.assertEqual(status, 0, err)

        self.hs.say(room, ALICE, "what is the plan?")
        replies = await wait_for(lambda: len(self.hs.texts(room)) >= 4 and self.sent(room)[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["content"]["body"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["content"]["body"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual(len({r["txn"] for r in self.sent(room)}), 4)
        self.assertNotIn("m.relates_to", replies[0]["content"])  # replyToMode defaults to off on Matrix
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        self.assertTrue(any(t["room"] == room and t["typing"] is True and t["user"] == BOT for t in self.hs.typing))
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:main"))

    async def test_first_start_does_not_replay_history(self):
        """A fresh account (no journaled next_batch) answers nothing already in its rooms; the first sync carries no since, later ones do."""
        await self.hs_only()
        room = self.hs.room(ALICE, direct=True)
        self.hs.say(room, ALICE, "old message one")
        self.hs.say(room, ALICE, "old message two")
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("fresh answer")])
        await self.connected()
        await self.pause(0.5)
        self.assertEqual(self.model.requests, [])
        self.assertNotIn("since", self.hs.syncs[0])
        self.hs.say(room, ALICE, "new message")
        await wait_for(lambda: self.hs.texts(room), what="the answer")
        await self.pause(0.5)  # our own reply comes back in the sync stream: it is not answered
        self.assertEqual(self.hs.texts(room), ["fresh answer"])
        self.assertEqual([r["body"]["messages"][-1]["content"] for r in self.model.requests], ["new message"])
        self.assertTrue(all("since" in s for s in self.hs.syncs[1:]))



class ErrorTests(MatrixMixin, TestCase):
    async def test_unknown_token_stops_without_looping(self):
        """401 M_UNKNOWN_TOKEN on a configured token stops the account (auth-failed) with the fix in status; whoami is not called again."""
        await self.hs_only()
        self.access_token = "syt_revoked_token_value"
        await self.start()
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        await self.pause(2.5)
        self.assertEqual(sum(1 for name, _ in self.hs.calls if name == "whoami"), 1)
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["matrix"][0]
        self.assertEqual((row["running"], row["connected"]), (False, False))
        self.assertIn("M_UNKNOWN_TOKEN", row["lastError"])
        self.assertIn("check channels.matrix.accessToken", row["lastError"])

    async def test_token_revoked_mid_sync(self):
        """A configured token refused by a later sync stops the account too (no retry loop on a dead token)."""
        await self.start(matrix={"dmPolicy": "open"})
        await self.connected()
        self.hs.revoke()
        self.hs.dm(ALICE, "wake the poll")
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("M_UNKNOWN_TOKEN", self.account().last_error)

    async def test_send_retry_after(self):
        """429 M_LIMIT_EXCEEDED with retry_after_ms on a send holds that room that long, then the reply goes out once (same transaction id)."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("patience")])
        await self.connected()
        self.hs.fault("send", Fault(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=1200))
        started = reactor.seconds()
        room, _ = self.hs.dm(ALICE, "hi")
        await wait_for(lambda: self.hs.texts(room), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.2)
        self.assertEqual(self.hs.texts(room), ["patience"])

    async def test_lost_answer_is_not_sent_twice(self):
        """The homeserver posts the message but the answer is lost (connection dropped): the retry reuses the transaction id, so the room gets it once."""
        await self.start(matrix={"dmPolicy": "open", "timeoutSeconds": 2}, replies=[openai_text("exactly once")])
        await self.connected()
        self.hs.fault("send", Fault(commit=True))
        room, _ = self.hs.dm(ALICE, "hi")
        await wait_for(lambda: sum(1 for name, _ in self.hs.calls if name == "send") >= 2, timeout=20, what="the retried send")
        await self.pause(0.5)
        self.assertEqual(self.hs.texts(room), ["exactly once"])
        self.assertEqual(self.account().inbox.pending(), [])

    async def test_forbidden_send_is_dropped(self):
        """403 M_FORBIDDEN on a send (kicked, no power) drops the reply at once: no retry, the journal is emptied, other rooms still served."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("not allowed"), openai_text("hello bob")])
        await self.connected()
        self.hs.fault("send", Fault(403, "M_FORBIDDEN", "You don't have permission to post"))
        room, _ = self.hs.dm(ALICE, "hi")
        await wait_for(lambda: any(name == "send" for name, _ in self.hs.calls), what="the send attempt")
        await self.pause(1.5)
        self.assertEqual(sum(1 for name, _ in self.hs.calls if name == "send"), 1)
        self.assertEqual(self.account().inbox.pending(), [])
        other, _ = self.hs.dm(BOB, "hi")
        await wait_for(lambda: self.hs.texts(other), what="another room still served")

    async def test_sync_retry_after(self):
        """429 on /sync waits retry_after_ms and syncs again without reconnecting."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("ok")])
        await self.connected()
        self.hs.fault("sync", Fault(429, "M_LIMIT_EXCEEDED", "slow down", retry_after_ms=500))
        room, _ = self.hs.dm(ALICE, "hi")
        await wait_for(lambda: self.hs.texts(room), what="the answer")
        self.assertEqual(self.account().reconnect_attempts, 0)

    async def test_server_errors_back_off_and_recover(self):
        """A 502 with an HTML body and a stalled sync end the loop; the account reconnects with backoff and resumes from its next_batch."""
        await self.start(matrix={"dmPolicy": "open", "timeoutSeconds": 1}, replies=[openai_text("back again")])
        await self.connected()
        self.hs.fault("sync", Fault(502, garbage=True), Fault(stall=True))
        await wait_for(lambda: self.account().reconnect_attempts >= 2 and self.account().connected, timeout=20, what="two reconnects")
        room, _ = self.hs.dm(ALICE, "still there?")
        await wait_for(lambda: self.hs.texts(room), timeout=20, what="the answer after the outage")
        self.assertEqual(self.hs.texts(room), ["back again"])

    async def test_token_never_logged(self):
        """The access token (and the password) never reach the gateway's log file, even through errors."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("x")])
        await self.connected()
        self.hs.fault("sync", Fault(502, garbage=True))
        self.hs.fault("send", Fault(500, "M_UNKNOWN", "oops"))
        room, _ = self.hs.dm(ALICE, "hi")
        await wait_for(lambda: self.hs.texts(room), timeout=15, what="the reply")
        log = Path(self.service.settings.logging.file).read_text()
        self.assertIn("reconnecting", log)
        self.assertNotIn(self.access_token, log)


class LoginTests(MatrixMixin, TestCase):
    async def test_password_login_is_stored_and_reused(self):
        """userId + password log in once; the token is stored 0600 under credentials/matrix/ and the next start reuses it without logging in."""
        await self.hs_only()
        await self.start(login=True)
        await self.connected()
        state = self.service.channels.ports.config.state_dir
        stored = state / "credentials" / "matrix" / "credentials.json"
        value = json.loads(stored.read_text())
        self.assertEqual((value["userId"], value["homeserver"]), (BOT, self.url))
        self.assertIn(value["accessToken"], self.hs.tokens)
        self.assertEqual(stat.S_IMODE(stored.stat().st_mode), 0o600)
        self.assertEqual(self.hs.logins, 1)
        await self.service.stopService()
        await self.start(login=True)
        await self.connected()
        self.assertEqual(self.hs.logins, 1)
        self.assertEqual(self.account().snapshot()["tokenSource"], "stored")

    async def test_refused_stored_token_logs_in_again(self):
        """A stored token the homeserver no longer knows is forgotten and the password logs in afresh."""
        await self.hs_only()
        await self.start(login=True)
        await self.connected()
        await self.service.stopService()
        self.hs.revoke()
        await self.start(login=True)
        await self.connected()
        self.assertEqual(self.hs.logins, 2)
        stored = self.service.channels.ports.config.state_dir / "credentials" / "matrix" / "credentials.json"
        self.assertIn(json.loads(stored.read_text())["accessToken"], self.hs.tokens)

    async def test_wrong_password_stops(self):
        """403 M_FORBIDDEN from /login stops the account with the fix (userId and password) and no retry loop."""
        await self.hs_only()
        await self.start(login=True, matrix={"password": "not the password"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("check channels.matrix.userId and password", self.account().last_error)
        await self.pause(2.5)
        self.assertEqual(sum(1 for name, _ in self.hs.calls if name == "login"), 1)

    async def test_logout_revokes_the_stored_token(self):
        """`channels.logout` on a password-login account calls /logout and deletes the stored credentials."""
        await self.hs_only()
        await self.start(login=True)
        await self.connected()
        stored = self.service.channels.ports.config.state_dir / "credentials" / "matrix" / "credentials.json"
        token = json.loads(stored.read_text())["accessToken"]
        result = await self.service.channels.logout("matrix")
        self.assertTrue(result["cleared"])
        self.assertNotIn(token, self.hs.tokens)
        self.assertFalse(stored.exists())


class RoomTests(MatrixMixin, TestCase):
    async def test_invites_are_joined(self):
        """An invite is joined (autoJoin defaults to always); with autoJoin off it is left alone."""
        await self.start(matrix={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("hello room")])
        await self.connected()
        room = self.hs.room(ALICE, BOB, name="Team", joined=False)
        self.hs.invite(room, ALICE)
        await wait_for(lambda: room in self.hs.joins, what="the join")
        self.hs.say(room, ALICE, "welcome!")
        await wait_for(lambda: self.hs.texts(room), what="the answer in the joined room")
        await self.service.stopService()
        other = self.hs.room(ALICE, joined=False)
        self.hs.invite(other, ALICE)
        await self.start(matrix={"autoJoin": "off"})
        await self.connected()
        await self.pause(1.0)
        self.assertNotIn(other, self.hs.joins)

    async def test_mention_gating_and_group_session(self):
        """In a listed room only mentions (display name, MXID, m.mentions) reach the agent, in the room's own session; an unlisted room is ignored; the prompt names the room and speaker."""
        await self.hs_only()
        room = self.hs.room(ALICE, BOB, name="Team")
        other = self.hs.room(ALICE, BOB, name="Elsewhere")
        await self.start(matrix={"groups": {room: {}}}, replies=[openai_text("one"), openai_text("two"), openai_text("three")])
        await self.connected()
        self.hs.say(room, ALICE, "chatting among ourselves")
        self.hs.say(other, ALICE, "Claw, unlisted room")
        self.hs.say(room, ALICE, "Claw, what time is it?")
        await wait_for(lambda: self.hs.texts(room), what="the first answer")
        self.hs.say(room, BOB, f"{BOT} ping")
        await wait_for(lambda: len(self.hs.texts(room)) == 2, what="the MXID answer")
        self.hs.say(room, BOB, "hey you", **{"m.mentions": {"user_ids": [BOT]}})
        await wait_for(lambda: len(self.hs.texts(room)) == 3, what="the m.mentions answer")
        await self.pause(0.3)
        self.assertEqual(len(self.model.requests), 3)
        self.assertEqual(self.hs.texts(other), [])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("[Matrix group Team] Alice: Claw, what time is it?", prompt)
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:matrix:group:{room}"))

    async def test_room_names_after_restart(self):
        """After a restart (incremental sync only), a room's name and the speaker's display name are looked up, so the prompt still names them."""
        await self.hs_only()
        room = self.hs.room(ALICE, BOB, name="Team")
        await self.start(matrix={"groups": {"*": {"requireMention": False}}})
        await self.connected()
        await self.service.stopService()
        self.hs.say(room, BOB, "anyone here?")
        await self.start(matrix={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("yes")])
        await wait_for(lambda: self.hs.texts(room), what="the answer")
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("[Matrix group Team] Bob: anyone here?", prompt)

    async def test_threads(self):
        """A message in an m.thread gets its own session (`:thread:<root>`) and the reply stays in the thread."""
        await self.start(matrix={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("in thread")])
        await self.connected()
        room = self.hs.room(ALICE, BOB, name="Team")
        root = self.hs.say(room, ALICE, "a topic")
        self.model.replies.insert(0, openai_text("top level"))
        await wait_for(lambda: self.hs.texts(room), what="the top-level answer")
        self.hs.say(room, BOB, "in the thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True, "m.in_reply_to": {"event_id": root}}})
        await wait_for(lambda: len(self.hs.texts(room)) == 2, what="the thread answer")
        relation = self.sent(room)[1]["content"]["m.relates_to"]
        self.assertEqual((relation["rel_type"], relation["event_id"]), ("m.thread", root))
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:matrix:group:{room}:thread:{root}"))

    async def test_encrypted_room_is_reported(self):
        """Messages in an end-to-end encrypted room cannot be read: status says so (and how to fix it), nothing is answered, the account keeps serving."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("plain answer")])
        await self.connected()
        secret = self.hs.room(ALICE, encrypted=True, direct=True)
        self.hs.encrypted_message(secret, ALICE)
        await wait_for(lambda: "encrypted" in (self.account().snapshot().get("lastError") or ""), what="the note in status")
        row = self.account().snapshot()
        self.assertEqual((row["connected"], row["encryptedRooms"], row["encryption"]), (True, 1, "unsupported"))
        self.assertIn("E2EE is not supported", row["lastError"])
        room, _ = self.hs.dm(BOB, "hello")
        await wait_for(lambda: self.hs.texts(room), what="an unencrypted DM still answered")
        self.assertEqual(self.hs.texts(secret), [])

    async def test_send_method_to_a_user_and_alias(self):
        """`send` to @user finds (or makes) the DM room and records it in m.direct; to #alias resolves the room; plain text never goes into an encrypted room."""
        await self.start(matrix={"dmPolicy": "open"})
        await self.connected()
        ws, _ = await self.connect()
        res = await ws.request("send", {"channel": "matrix", "to": BOB, "message": "hello bob", "idempotencyKey": "k1"})
        self.assertTrue(res["ok"], res)
        room = res["payload"]["chatId"]
        self.assertEqual(self.hs.texts(room), ["hello bob"])
        self.assertIn(room, self.hs.direct[BOB])
        team = self.hs.room(ALICE, alias="#team:fake.test")
        res = await ws.request("send", {"channel": "matrix", "to": "#team:fake.test", "message": "**hi** team", "idempotencyKey": "k2"})
        self.assertTrue(res["ok"], res)
        content = self.sent(team)[0]["content"]
        self.assertEqual((content["body"], content["format"], content["formatted_body"]), ("**hi** team", "org.matrix.custom.html", "<b>hi</b> team"))
        secret = self.hs.room(ALICE, encrypted=True)
        res = await ws.request("send", {"channel": "matrix", "to": secret, "message": "leak?", "idempotencyKey": "k3"})
        self.assertFalse(res["ok"])
        self.assertIn("end-to-end encrypted", res["error"]["message"])
        self.assertEqual(self.hs.texts(secret), [])

    async def test_status_is_truthful(self):
        """channels.status reports connected, lastInboundAt/lastOutboundAt, the user and a live probe, in v3's and v4's shape."""
        await self.start(matrix={"dmPolicy": "open"}, replies=[openai_text("hi")])
        await self.connected()
        room, _ = self.hs.dm(ALICE, "hello")
        await wait_for(lambda: self.hs.texts(room), what="the reply")
        ws, _ = await self.connect()
        status = (await ws.request("channels.status", {"probe": True}))["payload"]
        schemas.validate(3, "ChannelsStatusResult", status)
        schemas.validate(4, "ChannelsStatusResult", status)
        row = status["channelAccounts"]["matrix"][0]
        self.assertEqual((row["connected"], row["running"], row["userId"], row["baseUrl"]), (True, True, BOT, self.url))
        self.assertIsInstance(row["lastInboundAt"], int)
        self.assertIsInstance(row["lastOutboundAt"], int)
        self.assertTrue(row["probe"]["ok"], row["probe"])
        self.assertEqual(row["probe"]["userId"], BOT)
        self.assertNotIn("lastError", row)


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


class RestartTests(MatrixMixin, TestCase):
    async def test_stop_mid_turn_then_restart(self):
        """Stopping the gateway mid-turn and starting it again: the interrupted question is answered once, a message sent while it was down once, nothing is replayed."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.start(matrix={"dmPolicy": "open"}, replies=[hanging, openai_text("complete answer"), openai_text("second answer")])
        await self.connected()
        room, _ = self.hs.dm(ALICE, "long question")
        await wait_for(lambda: self.model.requests, what="the first run")
        await self.service.stopService()
        self.hs.say(room, ALICE, "second question")
        await self.start(matrix={"dmPolicy": "open"})
        await wait_for(lambda: len(self.hs.texts(room)) >= 2, what="both answers")
        await self.pause(0.5)
        self.assertEqual(self.hs.texts(room), ["complete answer", "second answer"])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked, ["long question", "long question", "second question"])

    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs: the next gateway answers that question once and the message sent meanwhile once (a real process, real crash)."""
        self.hs, self.url = await start_matrix(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"matrix": {"homeserver": self.url, "accessToken": self.hs.token(), "syncTimeoutSeconds": 1, "dmPolicy": "open"}},
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
        await wait_for(lambda: len(self.hs.syncs) >= 2, timeout=30, what="the gateway syncing")
        room, _ = self.hs.dm(ALICE, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        self.hs.say(room, ALICE, "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.hs.texts(room)) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.hs.texts(room), ["answer one", "answer two"], second.output.decode()[-2000:])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked.count("question one"), 2)
        self.assertEqual(asked.count("question two"), 1)


# -- sans-IO


def _room(room_id, timeline, count=None):
    return JoinedRoom(room_id, [], timeline, count, False)


def _event(sender, body, event_id="$e1", **content):
    return {"type": "m.room.message", "sender": sender, "event_id": event_id, "origin_server_ts": 5, "content": {"msgtype": "m.text", "body": body, **content}}


class EventTests(SynchronousTestCase):
    def setUp(self):
        self.rooms = Rooms()
        self.me = Me(BOT, "Claw")

    def test_dm_by_m_direct_or_two_members(self):
        """A room is a DM when m.direct lists it or exactly two members are joined; otherwise a group."""
        self.rooms.set_direct({ALICE: ["!d:x"]})
        self.rooms.learn(_room("!two:x", [], 2))
        self.rooms.learn(_room("!many:x", [], 5))
        kinds = [to_message(r, _event(ALICE, "hi"), self.rooms, self.me).chat_type for r in ("!d:x", "!two:x", "!many:x")]
        self.assertEqual(kinds, [DM, DM, GROUP])

    def test_mentions(self):
        """Mentions: display name as a word, the MXID, m.mentions, a matrix.to link, or a reply to one of our events; not a name inside another word."""
        self.rooms.learn(_room("!g:x", [], 5))
        self.me.remember("$ours")
        cases = {
            "hey Claw, help": True,
            "Clawback is a word": False,
            f"ping {BOT}": True,
            "no mention here": False,
        }
        for body, expected in cases.items():
            self.assertEqual(to_message("!g:x", _event(ALICE, body), self.rooms, self.me).mentions_me, expected, body)
        self.assertTrue(to_message("!g:x", _event(ALICE, "x", **{"m.mentions": {"user_ids": [BOT]}}), self.rooms, self.me).mentions_me)
        link = _event(ALICE, "Bot: hi", formatted_body=f'<a href="https://matrix.to/#/{BOT.replace("@", "%40")}">Bot</a>: hi', format="org.matrix.custom.html")
        self.assertTrue(to_message("!g:x", link, self.rooms, self.me).mentions_me)
        reply = _event(ALICE, "> <@claw:fake.test> earlier\n\nand then?", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$ours"}}})
        message = to_message("!g:x", reply, self.rooms, self.me)
        self.assertTrue(message.mentions_me)
        self.assertEqual(message.text, "and then?")
        self.assertTrue(message.reply_to.from_me)

    def test_not_messages(self):
        """Our own events, edits, notices, state events and non-message events are not answered."""
        self.rooms.learn(_room("!g:x", [], 5))
        self.assertIsNone(to_message("!g:x", _event(BOT, "me"), self.rooms, self.me))
        self.assertIsNone(to_message("!g:x", _event(ALICE, "* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}}), self.rooms, self.me))
        self.assertIsNone(to_message("!g:x", _event(ALICE, "bot says", msgtype="m.notice"), self.rooms, self.me))
        self.assertIsNone(to_message("!g:x", {**_event(ALICE, "x"), "type": "m.reaction"}, self.rooms, self.me))
        self.assertIsNone(to_message("!g:x", {**_event(ALICE, "x"), "state_key": ""}, self.rooms, self.me))
        self.assertIsNone(to_message("!g:x", {"type": "m.room.message", "sender": 5, "content": []}, self.rooms, self.me))

    def test_threads_by_mode(self):
        """m.thread relations give `thread` ids (inbound); `always` starts a thread at each message; `off` never threads."""
        self.rooms.learn(_room("!g:x", [], 5))
        threaded = _event(ALICE, "x", event_id="$child", **{"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}})
        plain = _event(ALICE, "y", event_id="$plain")
        self.assertEqual((to_message("!g:x", threaded, self.rooms, self.me).thread_id, to_message("!g:x", threaded, self.rooms, self.me).thread_kind), ("$root", THREAD))
        self.assertIsNone(to_message("!g:x", plain, self.rooms, self.me).thread_id)
        self.assertEqual(to_message("!g:x", plain, self.rooms, self.me, "always").thread_id, "$plain")
        self.assertIsNone(to_message("!g:x", threaded, self.rooms, self.me, "off").thread_id)

    def test_media_and_emote(self):
        """Images become media placeholders; emotes read as `* text`."""
        self.rooms.learn(_room("!g:x", [], 2))
        image = to_message("!g:x", _event(ALICE, "cat.png", msgtype="m.image", url="mxc://x/y"), self.rooms, self.me)
        self.assertEqual((image.text, image.media), ("", ("image",)))
        self.assertEqual(to_message("!g:x", _event(ALICE, "waves", msgtype="m.emote"), self.rooms, self.me).text, "* waves")

    def test_member_changes_force_a_recount(self):
        """A membership event in the timeline forgets the cached member count (a DM that grew is no longer a DM)."""
        self.rooms.learn(_room("!r:x", [], 2))
        self.assertFalse(self.rooms.needs_count("!r:x"))
        self.rooms.learn(_room("!r:x", [{"type": "m.room.member", "state_key": BOB, "sender": BOB, "content": {"membership": "join", "displayname": "Bob"}}]))
        self.assertTrue(self.rooms.needs_count("!r:x"))
        self.assertEqual(self.rooms.display[("!r:x", BOB)], "Bob")

    def test_parse_sync(self):
        """parse_sync reads joined rooms, invites (inviter, aliases, is_direct) and account data; a body without next_batch is refused."""
        body = {
            "next_batch": "s9",
            "rooms": {
                "join": {"!a:x": {"timeline": {"events": [_event(ALICE, "hi"), "junk"], "limited": True}, "summary": {"m.joined_member_count": 3}}},
                "invite": {"!b:x": {"invite_state": {"events": [{"type": "m.room.member", "sender": ALICE, "state_key": BOT, "content": {"membership": "invite", "is_direct": True}}, {"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#b:x"}}]}}},
                "leave": {"!c:x": {}},
            },
            "account_data": {"events": [{"type": "m.direct", "content": {}}]},
        }
        batch = parse_sync(body)
        self.assertEqual((batch.next_batch, batch.left), ("s9", ["!c:x"]))
        (joined,) = batch.joined
        self.assertEqual((joined.room_id, len(joined.timeline), joined.joined_count, joined.limited), ("!a:x", 1, 3, True))
        (invite,) = batch.invites
        self.assertEqual((invite.room_id, invite.inviter, invite.aliases, invite.is_direct), ("!b:x", ALICE, ("#b:x",), True))
        for bad in ({}, {"next_batch": ""}, [], "x"):
            with self.assertRaises(ValueError):
                parse_sync(bad)

    def test_reply_fallback(self):
        """Only the leading quote block and its blank line are dropped."""
        self.assertEqual(strip_reply_fallback("> <@a:x> one\n> two\n\nreal text\n> kept"), "real text\n> kept")
        self.assertEqual(strip_reply_fallback("no quote"), "no quote")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["m.room.message", "m.text", "m.thread", BOT, "!r:x", "$e"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "sender", "event_id", "content", "body", "msgtype", "m.relates_to", "rel_type", "event_id", "state_key", "next_batch", "rooms", "join", "invite", "timeline", "events", "!r:x", "m.mentions", "user_ids"]), inner, max_size=5),
    max_leaves=30,
)


class RobustnessTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(JSON)
    def test_any_sync_body(self, body):
        """Whatever a homeserver sends, parsing it raises nothing but ValueError (no next_batch), and every event reads safely."""
        rooms, me = Rooms(), Me(BOT, "Claw")
        try:
            batch = parse_sync(body)
        except ValueError:
            return
        for room in batch.joined:
            rooms.learn(room)
            for event in room.timeline:
                to_message(room.room_id, event, rooms, me)
        for event in batch.account_data:
            rooms.set_direct(event.get("content"))

    @settings(max_examples=300, deadline=None)
    @given(JSON)
    def test_any_event(self, event):
        """A malformed timeline event is ignored, never an exception."""
        if isinstance(event, dict):
            to_message("!r:x", event, Rooms(), Me(BOT))


class WireTests(SynchronousTestCase):
    def test_error_mapping(self):
        """M_LIMIT_EXCEEDED ⇒ RetryAfter (retry_after_ms, else Retry-After), M_UNKNOWN_TOKEN/401 ⇒ TokenRefused (auth), 403 ⇒ Unreachable."""
        error = map_error("send", 429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500})
        self.assertIsInstance(error, RetryAfter)
        self.assertEqual(error.seconds, 2.5)
        self.assertEqual(map_error("send", 429, {}, "7").seconds, 7.0)
        self.assertIsInstance(map_error("sync", 401, {"errcode": "M_UNKNOWN_TOKEN", "soft_logout": True}), TokenRefused)
        self.assertTrue(map_error("sync", 401, {"errcode": "M_UNKNOWN_TOKEN", "soft_logout": True}).soft)
        self.assertIsInstance(map_error("send", 403, {"errcode": "M_FORBIDDEN", "error": "no"}), Unreachable)

    def test_transaction_ids(self):
        """A journaled message's transaction id is stable (retries and restarts) and differs per chunk."""
        self.assertEqual(txn_for("matrix:default:!r:x:$e:0"), txn_for("matrix:default:!r:x:$e:0"))
        self.assertNotEqual(txn_for("matrix:default:!r:x:$e:0"), txn_for("matrix:default:!r:x:$e:1"))
        self.assertRegex(txn_for("k"), r"^[A-Za-z0-9]+$")

    def test_html(self):
        """Markdown-looking text gets a formatted body (line breaks kept, code blocks untouched); plain text none."""
        self.assertIsNone(html("just words"))
        self.assertEqual(html("**a**\nb"), "<b>a</b><br>b")
        self.assertEqual(html("```\nx\ny\n```"), "<pre><code>x\ny</code></pre>")

    def test_upstream_spellings(self):
        """dm.policy / dm.allowFrom / rooms.<id>.users become the framework's keys; replyToMode defaults to off; explicit keys win."""
        platform = MatrixPlatform()
        config = platform.normalize({"dm": {"policy": "open", "allowFrom": ["@a:x"]}, "rooms": {"!r:x": {"users": ["@b:x"], "allow": False}}})
        self.assertEqual((config["dmPolicy"], config["allowFrom"], config["replyToMode"]), ("open", ["@a:x"], "off"))
        self.assertEqual(config["groups"]["!r:x"], {"users": ["@b:x"], "allow": False, "allowFrom": ["@b:x"], "enabled": False})
        self.assertEqual(platform.normalize({"dmPolicy": "allowlist", "dm": {"policy": "open"}, "replyToMode": "all"})["dmPolicy"], "allowlist")

    def test_configured_and_env(self):
        """Configured needs a homeserver and a token or userId+password; MATRIX_* fill only the default account."""
        platform = MatrixPlatform()
        env = {"MATRIX_HOMESERVER": "https://m.example", "MATRIX_ACCESS_TOKEN": "syt_x"}
        self.assertTrue(platform.configured(AccountConfig("matrix", "default", {}, env, Path(self.mktemp()), Path(self.mktemp()))))
        self.assertFalse(platform.configured(AccountConfig("matrix", "other", {}, env, Path(self.mktemp()), Path(self.mktemp()))))
        self.assertFalse(platform.configured(AccountConfig("matrix", "default", {"homeserver": "https://m.example"}, {}, Path(self.mktemp()), Path(self.mktemp()))))
        self.assertTrue(platform.configured(AccountConfig("matrix", "default", {"homeserver": "https://m.example", "userId": "@a:x", "password": "p"}, {}, Path(self.mktemp()), Path(self.mktemp()))))

    def test_outbound_key(self):
        """Outbound carries an optional idempotency key (the framework sets it for journaled replies)."""
        self.assertIsNone(Outbound("x").key)
        self.assertEqual(Outbound("x", key="k").key, "k")
