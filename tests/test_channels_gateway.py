"""
The channel methods, events, CLI and the agent's message tool, over a live
gateway with the fake Telegram and the fake model provider; health and status
reporting the accounts; the wiring's adapter to the agent runner.
"""

from __future__ import annotations

import base64
import json

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.channels.ports import AgentBusy, RunOutcome
from openclaw.channels.wiring import RuntimeAgent
from openclaw.interfaces import QueueFull, RunResult
from openclaw.protocol.errors import GatewayError, InvalidInput
from tests import schemas
from tests.fakes import openai_text, openai_tool_call
from tests.fakes_telegram import wait_for
from tests.test_telegram import TelegramMixin
from tests.wsclient import connect_params


class MethodTests(TelegramMixin, TestCase):
    async def operator(self, scopes=("operator.admin",), protocol=3):
        ws, res = await self.connect(connect_params(protocol=protocol, scopes=list(scopes)))
        self.assertTrue(res["ok"], res)
        return ws

    async def test_status_matches_upstream_schemas(self):
        """channels.status answers in v3's and v4's ChannelsStatusResult shape, with the account's state and, with probe, the bot."""
        await self.start(telegram={"dmPolicy": "allowlist", "allowFrom": ["5"]})
        await self.connected()
        for protocol in (3, 4):
            ws = await self.operator(protocol=protocol)
            status = (await ws.request("channels.status", {"probe": True, "timeoutMs": 5000}))["payload"]
            schemas.validate(protocol, "ChannelsStatusResult", status)
        self.assertEqual((status["channelOrder"], status["channelLabels"], status["channelDefaultAccountId"]), (["telegram"], {"telegram": "Telegram"}, {"telegram": "default"}))
        (row,) = status["channelAccounts"]["telegram"]
        self.assertEqual({k: row[k] for k in ("accountId", "configured", "running", "connected", "mode", "dmPolicy", "allowFrom", "tokenSource")}, {"accountId": "default", "configured": True, "running": True, "connected": True, "mode": "polling", "dmPolicy": "allowlist", "allowFrom": ["5"], "tokenSource": "config"})
        self.assertEqual(row["probe"]["bot"], {"id": 777, "username": "claw_test_bot"})
        self.assertTrue(row["probe"]["ok"])
        self.assertIn("lastProbeAt", row)
        self.assertEqual(status["channels"]["telegram"]["connected"], True)

    async def test_health_and_status_report_accounts(self):
        """health has a row per account (v3/v4 snapshot shape, no allow lists) and status a summary line per channel and account, with the live state; both follow an account that stops."""
        good = {"dmPolicy": "allowlist", "allowFrom": ["5", "6", "7"]}
        await self.start(telegram={"accounts": {"work": {"botToken": "555:refused-token-abcdefghijklmnopqrstuvw"}}, **good}, channels_extra={"nostr": {"relays": ["wss://relay.example"]}})
        await self.connected()
        await wait_for(lambda: self.account("work").state == "auth-failed", what="work stopped")
        for protocol in (3, 4):
            ws, hello = await self.connect(connect_params(protocol=protocol))
            health = (await ws.request("health", {"probe": True}))["payload"]
            schemas.validate(protocol, "HelloOk", {**hello["payload"], "snapshot": {**hello["payload"]["snapshot"], "health": health}})
        self.assertEqual((health["channelOrder"], health["channelLabels"]), (["nostr", "telegram"], {"nostr": "nostr", "telegram": "Telegram"}))
        telegram = health["channels"]["telegram"]
        self.assertEqual(sorted(telegram["accounts"]), ["default", "work"])
        self.assertEqual({k: telegram[k] for k in ("accountId", "configured", "running", "connected", "dmPolicy")}, {"accountId": "default", "configured": True, "running": True, "connected": True, "dmPolicy": "allowlist"})
        work = telegram["accounts"]["work"]
        self.assertEqual((work["running"], work["connected"], work["healthState"]), (False, False, "auth-failed"))
        self.assertNotIn("allowFrom", json.dumps(health))
        self.assertEqual(health["channels"]["nostr"]["lastError"], "this gateway has no nostr channel yet")

        status = (await ws.request("status"))["payload"]
        nostr, label, default, other = status["channelSummary"]
        self.assertEqual((nostr, label, default), ("nostr: configured, not running (this gateway has no nostr channel yet)", "Telegram: configured", f"  - default (dm:allowlist, token:config, {self.api}, allow:5,6, connected)"))
        self.assertEqual(other, f"  - work (dm:allowlist, token:config, {self.api}, allow:5,6, not running: auth-failed, error: Telegram refused the bot token (401 Unauthorized): check channels.telegram.botToken (or tokenFile / TELEGRAM_BOT_TOKEN))")

        await (await self.operator()).request("channels.stop", {"channel": "telegram"})
        ws, _ = await self.connect()
        health = (await ws.request("health", {"probe": True}))["payload"]
        self.assertEqual((health["channels"]["telegram"]["running"], health["channels"]["telegram"]["connected"]), (False, False))
        self.assertIn(f"  - default (dm:allowlist, token:config, {self.api}, allow:5,6, not running)", (await ws.request("status"))["payload"]["channelSummary"])

    async def test_status_without_channels(self):
        """With no channels configured the answer is empty (and still valid)."""
        await self.gateway()
        ws = await self.operator()
        status = (await ws.request("channels.status", {}))["payload"]
        schemas.validate(3, "ChannelsStatusResult", status)
        self.assertEqual(status["channelAccounts"], {})

    async def test_send_text_media_and_replays(self):
        """send delivers chunked text, media by URL and uploaded buffers; a repeated idempotencyKey replays the first result without sending again."""
        await self.start()
        await self.connected()
        ws = await self.operator(scopes=("operator.write",))
        text = ("line of text " * 40 + "\n") * 10
        first = await ws.request("send", {"to": "5", "message": text, "idempotencyKey": "k1", "channel": "telegram"})
        self.assertTrue(first["ok"], first)
        self.assertEqual({k: first["payload"][k] for k in ("runId", "channel", "chatId")}, {"runId": "k1", "channel": "telegram", "chatId": "5"})
        self.assertEqual(len(self.bot.texts(5)), 2)
        again = await ws.request("send", {"to": "5", "message": text, "idempotencyKey": "k1"})
        self.assertEqual(again["payload"], first["payload"])
        self.assertEqual(len(self.bot.texts(5)), 2)

        photo = await ws.request("send", {"to": "5", "message": "a cat", "mediaUrl": "https://example.com/cat.jpg", "idempotencyKey": "k2"})
        self.assertTrue(photo["ok"], photo)
        self.assertEqual({k: self.bot.sent[-1][k] for k in ("method", "media", "caption")}, {"method": "sendPhoto", "media": "https://example.com/cat.jpg", "caption": "a cat"})
        upload = await ws.request("send", {"to": "5", "buffer": base64.b64encode(b"meeting notes").decode(), "filename": "notes.txt", "contentType": "text/plain", "idempotencyKey": "k3"})
        self.assertTrue(upload["ok"], upload)
        self.assertEqual({k: self.bot.sent[-1][k] for k in ("method", "media")}, {"method": "sendDocument", "media": "meeting notes"})

    async def test_send_errors(self):
        """Bad targets and unknown channels are INVALID_REQUEST; a chat that blocked the bot and an account that is stopped are UNAVAILABLE, saying why."""
        await self.start()
        await self.connected()
        ws = await self.operator()
        bad = await ws.request("send", {"to": "not a chat", "message": "x", "idempotencyKey": "b1"})
        self.assertEqual(bad["error"]["code"], "INVALID_REQUEST")
        self.assertIn("not a Telegram chat id", bad["error"]["message"])
        unknown = await ws.request("send", {"to": "5", "message": "x", "channel": "discord", "idempotencyKey": "b2"})
        self.assertEqual(unknown["error"]["code"], "INVALID_REQUEST")
        empty = await ws.request("send", {"to": "5", "idempotencyKey": "b3"})
        self.assertIn("give message or media", empty["error"]["message"])
        local = await ws.request("send", {"to": "5", "message": "x", "mediaUrl": "file:///etc/passwd", "idempotencyKey": "b4"})
        self.assertIn("http(s)", local["error"]["message"])
        self.bot.blocked.add(9)
        blocked = await ws.request("send", {"to": "9", "message": "x", "idempotencyKey": "b5"})
        self.assertEqual(blocked["error"]["code"], "UNAVAILABLE")
        self.assertIn("bot was blocked by the user", blocked["error"]["message"])
        await self.service.channels.stop_account("telegram")
        stopped = await ws.request("send", {"to": "5", "message": "x", "idempotencyKey": "b6"})
        self.assertEqual(stopped["error"]["code"], "UNAVAILABLE")

    async def test_poll(self):
        """poll posts a Telegram poll (write scope)."""
        await self.start()
        await self.connected()
        ws = await self.operator(scopes=("operator.write",))
        res = await ws.request("poll", {"to": "-100", "question": "Lunch?", "options": ["pizza", "soup"], "maxSelections": 2, "idempotencyKey": "p1"})
        self.assertTrue(res["ok"], res)
        self.assertEqual(self.bot.sent[-1]["options"], [{"text": "pizza"}, {"text": "soup"}])

    async def test_pairing_methods_and_events(self):
        """Pairing requests show live as `pairing` events to operator.pairing holders only; list/approve/dismiss answer in v4's shapes."""
        await self.start()
        await self.connected()
        pairer = await self.operator(scopes=("operator.pairing",), protocol=4)
        reader = await self.operator(scopes=("operator.read",))
        self.bot.dm(5, "hi", username="eve")
        event = (await pairer.event("pairing"))["payload"]
        self.assertEqual({k: event[k] for k in ("action", "channel", "accountId", "senderId")}, {"action": "requested", "channel": "telegram", "accountId": "default", "senderId": "5"})
        listing = (await pairer.request("channels.pairing.list", {"channel": "telegram"}))["payload"]
        schemas.validate(4, "ChannelsPairingListResult", listing)
        (request,) = listing["requests"]
        self.assertEqual((request["requestId"], request["metadata"]["code"], request["senderLabel"]), (event["requestId"], event["code"], "Alice (@eve)"))
        self.assertEqual(listing["limits"], {"pendingPerAccount": 10, "ttlMs": 300_000})

        missing = await pairer.request("channels.pairing.approve", {"channel": "telegram", "accountId": "default", "requestId": "nope"})
        self.assertEqual(missing["error"]["code"], "INVALID_REQUEST")
        approved = (await pairer.request("channels.pairing.approve", {"channel": "telegram", "accountId": "default", "requestId": request["requestId"], "notify": True}))["payload"]
        schemas.validate(4, "ChannelsPairingApproveResult", approved)
        self.assertEqual((approved["senderId"], approved["notification"]), ("5", "sent"))
        self.assertIn("access approved", self.bot.texts(5)[-1])
        self.assertEqual((await pairer.event("pairing"))["payload"]["action"], "approved")

        self.bot.dm(6, "me too")
        second = (await pairer.event("pairing"))["payload"]
        dismissed = (await pairer.request("channels.pairing.dismiss", {"channel": "telegram", "accountId": "default", "requestId": second["requestId"]}))["payload"]
        schemas.validate(4, "ChannelsPairingDismissResult", dismissed)
        self.assertEqual((await pairer.event("pairing"))["payload"]["action"], "dismissed")
        self.assertEqual((await reader.request("channels.pairing.list", {}))["error"]["message"], "missing scope: operator.pairing")
        self.assertFalse([e for e in reader.events if e.get("event") == "pairing"])

    async def test_start_stop_logout(self):
        """channels.stop/start restart one account; logout keeps it off (even across a gateway restart) until channels.start; all need admin."""
        await self.start()
        await self.connected()
        ws = await self.operator()
        writer = await self.operator(scopes=("operator.write",))
        self.assertIn("missing scope: operator.admin", (await writer.request("channels.logout", {"channel": "telegram"}))["error"]["message"])
        stopped = (await ws.request("channels.stop", {"channel": "telegram"}))["payload"]
        self.assertEqual(stopped["status"]["running"], False)
        started = (await ws.request("channels.start", {"channel": "telegram"}))["payload"]
        self.assertEqual(started["status"]["healthState"], "connecting")
        await self.connected()
        out = (await ws.request("channels.logout", {"channel": "telegram"}))["payload"]
        self.assertEqual((out["ok"], out["loggedOut"], out["accountId"]), (True, True, "default"))
        row = (await ws.request("channels.status", {}))["payload"]["channelAccounts"]["telegram"][0]
        self.assertIn("openclaw channels login telegram", row["lastError"])
        polls = self.bot.polls_started
        await self.service.stopService()
        await self.gateway(channels={"telegram": {"botToken": self.bot.token, "apiRoot": self.api, "pollTimeoutSeconds": 1}})
        self.assertEqual(self.account().state, "logged-out")
        self.assertEqual(self.bot.polls_started, polls)
        ws = await self.operator()
        await ws.request("channels.start", {"channel": "telegram"})
        await self.connected()
        self.assertEqual((await ws.request("channels.start", {"channel": "nope"}))["error"]["code"], "INVALID_REQUEST")


class MessageToolTests(TelegramMixin, TestCase):
    async def test_main_session_sends(self):
        """The agent's `message` tool sends to a configured channel from the main session."""
        await self.start(replies=[openai_tool_call("message", {"channel": "telegram", "to": "5", "message": "Reminder: stand-up at 10"}), openai_text("Sent.")])
        await self.connected()
        ws, _ = await self.connect()
        ws.protocol.send_json({"type": "req", "id": "a", "method": "agent", "params": {"message": "remind bob", "idempotencyKey": "t1"}})
        await ws.response("a")
        final = await ws.response("a", timeout=15)
        self.assertEqual(final["payload"]["status"], "ok")
        self.assertEqual(self.bot.texts(5), ["Reminder: stand-up at 10"])
        result = [m for m in self.model.requests[1]["body"]["messages"] if m.get("role") == "tool"][0]["content"]
        self.assertIn("sent to telegram chat 5", result)

    async def test_other_sessions_are_refused(self):
        """From a non-main session the tool refuses (unless tools.message.allowNonMainSessions), and nothing is sent."""
        await self.start(replies=[openai_tool_call("message", {"to": "5", "message": "leak"}), openai_text("could not")])
        await self.connected()
        ws, _ = await self.connect()
        ws.protocol.send_json({"type": "req", "id": "a", "method": "agent", "params": {"message": "send it", "idempotencyKey": "t2", "sessionKey": "agent:main:telegram:group:-100"}})
        await ws.response("a")
        await ws.response("a", timeout=15)
        self.assertEqual(self.bot.texts(5), [])
        result = [m for m in self.model.requests[1]["body"]["messages"] if m.get("role") == "tool"][0]["content"]
        self.assertIn("only available in the main session", result)


class CLITests(TelegramMixin, TestCase):
    async def test_channels_and_message_commands(self):
        """`openclaw channels status` (text and --json), `message send`, `channels logout` and `channels login` work against the gateway."""
        await self.start()
        await self.connected()
        code, out, err = await self.cli("channels", "status")
        self.assertEqual(code, 0, err)
        self.assertIn("- telegram default: running, connected, mode:polling, bot:@claw_test_bot, dm:pairing", out)
        code, out, err = await self.cli("status")
        self.assertEqual(code, 0, err)
        self.assertIn("  channels:\n    Telegram: configured\n      - default (dm:pairing, token:config, ", out)
        code, out, err = await self.cli("channels", "status", "--probe", "--json")
        self.assertEqual(json.loads(out)["channelAccounts"]["telegram"][0]["probe"]["ok"], True)
        code, out, err = await self.cli("message", "send", "--channel", "telegram", "--to", "5", "--message", "hello from the CLI")
        self.assertEqual(code, 0, err)
        self.assertIn("Sent to telegram chat 5", out)
        self.assertEqual(self.bot.texts(5), ["hello from the CLI"])
        code, out, err = await self.cli("message", "send", "--to", "x y", "--message", "hi")
        self.assertEqual(code, 1)
        self.assertIn("not a Telegram chat id", err)
        code, out, err = await self.cli("channels", "logout", "telegram")
        self.assertEqual((code, out), (0, "Logged out telegram account default.\n"), err)
        code, out, err = await self.cli("channels", "login", "--channel", "telegram")
        self.assertEqual(code, 0, err)
        await self.connected()

    async def test_pairing_deny_and_unknown_code(self):
        """`pairing deny` dismisses a request (the sender stays unknown); a wrong code exits 1 naming it."""
        await self.start()
        await self.connected()
        self.bot.dm(5, "hi")
        code = await self.code_for(5)
        status, out, err = await self.cli("pairing", "approve", "telegram", "AAAAAAAA")
        self.assertEqual(status, 1)
        self.assertIn("No pending pairing request found for code 'AAAAAAAA'", err)
        status, out, err = await self.cli("pairing", "deny", "telegram", code.lower())
        self.assertEqual(status, 0, err)
        self.assertIn("Denied telegram pairing request from Alice (id 5)", out)
        status, out, err = await self.cli("pairing", "list", "--json")
        self.assertEqual(json.loads(out)["requests"], [])
        self.assertEqual(self.service.channels.store("telegram").allowed(), frozenset())


class ConfigTests(TestCase):
    def test_channel_keys_are_checked(self):
        """A wrong channel value stops the gateway from starting (naming the key); an unused upstream key is only a warning."""
        from openclaw.config import ConfigError
        from tests.helpers import scratch_home
        from tests.wsclient import gateway_settings

        home = scratch_home(self)
        with self.assertRaises(ConfigError) as caught:
            gateway_settings(home, channels={"telegram": {"dmPolicy": "closed", "groups": {"-1": {"requireMention": "no"}}}})
        self.assertEqual([i.path for i in caught.exception.issues], ["channels.telegram.dmPolicy", "channels.telegram.groups.-1.requireMention"])
        settings = gateway_settings(home, channels={"telegram": {"streamMode": "partial"}, "zalo": {"anything": 1}})
        self.assertEqual([w.path for w in settings.warnings], ["channels.telegram.streamMode"])


class WiringTests(SynchronousTestCase):
    """The adapter between the channels' agent port and the gateway's AgentRunner (openclaw/channels/wiring.py)."""

    class Run:
        def __init__(self, key, run_id, result):
            self.run_id, self.session_key, self._result, self.listeners = run_id, key, result, []

        def finished(self):
            return succeed(self._result)

        def observe(self, listener):
            self.listeners.append(listener)

    class Runner:
        def __init__(self):
            self.refusal = None
            self.aborted = []
            self.result = None

        def start(self, key, message, run_id, agent_id=None, timeout=None, quiet=False, fresh=False):
            if self.refusal is not None:
                raise self.refusal
            return WiringTests.Run(key, run_id, self.result or RunResult(run_id, key, "ok", "the reply"))

        def abort(self, key, run_id=None):
            self.aborted.append((key, run_id))
            return [run_id]

    def test_refusals(self):
        """A full queue is AgentBusy with the runner's retry time; an unknown agent and an unusable key are ValueErrors."""
        runner = self.Runner()
        agent = RuntimeAgent(runner)
        runner.refusal = QueueFull("too many queued messages for this session", retry_after_ms=3000)
        with self.assertRaises(AgentBusy) as busy:
            agent.start("agent:main:main", "hi", "r1", "main")
        self.assertEqual((str(busy.exception), busy.exception.retry_after), ("too many queued messages for this session", 3.0))
        runner.refusal = GatewayError("INVALID_REQUEST", "unknown agent id 'ops'")
        with self.assertRaises(ValueError) as unknown:
            agent.start("agent:ops:main", "hi", "r2", "ops")
        self.assertEqual(str(unknown.exception), "unknown agent id 'ops'")
        runner.refusal = InvalidInput("invalid session key")
        self.assertRaises(ValueError, agent.start, "../x", "hi", "r3", "main")

    def test_runs(self):
        """A started run: its outcome carries the reply only when it ended ok; deltas and tool names reach the listener; abort names the run."""
        runner = self.Runner()
        run = RuntimeAgent(runner).start("agent:main:main", "hi", "r1", "main")
        self.assertEqual((run.run_id, run.session_key), ("r1", "agent:main:main"))
        self.assertEqual(self.successResultOf(run.outcome()), RunOutcome("ok", "the reply", None))
        seen = []
        run.observe(lambda stream, text: seen.append((stream, text)))
        for listener in run._run.listeners:
            listener("assistant", {"text": "Hel", "delta": "Hel"})
            listener("tool", {"phase": "start", "name": "message"})
            listener("lifecycle", {"phase": "end"})
        self.assertEqual(seen, [("assistant", "Hel"), ("tool", "message"), ("lifecycle", "")])
        run.abort()
        self.assertEqual(runner.aborted, [("agent:main:main", "r1")])
        runner.result = RunResult("r2", "agent:main:main", "error", "partial text", "model failed")
        failed = RuntimeAgent(runner).start("agent:main:main", "hi", "r2", "main")
        self.assertEqual(self.successResultOf(failed.outcome()), RunOutcome("error", "", "model failed"))
