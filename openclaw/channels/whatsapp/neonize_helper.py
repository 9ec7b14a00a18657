#!/usr/bin/env python3
# -*- test-case-name: tests.test_whatsapp_neonize -*-
"""
OpenClaw's WhatsApp Web helper: neonize (Python over whatsmeow) in its own
process, speaking the gateway's JSON-lines protocol on stdio (see
C{openclaw/channels/whatsapp/bridge.py} for the protocol).

The gateway runs it as C{python neonize_helper.py}; it needs only the
standard library and neonize (C{pip install 'openclaw-twisted[whatsapp]'}),
so it may also run under another interpreter named in
C{channels.whatsapp.bridgeCommand}. The session is C{session.db} in
C{$OPENCLAW_WHATSAPP_AUTH_DIR}.

whatsmeow calls back on its own threads and C{connect()} blocks, so: the
main thread connects, a reader thread takes commands from stdin, and one
lock keeps stdout lines whole. When the link closes for good (logged out,
disconnected, replaced) the helper says so and exits; the gateway owns the
reconnect loop.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import types
from collections import OrderedDict
from typing import Any, Callable

MAX_REMEMBERED = 500  # inbound messages kept for quoting, and ids we sent
RELINK = ("LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT")


def load_library() -> types.SimpleNamespace:
    """What the helper uses of neonize (imported here, never at module import)."""
    from neonize import events
    from neonize.client import NewClient
    from neonize.proto import Neonize_pb2
    from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

    return types.SimpleNamespace(events=events, NewClient=NewClient, proto=Neonize_pb2, ChatPresence=ChatPresence, ChatPresenceMedia=ChatPresenceMedia, ReceiptType=ReceiptType)


def jid_text(jid: Any) -> str:
    """A JID proto as C{user@server} (device and agent dropped)."""
    if jid is None or not getattr(jid, "Server", ""):
        return ""
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def unwrap(message: Any) -> Any:
    """The message inside ephemeral / view-once / document-with-caption wrappers."""
    for _ in range(4):
        for wrapper in ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "documentWithCaptionMessage"):
            if message.HasField(wrapper):
                message = getattr(message, wrapper).message
                break
        else:
            return message
    return message


def content(message: Any) -> tuple[str, str | None, Any]:
    """C{(text, media kind, contextInfo)}; C{("", None, None)} for what is not a chat message."""
    m = unwrap(message)
    if m.conversation:
        return m.conversation, None, None
    if m.HasField("extendedTextMessage"):
        return m.extendedTextMessage.text, None, m.extendedTextMessage.contextInfo
    for field, kind in (("imageMessage", "image"), ("videoMessage", "video"), ("documentMessage", "document")):
        if m.HasField(field):
            part = getattr(m, field)
            return part.caption, kind, part.contextInfo
    if m.HasField("audioMessage"):
        return "", "voice" if m.audioMessage.PTT else "audio", m.audioMessage.contextInfo
    for field, kind in (("stickerMessage", "sticker"), ("locationMessage", "location"), ("contactMessage", "contact")):
        if m.HasField(field):
            return "", kind, getattr(m, field).contextInfo
    if m.HasField("pollCreationMessage"):
        return m.pollCreationMessage.name, "poll", None
    return "", None, None


class Bridge:
    """One neonize client wired to the JSON-lines protocol."""

    def __init__(self, client: Any, lib: types.SimpleNamespace, write: Callable[[str], None], finish: Callable[[int], None]) -> None:
        self.client = client
        self.lib = lib
        self._write = write
        self._finish = finish
        self._lock = threading.Lock()
        self.recent: OrderedDict[str, Any] = OrderedDict()  # id → MessageEv, for quoting
        self.sent: OrderedDict[str, None] = OrderedDict()
        self.closing = False

    # -- output

    def emit(self, value: dict[str, Any]) -> None:
        line = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._write(line + "\n")

    def close(self, exit_code: int = 0, **event: Any) -> None:
        """Say why the link ended (once; C{event} may carry WhatsApp's C{code}), then let the process end with C{exit_code}."""
        if self.closing:
            return
        self.closing = True
        if event:
            self.emit(event)
        self._finish(exit_code)

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > MAX_REMEMBERED:
            table.popitem(last=False)

    # -- library events

    def wire(self) -> None:
        ev = self.lib.events
        on = self.client.event
        on.qr(self.on_qr)
        on(ev.ConnectedEv)(self.on_connected)
        on(ev.MessageEv)(self.on_message)
        on(ev.LoggedOutEv)(self.on_logged_out)
        on(ev.ConnectFailureEv)(self.on_connect_failure)
        on(ev.DisconnectedEv)(self.on_disconnected)
        on(ev.StreamReplacedEv)(self.on_replaced)
        on(ev.TemporaryBanEv)(self.on_temporary_ban)
        on(ev.ClientOutdatedEv)(self.on_outdated)
        on(ev.KeepAliveTimeoutEv)(self.on_keepalive_timeout)
        on(ev.KeepAliveRestoredEv)(self.on_keepalive_restored)
        on(ev.PairStatusEv)(self.on_pair_status)

    def on_qr(self, client: Any, data: bytes) -> None:
        code = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        self.emit({"type": "qr", "qr": code})

    def on_connected(self, client: Any, event: Any) -> None:
        me = client.get_me()
        self.emit({"type": "connected", "jid": jid_text(me.JID), "lid": jid_text(me.LID), "name": me.PushName})

    def on_message(self, client: Any, event: Any) -> None:
        info = event.Info
        source = info.MessageSource
        if info.ID in self.sent:
            return  # our own send, echoed
        text, media, context = content(event.Message)
        if not text and media is None:
            return
        self._remember(self.recent, info.ID, event)
        out: dict[str, Any] = {
            "type": "message",
            "id": info.ID,
            "chat": jid_text(source.Chat),
            "sender": jid_text(source.Sender),
            "fromMe": bool(source.IsFromMe),
            "pushName": info.Pushname,
            "text": text,
            "timestamp": int(info.Timestamp),
        }
        alt = jid_text(source.SenderAlt) if source.HasField("SenderAlt") else ""
        for candidate in (out["sender"], alt):
            if candidate.endswith("@s.whatsapp.net"):
                out["senderPhone"] = "+" + candidate.split("@", 1)[0]
                break
        if media:
            out["media"] = media
        if context is not None:
            if context.mentionedJID:
                out["mentions"] = list(context.mentionedJID)
            if context.stanzaID:
                quoted_text = content(context.quotedMessage)[0] if context.HasField("quotedMessage") else ""
                out["quoted"] = {"id": context.stanzaID, "sender": context.participant, "text": quoted_text[:500]}
        self.emit(out)

    def on_logged_out(self, client: Any, event: Any) -> None:
        self.close(0, type="logged_out", reason=self._reason(event.Reason) or "logged out")

    def on_connect_failure(self, client: Any, event: Any) -> None:
        reason = self._reason(event.Reason)
        if reason in RELINK:
            self.close(0, type="logged_out", reason=reason)
        elif reason == "CLIENT_OUTDATED":
            self.close(1, type="error", fatal=True, message="WhatsApp refuses this client version: upgrade neonize (pip install -U neonize)")
        else:
            self.close(0, type="status", state="closed", reason=f"connect failure {reason}: {event.Message}".strip(": "))

    def on_disconnected(self, client: Any, event: Any) -> None:
        self.close(0, type="status", state="closed", reason="disconnected")

    def on_replaced(self, client: Any, event: Any) -> None:
        self.close(0, type="status", state="closed", code=440, reason="another client took over this session")

    def on_temporary_ban(self, client: Any, event: Any) -> None:
        self.close(0, type="status", state="closed", reason=f"temporarily banned by WhatsApp (code {int(event.Code)}, {int(event.Expire)} s)")

    def on_outdated(self, client: Any, event: Any) -> None:
        self.close(1, type="error", fatal=True, message="WhatsApp refuses this client version: upgrade neonize (pip install -U neonize)")

    def on_keepalive_timeout(self, client: Any, event: Any) -> None:
        self.emit({"type": "status", "state": "degraded", "reason": f"keepalive timeouts: {int(event.ErrorCount)}"})

    def on_keepalive_restored(self, client: Any, event: Any) -> None:
        self.emit({"type": "status", "state": "connected"})

    def on_pair_status(self, client: Any, event: Any) -> None:
        if getattr(event, "Error", ""):
            self.emit({"type": "error", "message": f"pairing failed: {event.Error}"})

    def _reason(self, value: Any) -> str:
        try:
            return str(self.lib.proto.ConnectFailureReason.Name(value))
        except Exception:
            return str(value)

    # -- commands

    def jid(self, text: str) -> Any:
        user, _, server = str(text).partition("@")
        return self.lib.proto.JID(User=user.lstrip("+"), Server=server or "s.whatsapp.net", RawAgent=0, Device=0, Integrator=0, IsEmpty=False)

    def command(self, line: str) -> None:
        try:
            request = json.loads(line)
        except ValueError:
            return
        if not isinstance(request, dict):
            return
        ident, kind = request.get("id"), request.get("type")
        try:
            reply = self._run(kind, request)
        except Exception as e:  # the library's errors carry WhatsApp's reason
            text = str(e) or type(e).__name__
            code = "not_connected" if "not connected" in text.lower() or "websocket" in text.lower() else None
            self.emit({"type": "error", "id": ident, "message": text[:300], **({"code": code} if code else {})})
            return
        self.emit({"id": ident, **reply})

    def _run(self, kind: Any, request: dict[str, Any]) -> dict[str, Any]:
        client, lib = self.client, self.lib
        if kind == "ping":
            return {"type": "pong"}
        if kind == "send":
            to = self.jid(request["to"])
            quoted = self.recent.get(str(request.get("quote") or ""))
            if quoted is not None:
                response = client.send_message(to, client.build_reply_message(request["text"], quoted))
            else:
                response = client.send_message(to, request["text"])
            self._remember(self.sent, response.ID, None)
            return {"type": "sent", "messageId": response.ID}
        if kind == "send_media":
            to = self.jid(request["to"])
            payload: Any = base64.b64decode(request["data"]) if request.get("data") else request.get("url")
            if not payload:
                return {"type": "error", "code": "invalid", "message": "no data or url"}
            mime = str(request.get("mimetype") or "")
            caption = request.get("caption") or None
            if mime.startswith("image/"):
                message = client.build_image_message(payload, caption=caption)
            elif mime.startswith("video/"):
                message = client.build_video_message(payload, caption=caption)
            elif mime.startswith("audio/"):
                message = client.build_audio_message(payload, ptt=bool(request.get("ptt")))
            else:
                message = client.build_document_message(payload, caption=caption, filename=request.get("filename") or "file", mimetype=mime or None)
            response = client.send_message(to, message)
            self._remember(self.sent, response.ID, None)
            return {"type": "sent", "messageId": response.ID}
        if kind == "typing":
            client.send_chat_presence(self.jid(request["to"]), lib.ChatPresence.CHAT_PRESENCE_COMPOSING, lib.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
            return {"type": "ok"}
        if kind == "read":
            ids = [str(i) for i in request.get("ids") or []]
            if ids:
                client.mark_read(*ids, chat=self.jid(request["chat"]), sender=self.jid(request.get("sender") or request["chat"]), receipt=lib.ReceiptType.READ)
            return {"type": "ok"}
        if kind == "logout":
            client.logout()
            return {"type": "ok"}
        return {"type": "error", "code": "unsupported", "message": f"unknown command {str(kind)[:40]!r}"}


def _read_commands(bridge: Bridge, stdin: Any) -> None:
    for line in stdin:
        if line.strip():
            bridge.command(line)
    bridge.close(0)  # the gateway closed our stdin: stop


def main() -> int:
    auth = os.environ.get("OPENCLAW_WHATSAPP_AUTH_DIR") or os.getcwd()
    os.umask(0o077)
    out = sys.stdout

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    try:
        lib = load_library()
    except ImportError as e:
        write(json.dumps({"type": "error", "fatal": True, "message": f"neonize is not installed ({e}): pip install 'openclaw-twisted[whatsapp]'"}) + "\n")
        return 2
    os.makedirs(auth, mode=0o700, exist_ok=True)
    client = lib.NewClient(os.path.join(auth, "session.db"))
    done = threading.Event()
    codes: list[int] = []

    def finish(code: int) -> None:
        codes.append(code)
        done.set()

        def stop() -> None:
            try:
                client.disconnect()
            except Exception:
                pass
            sys.stdout.flush()
            os._exit(codes[0])

        threading.Thread(target=stop, daemon=True).start()

    bridge = Bridge(client, lib, write, finish)
    bridge.wire()  # before connect: neonize subscribes only to events registered by then
    threading.Thread(target=_read_commands, args=(bridge, sys.stdin), daemon=True).start()
    write(json.dumps({"type": "status", "state": "connecting"}) + "\n")
    try:
        client.connect()
    except Exception as e:
        bridge.close(1, type="status", state="closed", reason=f"connect failed: {e}"[:300])
    if not done.is_set():
        bridge.close(0, type="status", state="closed", reason="the connection ended")
    done.wait(10)
    os._exit(codes[0] if codes else 0)


if __name__ == "__main__":
    sys.exit(main())
