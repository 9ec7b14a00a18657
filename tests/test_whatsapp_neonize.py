"""
The shipped WhatsApp Web helper (openclaw/channels/whatsapp/neonize_helper.py)
wired to a fake of neonize's client object, fed with neonize's own event
classes and protobuf messages: what it registers, what it writes for each
event (and that the gateway reads those lines back), and how it turns
commands into client calls. The real client would need WhatsApp's servers.
"""

from __future__ import annotations

import json
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from openclaw.channels.whatsapp import neonize_helper
from openclaw.channels.whatsapp.bridge import HELPER
from openclaw.channels.whatsapp.messages import WaMessage

ME_JID = ("15550001111", "s.whatsapp.net")


def library():
    try:
        return neonize_helper.load_library()
    except ImportError:
        raise SkipTest("neonize is not installed (pip install '.[whatsapp]'): the helper's wiring test needs its classes")


class FakeEventHub:
    """Stands for C{client.event} (neonize's Event): C{qr(f)} and C{(EventClass)(f)} registrations."""

    def __init__(self) -> None:
        self.handlers: dict[type, object] = {}
        self.qr_handler = None

    def qr(self, f):
        self.qr_handler = f

    def __call__(self, event_type):
        def register(f):
            self.handlers[event_type] = f

        return register


class FakeClient:
    """Stands for neonize's NewClient: records calls, answers like it."""

    def __init__(self, lib) -> None:
        self.lib = lib
        self.event = FakeEventHub()
        self.calls: list[tuple] = []
        self.fail: Exception | None = None

    def get_me(self):
        p = self.lib.proto
        return p.Device(JID=p.JID(User=ME_JID[0], Server=ME_JID[1], Device=3), LID=p.JID(User="777000111", Server="lid"), PushName="Claw Bot")

    def send_message(self, to, message):
        if self.fail is not None:
            raise self.fail
        self.calls.append(("send_message", to, message))
        return self.lib.proto.SendResponse(ID="3EB0AAAA")

    def build_reply_message(self, text, quoted):
        self.calls.append(("build_reply_message", text, quoted.Info.ID))
        return "reply-message"

    def build_image_message(self, payload, caption=None):
        self.calls.append(("build_image_message", payload, caption))
        return "image-message"

    def send_chat_presence(self, jid, state, media):
        self.calls.append(("send_chat_presence", jid, state, media))

    def mark_read(self, *ids, chat, sender, receipt):
        self.calls.append(("mark_read", ids, chat, sender, receipt))

    def logout(self):
        self.calls.append(("logout",))


class WiringTests(TestCase):
    def setUp(self):
        self.lib = library()
        from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

        self.e2e = e2e
        self.client = FakeClient(self.lib)
        self.lines: list[dict] = []
        self.finished: list[int] = []
        self.bridge = neonize_helper.Bridge(self.client, self.lib, lambda text: self.lines.append(json.loads(text)), self.finished.append)
        self.bridge.wire()

    def fire(self, event_type, event):
        self.client.event.handlers[event_type](self.client, event)

    def message_event(self, ident="ABC1", chat=("15551234567", "s.whatsapp.net"), sender=None, from_me=False, message=None):
        p = self.lib.proto
        chat_jid = p.JID(User=chat[0], Server=chat[1])
        sender_jid = p.JID(User=(sender or chat)[0], Server=(sender or chat)[1])
        info = p.MessageInfo(MessageSource=p.MessageSource(Chat=chat_jid, Sender=sender_jid, IsFromMe=from_me, IsGroup=chat[1] == "g.us"), ID=ident, Pushname="Alice", Timestamp=1_760_000_000)
        return self.lib.events.MessageEv(Info=info, Message=message or self.e2e.Message(conversation="hi"))

    def test_registers_every_event_it_handles(self):
        """wire() subscribes the QR callback and the link, message and failure events (before connect, as neonize needs)."""
        ev = self.lib.events
        self.assertIsNotNone(self.client.event.qr_handler)
        for event_type in (ev.ConnectedEv, ev.MessageEv, ev.LoggedOutEv, ev.ConnectFailureEv, ev.DisconnectedEv, ev.StreamReplacedEv, ev.TemporaryBanEv, ev.KeepAliveTimeoutEv, ev.KeepAliveRestoredEv, ev.PairStatusEv):
            self.assertIn(event_type, self.client.event.handlers)

    def test_qr_and_connected(self):
        """The QR bytes become a qr line; ConnectedEv a connected line with the account's number and privacy id (device suffix dropped)."""
        self.client.event.qr_handler(self.client, b"2@ref,noise,identity,adv")
        self.fire(self.lib.events.ConnectedEv, self.lib.events.ConnectedEv(status=True))
        self.assertEqual(self.lines, [{"type": "qr", "qr": "2@ref,noise,identity,adv"}, {"type": "connected", "jid": "15550001111@s.whatsapp.net", "lid": "777000111@lid", "name": "Claw Bot"}])

    def test_messages_as_the_gateway_reads_them(self):
        """A quoted text with mentions, and an image with a caption, become message lines the gateway's parser accepts field for field."""
        context = self.e2e.ContextInfo(stanzaID="Q1", participant="15550001111@s.whatsapp.net", quotedMessage=self.e2e.Message(conversation="earlier"), mentionedJID=["777000111@lid"])
        text = self.e2e.Message(extendedTextMessage=self.e2e.ExtendedTextMessage(text="@bot hi", contextInfo=context))
        self.fire(self.lib.events.MessageEv, self.message_event("T1", chat=("120363000", "g.us"), sender=("15551234567", "s.whatsapp.net"), message=text))
        image = self.e2e.Message(imageMessage=self.e2e.ImageMessage(caption="look"))
        self.fire(self.lib.events.MessageEv, self.message_event("I1", message=image))
        self.fire(self.lib.events.MessageEv, self.message_event("R1", message=self.e2e.Message(reactionMessage=self.e2e.ReactionMessage(text="👍"))))
        first, second = self.lines
        parsed = WaMessage.from_event(first)
        self.assertEqual((parsed.id, parsed.chat, parsed.sender, parsed.sender_phone, parsed.text, parsed.mentions, parsed.timestamp), ("T1", "120363000@g.us", "15551234567@s.whatsapp.net", "+15551234567", "@bot hi", ("777000111@lid",), 1_760_000_000))
        self.assertEqual((parsed.quoted.id, parsed.quoted.sender, parsed.quoted.text), ("Q1", "15550001111@s.whatsapp.net", "earlier"))
        self.assertEqual((second["text"], second["media"]), ("look", "image"))

    def test_commands(self):
        """send (quoting a remembered message), typing, read, logout, ping and unknown commands turn into the right client calls and replies; the echo of our own send is not reported."""
        self.fire(self.lib.events.MessageEv, self.message_event("IN1"))
        self.lines.clear()
        self.bridge.command(json.dumps({"type": "send", "id": "c1", "to": "15551234567@s.whatsapp.net", "text": "hello", "quote": "IN1"}))
        self.bridge.command(json.dumps({"type": "send", "id": "c2", "to": "15551234567@s.whatsapp.net", "text": "plain"}))
        self.bridge.command(json.dumps({"type": "typing", "id": "c3", "to": "15551234567@s.whatsapp.net"}))
        self.bridge.command(json.dumps({"type": "read", "id": "c4", "chat": "15551234567@s.whatsapp.net", "sender": "15551234567@s.whatsapp.net", "ids": ["IN1"]}))
        self.bridge.command(json.dumps({"type": "send_media", "id": "c5", "to": "15551234567@s.whatsapp.net", "data": "aGk=", "mimetype": "image/png", "caption": "pic"}))
        self.bridge.command(json.dumps({"type": "ping", "id": "c6"}))
        self.bridge.command(json.dumps({"type": "dance", "id": "c7"}))
        self.bridge.command(json.dumps({"type": "logout", "id": "c8"}))
        self.assertEqual([line.get("type") for line in self.lines], ["sent", "sent", "ok", "ok", "sent", "pong", "error", "ok"])
        self.assertEqual(self.lines[6]["code"], "unsupported")
        calls = self.client.calls
        self.assertEqual(calls[0], ("build_reply_message", "hello", "IN1"))
        self.assertEqual(calls[1][0], "send_message")
        to = calls[1][1]
        self.assertEqual((to.User, to.Server, calls[1][2]), ("15551234567", "s.whatsapp.net", "reply-message"))
        self.assertEqual(calls[2][2], "plain")
        self.assertEqual(calls[3][2], self.lib.ChatPresence.CHAT_PRESENCE_COMPOSING)
        self.assertEqual((calls[4][1], calls[4][4]), (("IN1",), self.lib.ReceiptType.READ))
        self.assertEqual(calls[5], ("build_image_message", b"hi", "pic"))
        self.assertEqual(calls[-1], ("logout",))
        self.fire(self.lib.events.MessageEv, self.message_event("3EB0AAAA", from_me=True))
        self.assertEqual(len(self.lines), 8)

    def test_failures(self):
        """A send the library refuses for the link is not_connected; logout, a client too old and a disconnect end the helper with the right line."""
        self.client.fail = RuntimeError("websocket not connected")
        self.bridge.command(json.dumps({"type": "send", "id": "c1", "to": "1@s.whatsapp.net", "text": "x"}))
        self.assertEqual((self.lines[0]["type"], self.lines[0]["code"], self.lines[0]["id"]), ("error", "not_connected", "c1"))
        reason = self.lib.proto.ConnectFailureReason.Value("LOGGED_OUT")
        self.fire(self.lib.events.LoggedOutEv, self.lib.events.LoggedOutEv(OnConnect=True, Reason=reason))
        self.assertEqual(self.lines[1], {"type": "logged_out", "reason": "LOGGED_OUT"})
        self.assertEqual(self.finished, [0])
        other = neonize_helper.Bridge(self.client, self.lib, lambda text: self.lines.append(json.loads(text)), self.finished.append)
        outdated = self.lib.proto.ConnectFailureReason.Value("CLIENT_OUTDATED")
        other.on_connect_failure(self.client, self.lib.events.ConnectFailureEv(Reason=outdated, Message="405"))
        self.assertEqual((self.lines[2]["type"], self.lines[2]["fatal"]), ("error", True))
        self.assertEqual(self.finished, [0, 1])


    def test_replaced_session(self):
        """Another client taking the session over ends the helper with a status line carrying WhatsApp's 440 (the gateway shows the fix for it)."""
        self.fire(self.lib.events.StreamReplacedEv, self.lib.events.StreamReplacedEv())
        self.assertEqual(self.lines, [{"type": "status", "state": "closed", "code": 440, "reason": "another client took over this session"}])
        self.assertEqual(self.finished, [0])


class MissingLibraryTests(TestCase):
    async def test_without_neonize_says_how_to_install(self):
        """Run where neonize cannot be imported, the helper writes one fatal error line naming the extra, and exits 2."""
        code = "import runpy, sys; sys.modules['neonize'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"
        out, err, status = await getProcessOutputAndValue(sys.executable, ["-c", code, str(HELPER)], env={"PATH": "/usr/bin:/bin"}, reactor=reactor)
        self.assertEqual(status, 2, err)
        (line,) = out.decode().splitlines()
        event = json.loads(line)
        self.assertEqual((event["type"], event["fatal"]), ("error", True))
        self.assertIn("openclaw-twisted[whatsapp]", event["message"])
