"""
WhatsApp Web end to end: the gateway spawns a helper process and speaks the
JSON-lines protocol with it. The helper here is the fake bridge script
(tests/fake_wa_bridge.py) relaying to L{tests.fakes_whatsapp.FakeWhatsApp}:
WhatsApp Web's own wire (Noise, Signal, protobuf over a WebSocket) cannot
reasonably be faked, so the fake speaks the helper protocol the real
neonize/Baileys helpers speak. The model is the fake provider of
tests/fakes.py; everything is on loopback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.fakes_whatsapp import ME, SESSION, start_whatsapp, wait_for
from tests.helpers import REPO, scratch_home
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
ALICE = "+15551234567"
ALICE_JID = "15551234567@s.whatsapp.net"


class WhatsAppMixin(GatewayMixin):
    timeout = 60

    def auth_dir(self, account: str = "default") -> Path:
        return self.home / ".openclaw" / "credentials" / "whatsapp" / account

    def prelink(self, account: str = "default") -> None:
        """A session the fake helper accepts (as if linked before)."""
        folder = self.auth_dir(account)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SESSION).write_text(json.dumps({"me": ME}))

    async def start(self, whatsapp=None, replies=(), linked=True, before=None, **config):
        self.home = scratch_home(self)
        self.wa, self.command = await start_whatsapp(self)
        if before is not None:
            before(self.wa)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        if linked:
            self.prelink()
        self.section = {"bridgeCommand": self.command, **(whatsapp or {})}
        await self.gateway(channels={"whatsapp": self.section}, **model_config(self.model_url), **config)
        return self.service

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("whatsapp", account_id)]

    def row(self, account_id="default"):
        return self.account(account_id).snapshot()

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected and self.row(account_id).get("connected"), what=f"{account_id} connected")

    async def code_for(self, jid):
        text = await wait_for(lambda: next((t for t in self.wa.texts(jid) if CODE.search(t)), None), what="a pairing code")
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

    async def rpc(self, method, params=None):
        ws, _ = await self.connect()
        return await ws.request(method, params or {})


class RoundTripTests(WhatsAppMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a pairing code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back chunked under 4000, in order, quoting the question, with typing and a read receipt."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        self.wa.dm(ALICE, "hello there")
        code = await self.code_for(ALICE_JID)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve whatsapp {code}", self.wa.texts(ALICE_JID)[0])
        self.assertIn(f"your WhatsApp id: {ALICE}", self.wa.texts(ALICE_JID)[0])

        status, out, err = await self.cli("pairing", "list", "whatsapp")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "whatsapp", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved whatsapp sender", out)

        question = self.wa.dm(ALICE, "what is the plan?")
        replies = await wait_for(lambda: len(self.wa.texts(ALICE_JID)) >= 4 and self.wa.sent[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["text"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["text"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([r.get("quote") for r in replies], [question, None, None])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        self.assertIn(ALICE_JID, self.wa.typing)
        self.assertIn(question, [i for r in self.wa.reads for i in r["ids"]])


class CLIProcess(ProcessProtocol):
    """A CLI command running while the test plays the phone."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred = Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(getattr(reason.value, "exitCode", None))


def read_terminal_qr(text: str) -> list[list[bool]]:
    """The module matrix back from the Unicode half blocks (light drawn, dark blank; 2-module quiet zone)."""
    light = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    rows: list[list[bool]] = []
    for line in text.splitlines():
        top, bottom = [], []
        for ch in line:
            t, b = light[ch]
            top.append(not t)
            bottom.append(not b)
        rows += [top, bottom]
    inner = [r[2:-2] for r in rows[2:]]
    size = len(inner[0])
    return inner[:size]


class LoginTests(WhatsAppMixin, TestCase):
    async def test_unlinked_account_waits_and_sends_fail_fast(self):
        """With no session nothing is spawned: status says "not linked" with the fix, and a send fails at once instead of queueing."""
        await self.start(linked=False)
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked")
        row = self.row()
        self.assertEqual((row["linked"], row["connected"], row["running"]), (False, False, True))
        self.assertIn("openclaw channels login whatsapp", row["lastError"])
        self.assertEqual(self.wa.links, [])
        started = reactor.seconds()
        answer = await self.rpc("send", {"to": ALICE, "message": "hi", "idempotencyKey": "k1", "channel": "whatsapp"})
        self.assertFalse(answer["ok"])
        self.assertIn("not linked", answer["error"]["message"])
        self.assertLess(reactor.seconds() - started, 2.0)
        code, out, err = await self.cli("channels", "status")
        self.assertEqual(code, 0, err)
        self.assertIn("whatsapp default: not linked", out)

    async def test_rpc_login_refreshes_qr_then_links(self):
        """web.login.start answers with the QR (a PNG data URL within v4's limit, and the code itself); web.login.wait returns a refreshed QR, then connected once the phone scans; the session is private (0700/0600)."""
        from tests import schemas

        await self.start(linked=False)
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked")
        ws, _ = await self.connect()
        started = (await ws.request("web.login.start", {"timeoutMs": 10000}))["payload"]
        self.assertEqual(started["qr"], self.wa.qr_codes[0])
        self.assertTrue(started["qrDataUrl"].startswith("data:image/png;base64,"))
        self.assertIn("Linked Devices", started["message"])
        schemas.validate(4, "WebLoginWaitParams", {"timeoutMs": 5000, "currentQrDataUrl": started["qrDataUrl"]})
        self.assertEqual(self.row()["healthState"], "linking")

        waiting = ws.request("web.login.wait", {"timeoutMs": 10000, "currentQrDataUrl": started["qrDataUrl"]})
        await self.pause(0.3)
        self.wa.new_qr("2@SECONDref,NoiseKey=,IdentityKey=,AdvSecret=")
        refreshed = (await waiting)["payload"]
        self.assertEqual((refreshed["connected"], refreshed["qr"]), (False, "2@SECONDref,NoiseKey=,IdentityKey=,AdvSecret="))
        self.assertNotEqual(refreshed["qrDataUrl"], started["qrDataUrl"])

        waiting = ws.request("web.login.wait", {"timeoutMs": 10000, "currentQrDataUrl": refreshed["qrDataUrl"]})
        await self.pause(0.3)
        self.wa.scan()
        done = (await waiting)["payload"]
        self.assertEqual(done["connected"], True)
        self.assertIn("+15550001111", done["message"])
        await self.connected()
        row = self.row()
        self.assertEqual((row["linked"], row["self"]["e164"], row["mode"]), (True, "+15550001111", "web"))
        self.assertNotIn("lastError", row)
        folder = self.auth_dir()
        self.assertEqual(stat.S_IMODE(folder.stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE((folder / SESSION).stat().st_mode), 0o600)
        self.assertEqual(self.wa.links[0].hello["umask"], 0o077)
        again = (await ws.request("web.login.start", {}))["payload"]
        self.assertEqual(again["connected"], True)

    async def test_cli_login_prints_the_qr(self):
        """`openclaw channels login whatsapp` draws the gateway's QR in Unicode blocks (it decodes to the helper's code) and ends when the phone has scanned it."""
        from openclaw.channels.whatsapp.qr import encode

        await self.start(linked=False)
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked")
        cli = CLIProcess()
        reactor.spawnProcess(cli, sys.executable, [sys.executable, "-m", "openclaw", "channels", "login", "whatsapp", "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=self.cli_env())
        self.addCleanup(lambda: cli.ended if cli.ended.called else (cli.transport.signalProcess("KILL"), cli.ended)[1])
        await wait_for(lambda: b"Linked Devices" in cli.output, timeout=20, what="the QR in the terminal")
        text = cli.output.decode()
        block = "\n".join(line for line in text.splitlines() if line and set(line) <= set("█▀▄ "))
        self.assertEqual(read_terminal_qr(block), encode(self.wa.qr_codes[0]))
        self.wa.scan()
        code = await cli.ended
        self.assertEqual(code, 0, cli.output.decode())
        self.assertIn("WhatsApp is linked as +15550001111.", cli.output.decode())

    async def test_restart_required_after_pairing(self):
        """The link closing with 515 right after the scan (Baileys' restart required) starts the helper again at once, once, without a backoff."""
        await self.start(linked=False)
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked")
        self.wa.restart_after_scan = True
        ws, _ = await self.connect()
        await ws.request("web.login.start", {})
        waiting = ws.request("web.login.wait", {"timeoutMs": 10000})
        await self.pause(0.2)
        self.wa.scan()
        self.assertTrue((await waiting)["payload"]["connected"])
        self.assertEqual(len(self.wa.links), 2)
        self.assertEqual(self.account().reconnect_attempts, 0)

    async def test_qr_expiry_ends_the_login(self):
        """A QR nobody scans (the helper gives up) ends the login with a clear message; the account goes back to waiting, no helper loop."""
        await self.start(linked=False)
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked")
        ws, _ = await self.connect()
        await ws.request("web.login.start", {})
        waiting = ws.request("web.login.wait", {"timeoutMs": 10000})
        await self.pause(0.2)
        self.wa.close(408, "QR refs attempts ended")
        result = (await waiting)["payload"]
        self.assertEqual(result["connected"], False)
        self.assertIn("before the QR code was scanned", result["message"])
        await wait_for(lambda: self.row().get("healthState") == "not-linked", what="not-linked again")
        await self.pause(2.5)
        self.assertEqual(len(self.wa.links), 1)

    async def test_phone_logout_shows_the_fix(self):
        """The phone removing the linked device: the session is deleted, status says how to link again, sends fail fast."""
        await self.start()
        await self.connected()
        self.wa.phone_logout()
        await wait_for(lambda: self.row().get("healthState") == "not-linked", timeout=15, what="not-linked")
        row = self.row()
        self.assertEqual((row["linked"], row["connected"]), (False, False))
        self.assertIn("removed from the phone", row["lastError"])
        self.assertIn("openclaw channels login whatsapp", row["lastError"])
        self.assertEqual(list(self.auth_dir().iterdir()), [])
        answer = await self.rpc("send", {"to": ALICE, "message": "hi", "idempotencyKey": "k2"})
        self.assertIn("not linked", answer["error"]["message"])

    async def test_session_codes_mean_relink(self):
        """The link closing with 401 (Baileys' loggedOut) is a logout too: relink, not a reconnect loop."""
        await self.start()
        await self.connected()
        self.wa.close(401, "Connection Failure")
        await wait_for(lambda: self.row().get("healthState") == "not-linked", timeout=15, what="not-linked")
        await self.pause(2.5)
        self.assertEqual(len(self.wa.links), 1)

    async def test_invalid_stored_session(self):
        """A stored session the helper cannot use (it asks for a QR) is stopped at once and shown as not linked: no QR loop."""
        await self.start(before=lambda wa: setattr(wa, "on_attach", lambda link: link.emit({"type": "qr", "qr": "2@unwanted"})))
        await wait_for(lambda: self.row().get("healthState") == "not-linked", timeout=15, what="not-linked")
        await self.pause(2.5)
        self.assertEqual(len(self.wa.links), 1)
        self.assertTrue(self.wa.links[0].eof or self.wa.links[0].gone)


class ErrorTests(WhatsAppMixin, TestCase):
    async def test_rate_limited_send_waits(self):
        """A helper's rate_limited reply holds the chat for retryAfter, then the same reply goes once."""
        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("patience")])
        await self.connected()
        self.wa.fault("send", {"code": "rate_limited", "retryAfter": 1, "message": "rate-overlimit"})
        started = reactor.seconds()
        self.wa.dm(ALICE, "hi")
        await wait_for(lambda: self.wa.texts(ALICE_JID), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(self.wa.texts(ALICE_JID), ["patience"])

    async def test_not_on_whatsapp_is_dropped(self):
        """not_on_whatsapp drops the reply at once (no retry); the account keeps serving."""
        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("lost"), openai_text("found")])
        await self.connected()
        self.wa.fault("send", {"code": "not_on_whatsapp", "message": "not on WhatsApp"})
        self.wa.dm(ALICE, "hi")
        await wait_for(lambda: [c for c in self.wa.links[-1].commands if c["type"] == "send"], what="the send attempt")
        await self.pause(1.5)
        self.assertEqual(len([c for c in self.wa.links[-1].commands if c["type"] == "send"]), 1)
        self.assertEqual(self.account().inbox.pending(), [])
        self.wa.dm("+15559990000", "hello?")
        await wait_for(lambda: self.wa.texts("+15559990000"), what="another chat served")

    async def test_transient_send_error_is_retried(self):
        """An error reply without a code (a timeout inside the library) is retried with backoff; the reply arrives once."""
        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("eventually")])
        await self.connected()
        self.wa.fault("send", {"message": "timed out waiting for the server"})
        self.wa.dm(ALICE, "hi")
        await wait_for(lambda: self.wa.texts(ALICE_JID), timeout=15, what="the retried reply")
        self.assertEqual(self.wa.texts(ALICE_JID), ["eventually"])

    async def test_helper_crash_reconnects_with_backoff(self):
        """The helper dying (exit 1): status names what it last said on stderr, the gateway starts a new one after a backoff and serves again."""
        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("back again")])
        await self.connected()
        self.wa.live.stderr("panic: runtime error in the library")
        self.wa.live.exit(1)
        await wait_for(lambda: self.account().state == "backoff", what="the backoff")
        self.assertIn("panic: runtime error in the library", self.row()["lastError"])
        self.assertFalse(self.row()["connected"])
        await wait_for(lambda: len(self.wa.links) == 2 and self.account().connected, timeout=15, what="a new helper")
        self.wa.dm(ALICE, "still there?")
        await wait_for(lambda: self.wa.texts(ALICE_JID), what="the answer")
        self.assertEqual(self.account().reconnect_attempts, 1)

    async def test_silent_helper_is_restarted(self):
        """A helper that stops answering pings is killed and a new one started."""
        await self.start(whatsapp={"pingSeconds": 1, "pingTimeoutSeconds": 1})
        await self.connected()
        self.wa.fault("ping", {"stall": True})
        await wait_for(lambda: len(self.wa.links) == 2 and self.account().connected, timeout=20, what="a new helper")
        self.assertTrue(self.wa.links[0].gone)

    async def test_garbage_lines(self):
        """Lines that are not JSON events are skipped; twenty in a row stop the helper, and a new one starts."""
        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("fine")])
        await self.connected()
        self.wa.live.raw("not json\n[1, 2]\n{\"no\": \"type\"}\n")
        self.wa.dm(ALICE, "hi")
        await wait_for(lambda: self.wa.texts(ALICE_JID), what="the answer despite garbage")
        self.wa.live.raw("garbage\n" * 20)
        await wait_for(lambda: len(self.wa.links) == 2, timeout=15, what="a new helper")
        self.assertTrue(self.wa.links[0].gone)

    async def test_missing_helper_program(self):
        """A bridgeCommand that does not exist stops the account with the fix, instead of looping."""
        await self.start(whatsapp={"bridgeCommand": ["/nonexistent/wa-helper", "--x"]})
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        self.assertIn("bridgeCommand", self.row()["lastError"])

    async def test_fatal_helper_error(self):
        """A helper that cannot run as installed (fatal error) stops the account with its message."""
        def fatal(link):
            link.emit({"type": "error", "fatal": True, "message": "neonize is not installed: pip install 'openclaw-twisted[whatsapp]'"})
            link.exit(2)

        await self.start(before=lambda wa: setattr(wa, "on_attach", fatal))
        await wait_for(lambda: self.account().state == "misconfigured", timeout=15, what="misconfigured")
        self.assertIn("neonize is not installed", self.row()["lastError"])

    async def test_replaced_session(self):
        """Another client taking over the session (440) is shown with what to do, and the account reconnects."""
        await self.start()
        await self.connected()
        self.wa.close(440, "conflict: replaced")
        await wait_for(lambda: "replaced this one" in (self.row().get("lastError") or ""), what="the 440 in status")
        await wait_for(lambda: len(self.wa.links) == 2 and self.account().connected, timeout=15, what="reconnected")


class InboundTests(WhatsAppMixin, TestCase):
    async def test_self_chat_mode(self):
        """Self-chat mode: the owner's notes to self reach the agent without pairing; our own reply's echo and the owner's messages to others do not; status@broadcast is ignored."""
        await self.start(whatsapp={"selfChatMode": True}, replies=[openai_text("noted"), openai_text("should not happen")])
        await self.connected()
        self.wa._message(chat="status@broadcast", sender=ALICE_JID, fromMe=False, pushName="Alice", text="my status")
        self.wa.from_me(ALICE_JID, "hi Alice, from my phone")
        self.wa.from_me(ME["jid"], "remind me to call mom")
        await wait_for(lambda: self.wa.texts(ME["jid"]), what="the self-chat reply")
        self.assertEqual(self.wa.texts(ME["jid"]), ["noted"])
        echo = self.wa.sent[0]["id"]
        self.wa.from_me(ME["jid"], "noted", id=echo)
        await self.pause(1.0)
        self.assertEqual(len(self.model.requests), 1, [r["body"]["messages"][-1]["content"] for r in self.model.requests])
        self.assertIn("remind me to call mom", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.assertEqual(self.wa.texts(ALICE_JID), [])
        self.assertEqual(self.wa.reads, [])  # self chat: no read receipts
        self.assertTrue(self.row()["selfChatMode"])

    async def test_own_messages_ignored_without_self_chat(self):
        """Without self-chat mode, what the owner writes (even to self) is never input."""
        await self.start(replies=[openai_text("x")])
        await self.connected()
        self.wa.from_me(ME["jid"], "note")
        await self.pause(1.0)
        self.assertEqual((self.model.requests, self.wa.sent), ([], []))

    async def test_groups_and_mentions(self):
        """In an allowed group only mentions of the account (by number or privacy id) and replies to it reach the agent, in the group's session; the prompt names the speaker."""
        group = "120363012345678901@g.us"
        await self.start(whatsapp={"groups": {group: {}}}, replies=[openai_text("hi group"), openai_text("again")])
        await self.connected()
        self.wa.group(group, "+15552223333", "chatting among ourselves")
        self.wa.group("999999999999999@g.us", "+15552223333", "other group", mentions=[ME["jid"]])
        self.wa.group(group, "+15552223333", "@Claw what time is it?", mentions=[ME["lid"]])
        await wait_for(lambda: self.wa.texts(group), what="the group reply")
        self.assertEqual(len(self.model.requests), 1)
        self.assertIn("Bob: @Claw what time is it?", self.model.requests[0]["body"]["messages"][-1]["content"])
        self.wa.group(group, "+15552224444", "and you?", quoted={"id": self.wa.sent[0]["id"], "sender": ME["jid"], "text": "hi group"})
        await wait_for(lambda: len(self.wa.texts(group)) == 2, what="the reply to a reply")
        store = self.service.core.agent.store("main")
        self.assertIsNotNone(store.get(f"agent:main:whatsapp:group:{group}"))


class StatusTests(WhatsAppMixin, TestCase):
    async def test_status_is_truthful(self):
        """channels.status (v3 and v4 shapes) tells linked, connected, the own number, last in/out and, with probe, that the helper answers; the CLI shows it."""
        from tests import schemas

        await self.start(whatsapp={"dmPolicy": "open"}, replies=[openai_text("pong")])
        await self.connected()
        self.wa.dm(ALICE, "ping")
        await wait_for(lambda: self.wa.texts(ALICE_JID), what="the reply")
        for protocol in (3, 4):
            ws, _ = await self.connect()
            status = (await ws.request("channels.status", {"probe": True, "timeoutMs": 5000}))["payload"]
            schemas.validate(protocol, "ChannelsStatusResult", status)
        (row,) = status["channelAccounts"]["whatsapp"]
        self.assertEqual({k: row[k] for k in ("configured", "running", "connected", "linked", "mode", "healthState")}, {"configured": True, "running": True, "connected": True, "linked": True, "mode": "web", "healthState": "running"})
        self.assertEqual(row["self"], {"e164": "+15550001111", "jid": ME["jid"], "name": ME["name"]})
        self.assertTrue(row["probe"]["ok"])
        self.assertIn("lastInboundAt", row)
        self.assertIn("lastOutboundAt", row)
        self.assertIn("lastTransportActivityAt", row)
        self.assertEqual(status["channelLabels"]["whatsapp"], "WhatsApp")
        code, out, err = await self.cli("channels", "status", "--probe")
        self.assertEqual(code, 0, err)
        self.assertIn("whatsapp default: running, connected, mode:web", out)
        self.assertIn("probe ok", out)

    async def test_logout_unlinks_and_clears(self):
        """`openclaw channels logout whatsapp` unlinks the device on WhatsApp's side (through a short-lived helper), deletes the session and keeps the account off."""
        await self.start()
        await self.connected()
        code, out, err = await self.cli("channels", "logout", "whatsapp")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.wa.logouts, 1)
        self.assertEqual(list(self.auth_dir().iterdir()), [])
        self.assertEqual(self.account().state, "logged-out")


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


class RestartTests(WhatsAppMixin, TestCase):
    async def test_kill_9_mid_conversation(self):
        """SIGKILL while a turn runs: the next gateway answers that question once (WhatsApp's redelivery of it is dropped) and the message that arrived meanwhile once."""
        self.home = scratch_home(self)
        self.wa, command = await start_whatsapp(self)
        self.model, self.model_url = await start_fake(self)
        hanging = openai_text("thinking")
        hanging.chunks, hanging.hang = hanging.chunks[:2], True
        self.model.replies += [hanging, openai_text("answer one"), openai_text("answer two")]
        self.prelink()
        config = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "canvasHost": {"enabled": False},
            "bridge": {"enabled": False},
            "channels": {"whatsapp": {"bridgeCommand": command, "dmPolicy": "open"}},
            **model_config(self.model_url),
        }
        (self.home / ".openclaw" / "openclaw.json").write_text(json.dumps(config))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "PYTHONPATH": str(REPO)}

        def spawn():
            process = Gateway()
            reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "openclaw", "gateway", "run", "--port", "0"], env=env)
            return process

        first = spawn()
        self.addCleanup(lambda: first.ended if first.ended.called else (first.transport.signalProcess("KILL"), first.ended)[1])
        await wait_for(lambda: self.wa.live is not None, timeout=30, what="the gateway's helper")
        asked = self.wa.dm(ALICE, "question one")
        await wait_for(lambda: self.model.requests, timeout=15, what="the first run")
        first.transport.signalProcess("KILL")
        await first.ended
        await wait_for(lambda: self.wa.live is None, timeout=10, what="the orphaned helper to exit")

        def redeliver(link):
            link.emit({"type": "connected", **self.wa.me})
            link.emit({"type": "message", "id": asked, "chat": ALICE_JID, "sender": ALICE_JID, "fromMe": False, "pushName": "Alice", "text": "question one", "timestamp": 1_760_000_000})
            link.emit({"type": "message", "id": "ABCDNEW", "chat": ALICE_JID, "sender": ALICE_JID, "fromMe": False, "pushName": "Alice", "text": "question two", "timestamp": 1_760_000_001})

        self.wa.on_attach = redeliver
        second = spawn()
        self.addCleanup(lambda: second.ended if second.ended.called else (second.transport.signalProcess("TERM"), second.ended)[1])
        await wait_for(lambda: len(self.wa.texts(ALICE_JID)) >= 2, timeout=30, what="both answers")
        await self.pause(1.0)
        self.assertEqual(sorted(self.wa.texts(ALICE_JID)), ["answer one", "answer two"], second.output.decode()[-2000:])
        questions = [r["body"]["messages"][-1]["content"] for r in self.model.requests]
        self.assertEqual(questions.count("question one"), 2)
        self.assertEqual(questions.count("question two"), 1)


class IdTests(TestCase):
    def test_targets(self):
        """Numbers in any common spelling become E.164; person JIDs become numbers; groups and privacy ids stay JIDs; the rest is refused."""
        from openclaw.channels.whatsapp.messages import parse_target, to_jid

        for raw in ("+1 (555) 123-4567", "15551234567", "whatsapp:+15551234567", "15551234567@s.whatsapp.net", "15551234567:12@s.whatsapp.net", "15551234567@c.us"):
            self.assertEqual(parse_target(raw), ALICE, raw)
        self.assertEqual(parse_target("120363012345678901@g.us"), "120363012345678901@g.us")
        self.assertEqual(parse_target("987654321@lid"), "987654321@lid")
        for bad in ("alice", "+12", "status@broadcast", "x@example.com", ""):
            self.assertRaises(ValueError, parse_target, bad)
        self.assertEqual(to_jid(ALICE), ALICE_JID)
        self.assertEqual(to_jid("120363012345678901@g.us"), "120363012345678901@g.us")

    def test_inbound_rules(self):
        """to_inbound: DMs keyed by E.164, privacy-id DMs answered at the known number, groups by JID with mentions, status and broadcast chats and empty messages dropped."""
        from openclaw.channels.whatsapp.messages import Me, WaMessage, to_inbound

        me = Me(ME["jid"], ME["lid"], ME["name"])
        dm = to_inbound(WaMessage("M1", ALICE_JID, ALICE_JID, push_name="Alice", text="hi", timestamp=5), me, "default")
        self.assertEqual((dm.chat_id, dm.sender_id, dm.chat_type, dm.ts_ms, dm.trusted), (ALICE, ALICE, "dm", 5000, False))
        lid = to_inbound(WaMessage("M2", "42@lid", "42@lid", sender_phone=ALICE, text="hi"), me, "default")
        self.assertEqual((lid.chat_id, lid.sender_id), (ALICE, ALICE))
        group = to_inbound(WaMessage("M3", "1203@g.us", "42@lid", text="@bot hi", mentions=("777000111@lid",), chat_name="Team"), me, "default")
        self.assertEqual((group.chat_id, group.sender_id, group.chat_type, group.mentions_me, group.chat_title), ("1203@g.us", "42@lid", "group", True, "Team"))
        for dropped in (
            WaMessage("M4", "status@broadcast", ALICE_JID, text="status"),
            WaMessage("M5", "123@broadcast", ALICE_JID, text="list"),
            WaMessage("M6", "1@newsletter", "", text="news"),
            WaMessage("M7", ALICE_JID, ALICE_JID, text="  "),
            WaMessage("M8", ME["jid"], ME["jid"], from_me=True, text="self, no self-chat"),
        ):
            self.assertIsNone(to_inbound(dropped, me, "default"), dropped)
        mine = to_inbound(WaMessage("M9", ME["jid"], ME["jid"], from_me=True, text="note"), me, "default", self_chat=True)
        self.assertEqual((mine.sender_id, mine.trusted), ("+15550001111", True))
        self.assertIsNone(to_inbound(WaMessage("M9", ME["jid"], ME["jid"], from_me=True, text="note"), me, "default", self_chat=True, sent_by_us={"M9"}))
        media = to_inbound(WaMessage("M10", ALICE_JID, ALICE_JID, media="voice"), me, "default")
        self.assertEqual(media.media, ("voice",))

    def test_bridge_events_are_checked(self):
        """WaMessage.from_event takes only well-typed fields, bounds them, and reads millisecond timestamps."""
        from openclaw.channels.whatsapp.messages import WaMessage

        self.assertIsNone(WaMessage.from_event({"chat": ALICE_JID}))
        m = WaMessage.from_event({"id": "X", "chat": ALICE_JID, "text": "t" * 100_000, "timestamp": 1_760_000_000_123, "mentions": ["a", 3], "fromMe": "yes", "quoted": {"id": "Q", "text": 5}, "senderPhone": "+1 555 123 4567"})
        self.assertEqual((len(m.text), m.timestamp, m.mentions, m.from_me, m.quoted.id, m.sender_phone), (65536, 1_760_000_000, ("a",), False, "Q", ALICE))

    def test_line_decoder_and_errors(self):
        """The helper's stdout is split into bounded lines (an overlong one reported once); error replies map to the framework's errors by code."""
        from openclaw.channels.interfaces import ChannelError, Rejected, RetryAfter, Unreachable, Unsupported
        from openclaw.channels.whatsapp.bridge import LineDecoder, command_error

        decoder = LineDecoder(limit=10)
        self.assertEqual(decoder.feed(b'{"a":1}\r\n{"b"'), [b'{"a":1}'])
        self.assertEqual(decoder.feed(b":2}\n"), [b'{"b":2}'])
        self.assertEqual(decoder.feed(b"x" * 25), [None])
        self.assertEqual(decoder.feed(b"yyyy\nok\n"), [b"ok"])
        self.assertIsInstance(command_error("send", {"code": "rate_limited", "retryAfter": 3}), RetryAfter)
        self.assertEqual(command_error("send", {"code": "rate_limited"}).seconds, 5.0)
        self.assertIsInstance(command_error("send", {"code": "not_on_whatsapp"}), Unreachable)
        self.assertIsInstance(command_error("send", {"code": "too_large"}), Rejected)
        self.assertIsInstance(command_error("send", {"code": "unsupported"}), Unsupported)
        self.assertIs(type(command_error("send", {"message": "x"})), ChannelError)

    def test_helper_environment(self):
        """The helper gets its session folder, its account and what a program needs to run, never the gateway's secrets; it runs in that folder with umask 077."""
        from openclaw.channels.whatsapp.bridge import _helper_env

        env = _helper_env({"PATH": "/bin", "HOME": "/h", "OPENAI_API_KEY": "sk-secret", "OPENCLAW_GATEWAY_TOKEN": "t"}, Path("/state/wa"), "work")
        self.assertEqual(env["OPENCLAW_WHATSAPP_AUTH_DIR"], "/state/wa")
        self.assertEqual(env["OPENCLAW_WHATSAPP_ACCOUNT"], "work")
        self.assertNotIn("OPENAI_API_KEY", env)
        self.assertNotIn("OPENCLAW_GATEWAY_TOKEN", env)
