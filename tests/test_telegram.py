"""
Telegram end to end: the gateway against the fake Bot API (tests/fakes_telegram.py)
and the fake model provider (tests/fakes.py), on loopback.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from openclaw.cron.schedule import iso_ms
from tests.fakes import openai_text, start_fake
from tests.fakes_telegram import Fault, start_telegram, wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")


class TelegramMixin(GatewayMixin):
    timeout = 60

    async def start(self, telegram=None, replies=(), before=None, channels_extra=None, **config):
        self.tg, self.api = await start_telegram(self)
        self.bot = self.tg.bot()
        if before is not None:
            before(self.bot)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"botToken": self.bot.token, "apiRoot": self.api, "pollTimeoutSeconds": 1, **(telegram or {})}
        section = {k: v for k, v in section.items() if v is not None}
        await self.gateway(channels={"telegram": section, **(channels_extra or {})}, **model_config(self.model_url), **config)
        return self.service

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("telegram", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    async def code_for(self, chat_id):
        text = await wait_for(lambda: next((t for t in self.bot.texts(chat_id) if CODE.search(t)), None), what="a pairing code")
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

    async def approve(self, user_id):
        await self.service.channels.pairing_approve("telegram", None, code=await self.code_for(user_id))


class RoundTripTests(TelegramMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back in order, chunked under 4000, threaded to the question, with typing shown."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        self.bot.dm(42, "hello there", username="alice")
        code = await self.code_for(42)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve telegram {code}", self.bot.texts(42)[0])

        status, out, err = await self.cli("pairing", "list", "telegram")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "telegram", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved telegram sender", out)

        question = self.bot.dm(42, "what is the plan?")
        replies = await wait_for(lambda: len(self.bot.texts(42)) >= 4 and self.bot.sent[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["text"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["text"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([r["reply_to"] for r in replies], [question, None, None])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        self.assertTrue(any(a["chat_id"] == 42 and a["action"] == "typing" for a in self.bot.actions))


class ScheduledDeliveryTests(TelegramMixin, TestCase):
    async def run_job(self, ws, delivery, reply):
        """Add an isolated v4 job with C{delivery}, force a run answering C{reply}; its run log entry."""
        self.model.replies.append(openai_text(reply))
        at = int(time.time() * 1000) + 3_600_000
        params = {"name": "news", "schedule": {"kind": "at", "at": iso_ms(at)}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "news?"}, "delivery": delivery}
        job = (await ws.request("cron.add", params))["payload"]
        self.assertTrue((await ws.request("cron.run", {"id": job["id"], "mode": "force"}))["ok"])
        cron = self.service.scheduled.cron
        await wait_for(lambda: cron.entries(job["id"]) or None, what="the run log entry")
        return cron.entries(job["id"])[0]

    async def test_cron_and_heartbeat_deliver_through_telegram(self):
        """Scheduled work delivers through channels: `last` is the chat the main session last heard from, a channel id with `to` sends there, a channel without a recipient or not configured fails the run with the reason; the heartbeat's `last` reaches the chat too."""
        await self.start(telegram={"dmPolicy": "open"})
        await self.connected()
        ws, _ = await self.connect(connect_params(protocol=4))
        entry = await self.run_job(ws, {"mode": "announce", "channel": "last"}, "before any chat")
        self.assertEqual((entry["status"], entry["deliveryStatus"]), ("ok", "delivered"))  # into the session itself
        self.assertEqual(self.bot.sent, [])

        self.model.replies.append(openai_text("hello alice"))
        self.bot.dm(42, "hi")
        await wait_for(lambda: "hello alice" in self.bot.texts(42), what="the DM answer")
        entry = await self.run_job(ws, {"mode": "announce", "channel": "last"}, "Inbox: 3 new")
        self.assertEqual((entry["status"], entry["deliveryStatus"]), ("ok", "delivered"))
        self.assertEqual(self.bot.texts(42)[-1], "Inbox: 3 new")

        entry = await self.run_job(ws, {"mode": "announce", "channel": "telegram", "to": "77"}, "to someone else")
        self.assertEqual((entry["status"], self.bot.texts(77)), ("ok", ["to someone else"]))
        entry = await self.run_job(ws, {"mode": "announce", "channel": "telegram"}, "to the last chat there")
        self.assertEqual((entry["status"], self.bot.texts(42)[-1]), ("ok", "to the last chat there"))
        entry = await self.run_job(ws, {"mode": "announce", "channel": "discord", "to": "1"}, "nowhere")
        self.assertEqual((entry["status"], entry["deliveryStatus"]), ("error", "not-delivered"))
        self.assertIn("discord", entry["error"])

        self.model.replies.append(openai_text("Your disk is almost full."))
        self.assertTrue((await ws.request("wake", {"mode": "now", "text": "disk almost full"}))["ok"])
        await wait_for(lambda: "Your disk is almost full." in self.bot.texts(42), what="the heartbeat's message")
        self.assertEqual((await ws.request("last-heartbeat", {}))["payload"]["channel"], "telegram")


class PlatformErrorTests(TelegramMixin, TestCase):
    async def test_bad_token_stops_without_looping(self):
        """401 from getMe stops the account: status says to check the token, and getMe is not called again."""
        await self.start(telegram={"botToken": "999:unknown-token-abcdefghijklmnopqrstu"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        await self.pause(3.0)
        self.assertEqual(sum(p.endswith("/getMe") for p in self.tg.paths), 1)
        ws, _ = await self.connect()
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["telegram"][0]
        self.assertEqual((row["running"], row["connected"]), (False, False))
        self.assertIn("check channels.telegram.botToken", row["lastError"])

    async def test_webhook_conflict_shows_the_fix(self):
        """A webhook left set makes getUpdates fail with 409; status names the fix (deleteWebhookOnStart) and the account keeps retrying with backoff."""
        await self.start(before=lambda bot: setattr(bot, "webhook_url", "https://example.invalid/hook"))
        await wait_for(lambda: "deleteWebhookOnStart" in (self.account().snapshot().get("lastError") or ""), what="the 409 fix in status")
        self.assertFalse(self.account().connected)
        self.assertEqual(self.account().state, "backoff")

    async def test_delete_webhook_on_start(self):
        """With deleteWebhookOnStart the gateway removes the webhook, then polls."""
        await self.start(telegram={"deleteWebhookOnStart": True}, before=lambda bot: setattr(bot, "webhook_url", "https://example.invalid/hook"))
        await self.connected()
        self.assertIsNone(self.bot.webhook_url)
        self.assertIn("deleteWebhook", [m for m, _ in self.bot.calls])

    async def test_poller_conflict_builds_a_fresh_transport(self):
        """409 from another poller: status explains it, the account backs off and polls again on a new connection."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("still here")])
        await self.connected()
        before = len(self.tg.connections())
        self.bot.fault("getUpdates", Fault(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"))
        self.bot.dm(5, "ping")  # wakes the held poll; the next one gets the 409
        await wait_for(lambda: "another program polls" in (self.account().snapshot().get("lastError") or ""), what="the conflict in status")
        self.bot.dm(5, "are you there?")
        await wait_for(lambda: "still here" in self.bot.texts(5), timeout=15, what="the answer after reconnecting")
        self.assertGreater(len(self.tg.connections()), before)
        self.assertGreaterEqual(self.account().reconnect_attempts, 1)

    async def test_get_updates_retry_after(self):
        """429 on getUpdates waits retry_after and polls again without reconnecting."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("ok")])
        await self.connected()
        self.bot.fault("getUpdates", Fault(429, "Too Many Requests: retry after 1", {"retry_after": 1}))
        self.bot.dm(5, "hi")
        await wait_for(lambda: "ok" in self.bot.texts(5), what="the answer")
        self.assertEqual(self.account().reconnect_attempts, 0)

    async def test_send_retry_after(self):
        """429 on sendMessage holds that chat for retry_after seconds, then the same reply goes out once."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("patience")])
        await self.connected()
        self.bot.fault("sendMessage", Fault(429, "Too Many Requests: retry after 1", {"retry_after": 1}))
        started = reactor.seconds()
        self.bot.dm(5, "hi")
        await wait_for(lambda: self.bot.texts(5), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(self.bot.texts(5), ["patience"])

    async def test_parse_error_falls_back_to_plain_text(self):
        """400 "can't parse entities" resends the same chunk as plain text (no parse_mode)."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("**bold** claim")])
        await self.connected()
        self.bot.fault("sendMessage", Fault(400, "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""))
        self.bot.dm(5, "hi")
        await wait_for(lambda: self.bot.sent, what="the reply")
        (sent,) = self.bot.sent
        self.assertEqual((sent["text"], sent["parse_mode"]), ("**bold** claim", None))
        html = [p for m, p in self.bot.calls if m == "sendMessage"][0]
        self.assertEqual((html["text"], html["parse_mode"]), ("<b>bold</b> claim", "HTML"))

    async def test_blocked_user_is_dropped(self):
        """403 (bot blocked) drops the reply: no retry, the journal is emptied, the account keeps running."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("you will not see this"), openai_text("hello friend")])
        await self.connected()
        self.bot.blocked.add(5)
        self.bot.dm(5, "hi")
        await wait_for(lambda: [m for m, _ in self.bot.calls if m == "sendMessage"], what="the send attempt")
        await self.pause(1.5)
        self.assertEqual(len([m for m, _ in self.bot.calls if m == "sendMessage"]), 1)
        self.assertEqual(self.account().inbox.pending(), [])
        self.bot.dm(6, "hi")
        await wait_for(lambda: self.bot.texts(6), what="another chat still served")

    async def test_migrated_group_is_retargeted(self):
        """400 with migrate_to_chat_id resends the reply to the supergroup's new id."""
        await self.start(telegram={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("moved along")])
        await self.connected()
        self.bot.migrated[-100] = -1009
        self.bot.group(-100, 5, "anyone?")
        await wait_for(lambda: self.bot.texts(-1009), what="the reply in the new chat")
        self.assertEqual(self.bot.texts(-1009), ["moved along"])

    async def test_server_errors_back_off_and_recover(self):
        """5xx and non-JSON answers end the poll; the account reconnects with backoff and then serves messages."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("first"), openai_text("back")])
        await self.connected()
        self.bot.fault("getUpdates", Fault(502, "Bad Gateway", garbage=True), Fault(500, "Internal Server Error"))
        self.bot.dm(5, "wake up")  # answered by the poll already waiting; the next two polls fail
        await wait_for(lambda: self.account().reconnect_attempts >= 2 and self.account().connected, timeout=20, what="two reconnects")
        self.assertIn("Internal Server Error", self.account().snapshot()["lastError"] if not self.account().connected else "Internal Server Error")
        self.bot.dm(5, "still there?")
        await wait_for(lambda: "back" in self.bot.texts(5), timeout=20, what="the answer after the outage")

    async def test_stalled_poll_times_out(self):
        """A getUpdates that never answers is cut after the poll timeout plus timeoutSeconds, then polling resumes."""
        await self.start(telegram={"dmPolicy": "open", "timeoutSeconds": 1}, replies=[openai_text("first"), openai_text("unstuck")])
        await self.connected()
        self.bot.fault("getUpdates", Fault(stall=True))
        self.bot.dm(5, "hello?")  # answered by the poll already waiting; the next poll stalls
        await wait_for(lambda: self.account().reconnect_attempts == 1, timeout=10, what="the stalled poll cut off")
        self.assertIn("no answer from Telegram within 2 s", self.account().last_error)
        self.bot.dm(5, "and now?")
        await wait_for(lambda: "unstuck" in self.bot.texts(5), timeout=20, what="the answer after the stall")


class GroupTests(TelegramMixin, TestCase):
    async def test_mention_gating_and_group_session(self):
        """In a listed group only mentions (or replies to the bot) reach the agent, in the group's own session; the prompt names the speaker."""
        await self.start(telegram={"groups": {"-100": {}}}, replies=[openai_text("hi group"), openai_text("hi again")])
        await self.connected()
        self.bot.group(-100, 5, "chatting among ourselves")
        self.bot.group(-200, 5, "unlisted group", mention=True)
        asked = self.bot.group(-100, 5, "what time is it?", mention=True)
        await wait_for(lambda: self.bot.texts(-100), what="the group reply")
        self.assertEqual(len(self.model.requests), 1)
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("Bob: @claw_test_bot what time is it?", prompt)
        self.assertEqual(self.bot.sent[0]["reply_to"], asked)
        self.bot.group(-100, 6, "and you?", reply_to_bot=True)
        await wait_for(lambda: len(self.bot.texts(-100)) == 2, what="the reply to a reply")
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:telegram:group:-100"))
        self.assertIsNone(store.get("agent:main:telegram:group:-200"))

    async def test_forum_topics(self):
        """Forum topics get `:topic:<id>` sessions and replies in the topic; the General topic is answered without message_thread_id (typing keeps it)."""
        await self.start(telegram={"groups": {"*": {"requireMention": False}}}, replies=[openai_text("in topic"), openai_text("in general")])
        await self.connected()
        self.bot.group(-300, 5, "topic question", forum=True, thread=7)
        await wait_for(lambda: self.bot.texts(-300), what="the topic reply")
        self.assertEqual(self.bot.sent[0]["thread"], 7)
        self.bot.group(-300, 5, "general question", forum=True)
        await wait_for(lambda: len(self.bot.texts(-300)) == 2, what="the General reply")
        self.assertIsNone(self.bot.sent[1]["thread"])
        self.assertIn(1, [a["thread"] for a in self.bot.actions])
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get("agent:main:telegram:group:-300:topic:7"))
        self.assertIsNotNone(store.get("agent:main:telegram:group:-300:topic:1"))


class WebhookTests(TelegramMixin, TestCase):
    async def post(self, body, secret, path="/telegram-webhook"):
        import treq
        from twisted.web.client import HTTPConnectionPool

        headers = {"Content-Type": ["application/json"]}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = [secret]
        response = await treq.post(f"http://127.0.0.1:{self.service.port}{path}", json.dumps(body).encode(), headers=headers, pool=HTTPConnectionPool(reactor, persistent=False))
        await treq.content(response)
        return response.code

    async def test_webhook_mode(self):
        """setWebhook carries the secret; deliveries with the wrong or no secret get 401; a right one is answered once even if Telegram redelivers it."""
        await self.start(telegram={"webhookUrl": "https://bot.example.com/telegram-webhook", "webhookSecret": "s3cret_hook-value", "dmPolicy": "open"}, replies=[openai_text("via webhook")])
        await self.connected()
        self.assertEqual((self.bot.webhook_url, self.bot.webhook_secret), ("https://bot.example.com/telegram-webhook", "s3cret_hook-value"))
        self.assertNotIn("getUpdates", [m for m, _ in self.bot.calls])
        update = {"update_id": 1, "message": {"message_id": 3, "date": 0, "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "first_name": "Eve"}, "text": "hook?"}}
        self.assertEqual(await self.post(update, "wrong"), 401)
        self.assertEqual(await self.post(update, None), 401)
        self.assertEqual(await self.post(update, "s3cret_hook-value"), 200)
        self.assertEqual(await self.post(update, "s3cret_hook-value"), 200)
        await wait_for(lambda: self.bot.texts(5), what="the webhook reply")
        await self.pause(0.3)
        self.assertEqual(self.bot.texts(5), ["via webhook"])
        self.assertEqual(len(self.model.requests), 1)

    async def test_webhook_without_secret_fails_closed(self):
        """Webhook mode with a blank secret does not start (and serves no route): status says why."""
        await self.start(telegram={"webhookUrl": "https://bot.example.com/telegram-webhook", "webhookSecret": "  "})
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        self.assertIn("webhookSecret", self.account().snapshot()["lastError"])
        self.assertIsNone(self.bot.webhook_url)
        self.assertEqual(await self.post({"update_id": 1}, ""), await self.post({"update_id": 1}, "", path="/never-routed"))  # the root's answer for no route


class IsolationTests(TelegramMixin, TestCase):
    async def test_failing_account_does_not_affect_others(self):
        """One account with a refused token and one unknown channel leave the other account and the gateway serving."""
        good = {"botToken": "123456:TEST-token-abcdefghijklmnopqrstuvwxyz", "dmPolicy": "open"}
        await self.start(
            telegram={"botToken": None, "accounts": {"good": good, "bad": {"botToken": "555:refused-token-abcdefghijklmnopqrstuvw"}}},
            replies=[openai_text("alive")],
            channels_extra={"nostr": {"relays": ["wss://relay.example"]}},
        )
        await self.connected("good")
        await wait_for(lambda: self.account("bad").state == "auth-failed", what="bad stopped")
        self.bot.dm(5, "hi")
        await wait_for(lambda: self.bot.texts(5), what="the good account's reply")
        ws, _ = await self.connect()
        status = (await ws.request("channels.status", {}))["payload"]
        rows = {r["accountId"]: r for r in status["channelAccounts"]["telegram"]}
        self.assertEqual((rows["good"]["connected"], rows["bad"]["connected"]), (True, False))
        self.assertEqual(status["channelAccounts"]["nostr"][0]["lastError"], "this gateway has no nostr channel yet")
        self.assertTrue((await ws.request("health", {}))["ok"])

    async def test_token_never_logged(self):
        """The bot token (it is in every URL) never reaches the gateway's log file, even through errors."""
        await self.start(telegram={"dmPolicy": "open"}, replies=[openai_text("x")])
        await self.connected()
        self.bot.fault("getUpdates", Fault(502, "Bad Gateway", garbage=True))
        self.bot.fault("sendMessage", Fault(500, "oops"))
        self.bot.dm(5, "hi")
        await wait_for(lambda: self.bot.texts(5), timeout=15, what="the reply")
        log = Path(self.service.settings.logging.file).read_text()
        self.assertIn("reconnecting", log)
        self.assertNotIn(self.bot.token, log)
        self.assertNotIn(self.bot.token.split(":", 1)[1], log)


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


class RestartTests(TelegramMixin, TestCase):
    async def test_stop_mid_turn_then_restart(self):
        """Stopping the gateway mid-turn and starting it again on the same state: the interrupted question is answered once, a message sent while it was down is answered once, nothing is redelivered."""
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        await self.start(telegram={"dmPolicy": "open"}, replies=[hanging, openai_text("complete answer"), openai_text("second answer")])
        await self.connected()
        first = self.bot.dm(5, "long question")
        await wait_for(lambda: self.model.requests, what="the first run")
        await self.service.stopService()
        self.bot.dm(5, "second question")
        await self.gateway(channels={"telegram": {"botToken": self.bot.token, "apiRoot": self.api, "pollTimeoutSeconds": 1, "dmPolicy": "open"}}, **model_config(self.model_url))
        await wait_for(lambda: len(self.bot.texts(5)) >= 2, what="both answers")
        await self.pause(0.5)
        self.assertEqual(self.bot.texts(5), ["complete answer", "second answer"])
        self.assertEqual([r for r in (s["reply_to"] for s in self.bot.sent)][0], first)
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked, ["long question", "long question", "second question"])

    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs: the next gateway answers that question once and the message sent meanwhile once (a real process, real crash)."""
        self.tg, self.api = await start_telegram(self)
        self.bot = self.tg.bot()
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        home = Path(self.mktemp()).resolve()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"telegram": {"botToken": self.bot.token, "apiRoot": self.api, "pollTimeoutSeconds": 1, "dmPolicy": "open"}},
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
        await wait_for(lambda: self.bot.polls_started, timeout=30, what="the gateway polling")
        self.bot.dm(5, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        self.bot.dm(5, "question two")
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.bot.texts(5)) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(self.bot.texts(5), ["answer one", "answer two"], second.output.decode()[-2000:])
        asked = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(asked.count("question one"), 2)
        self.assertEqual(asked.count("question two"), 1)
