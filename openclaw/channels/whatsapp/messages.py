# -*- test-case-name: tests.test_whatsapp -*-
"""
WhatsApp ids and messages, as both transports describe them (sans-IO).

Ids: a person is a JID C{<digits>@s.whatsapp.net} (older C{@c.us}, with an
optional C{:device} or C{.agent} suffix), or a privacy id C{<n>@lid}; a group
is C{<id>@g.us}. Like upstream, direct chats and senders are shown and
matched as E.164 (C{+15551234567}) when the number is known, groups by their
JID. C{status@broadcast}, broadcast lists and newsletters are never answered.

L{WaMessage} is what a transport reports (the bridge's C{message} event, a
Cloud API delivery); L{to_inbound} turns it into the framework's
L{InboundMessage}, applying the rules that only WhatsApp has: own messages
(C{fromMe}) are dropped unless they are the owner writing in the self chat
under self-chat mode, and messages this gateway sent are never taken as
input.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import attrs

from openclaw.channels.interfaces import DM, GROUP, InboundMessage, ReplyRef, Target

PERSON_SERVERS = ("s.whatsapp.net", "c.us")
GROUP_SERVER = "g.us"
LID_SERVER = "lid"
MAX_TEXT_IN = 65_536  # longer inbound text is cut (WhatsApp's own limit is about this)
_DIGITS = re.compile(r"^\+?\d{5,20}$")
_JID = re.compile(r"^([0-9A-Za-z.:_-]{1,64})@(s\.whatsapp\.net|c\.us|g\.us|lid)$")
_SEPARATORS = re.compile(r"[\s().-]")


def split_jid(jid: str) -> tuple[str, str] | None:
    """C{(user, server)} without device/agent suffixes; None for anything else."""
    m = _JID.match(jid.strip().lower()) if isinstance(jid, str) else None
    if m is None:
        return None
    user, server = m.group(1), m.group(2)
    if server != GROUP_SERVER:
        user = user.split(":", 1)[0].split(".", 1)[0]
    return user, server


def ignored_chat(jid: str) -> bool:
    """Status updates, broadcast lists and newsletters: never answered."""
    j = (jid or "").strip().lower()
    return j.endswith("@broadcast") or j.endswith("@newsletter") or j == "status@broadcast"


def phone_of(jid: str) -> str | None:
    """E.164 for a person JID (C{+15551234567}), None for groups and privacy ids."""
    parts = split_jid(jid)
    if parts is None or parts[1] not in PERSON_SERVERS or not parts[0].isdigit():
        return None
    return "+" + parts[0]


def canonical(jid: str) -> str:
    """How a chat or sender is named to the framework: E.164 for numbers, else the bare JID."""
    phone = phone_of(jid)
    if phone is not None:
        return phone
    parts = split_jid(jid)
    return f"{parts[0]}@{parts[1]}" if parts is not None else jid.strip()


def is_group(chat: str) -> bool:
    return chat.strip().lower().endswith("@" + GROUP_SERVER)


def parse_target(to: str) -> str:
    """
    A user-written destination as the canonical chat id: C{+15551234567}
    (C{15551234567}, C{whatsapp:+1 555 123 4567} and person JIDs too), a
    group JID C{…@g.us}, or a privacy id C{…@lid}. ValueError otherwise.
    """
    raw = to.strip()
    if raw.lower().startswith("whatsapp:"):
        raw = raw[len("whatsapp:") :].strip()
    if "@" in raw:
        if ignored_chat(raw):
            raise ValueError(f"{to!r} is a status/broadcast chat; those are not sent to")
        if split_jid(raw) is None:
            raise ValueError(f"{to!r} is not a WhatsApp JID")
        return canonical(raw)
    compact = _SEPARATORS.sub("", raw)
    if not _DIGITS.match(compact):
        raise ValueError(f"{to!r} is not a phone number (E.164, e.g. +15551234567) or a WhatsApp JID")
    return "+" + compact.lstrip("+")


def to_jid(chat_id: str) -> str:
    """The JID a transport sends to for a canonical chat id."""
    if chat_id.startswith("+") and chat_id[1:].isdigit():
        return f"{chat_id[1:]}@s.whatsapp.net"
    return chat_id


@attrs.frozen
class Me:
    """The linked account: its number and ids (for mentions and own messages)."""

    jid: str = ""
    lid: str = ""
    name: str = ""

    @property
    def phone(self) -> str | None:
        return phone_of(self.jid)

    def ids(self) -> frozenset[str]:
        """Every canonical name this account goes by."""
        return frozenset(canonical(j) for j in (self.jid, self.lid) if j)

    def is_me(self, jid: str | None) -> bool:
        return bool(jid) and canonical(str(jid)) in self.ids()

    def to_json(self) -> dict[str, str]:
        return {"jid": self.jid, "lid": self.lid, "name": self.name}

    @classmethod
    def from_json(cls, value: Any) -> Me:
        value = value if isinstance(value, dict) else {}
        return cls(*(str(value.get(k) or "") for k in ("jid", "lid", "name")))


@attrs.frozen
class Quoted:
    id: str
    sender: str = ""
    text: str = ""


@attrs.frozen
class WaMessage:
    """One inbound WhatsApp message as a transport reports it."""

    id: str
    chat: str
    sender: str = ""
    sender_phone: str | None = None  # E.164 when the transport knows the number behind a privacy id
    from_me: bool = False
    push_name: str = ""
    text: str = ""
    timestamp: int = 0  # seconds
    chat_name: str = ""
    mentions: tuple[str, ...] = ()
    quoted: Quoted | None = None
    media: str | None = None  # image | video | audio | voice | document | sticker | location | contact | ...

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WaMessage | None:
        """A bridge C{message} event; None when it lacks an id or a chat."""
        msg_id, chat = event.get("id"), event.get("chat")
        if not isinstance(msg_id, str) or not msg_id or not isinstance(chat, str) or not chat:
            return None

        def text(key: str, limit: int = 500) -> str:
            value = event.get(key)
            return value[:limit] if isinstance(value, str) else ""

        quoted = event.get("quoted")
        ref = None
        if isinstance(quoted, dict) and isinstance(quoted.get("id"), str) and quoted["id"]:
            ref = Quoted(quoted["id"][:128], str(quoted.get("sender") or "")[:128], str(quoted.get("text") or "")[:500])
        mentions = event.get("mentions")
        stamp = event.get("timestamp")
        seconds = int(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else 0
        if seconds > 10**11:
            seconds //= 1000  # milliseconds
        phone = event.get("senderPhone")
        return cls(
            id=msg_id[:128],
            chat=chat[:128],
            sender=text("sender", 128),
            sender_phone=parse_target(phone) if isinstance(phone, str) and _DIGITS.match(_SEPARATORS.sub("", phone)) else None,
            from_me=event.get("fromMe") is True,
            push_name=text("pushName", 128),
            text=text("text", MAX_TEXT_IN),
            timestamp=max(0, seconds),
            chat_name=text("chatName", 200),
            mentions=tuple(str(m)[:128] for m in mentions[:64] if isinstance(m, str)) if isinstance(mentions, list) else (),
            quoted=ref,
            media=text("media", 32) or None,
        )


def self_chat_enabled(config: Mapping[str, Any], me: Me) -> bool:
    """Self-chat mode: C{selfChatMode: true}, or the linked number listed in C{allowFrom}."""
    if config.get("selfChatMode") is True:
        return True
    phone = me.phone
    allow = config.get("allowFrom")
    return bool(phone) and isinstance(allow, list) and any(str(a).strip().removeprefix("whatsapp:") == phone for a in allow)


def to_inbound(
    message: WaMessage,
    me: Me,
    account_id: str,
    self_chat: bool = False,
    sent_by_us: Iterable[str] = (),
) -> InboundMessage | None:
    """The framework's message, or None when it is not for the agent (and why is not worth a log line)."""
    if ignored_chat(message.chat) or split_jid(message.chat) is None:
        return None
    group = is_group(message.chat)
    chat_id = canonical(message.chat)
    trusted = False
    if message.from_me:
        if group or message.id in set(sent_by_us) or not self_chat or not me.is_me(message.chat):
            return None  # what the owner (from the phone) or this gateway wrote to others
        sender_id = me.phone or chat_id
        trusted = True
    elif group:
        if not message.sender:
            return None
        sender_id = message.sender_phone or canonical(message.sender)
    else:
        sender_id = message.sender_phone or chat_id
        if message.sender_phone and chat_id.endswith("@" + LID_SERVER):
            chat_id = message.sender_phone  # answer where the number is, as upstream keys DMs by E.164
    mentions_me = group and (any(me.is_me(m) for m in message.mentions) or (message.quoted is not None and me.is_me(message.quoted.sender)))
    reply = None
    if message.quoted is not None:
        q = message.quoted
        reply = ReplyRef(q.id, canonical(q.sender) if q.sender else None, q.text or None, me.is_me(q.sender))
    if not message.text.strip() and message.media is None:
        return None  # reactions, protocol messages, edits without text
    return InboundMessage(
        channel="whatsapp",
        account_id=account_id,
        chat_id=chat_id,
        chat_type=GROUP if group else DM,
        sender_id=sender_id,
        message_id=message.id,
        text=message.text,
        sender_name=message.push_name or None,
        chat_title=(message.chat_name or None) if group else None,
        mentions_me=mentions_me,
        reply_to=reply,
        media=(message.media,) if message.media else (),
        ts_ms=message.timestamp * 1000,
        trusted=trusted,
    )


def target_of(to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
    """A L{Target}: WhatsApp has no threads; C{reply_to} quotes a message id."""
    if thread_id:
        raise ValueError("WhatsApp chats have no threads")
    if reply_to is not None and not re.match(r"^[A-Za-z0-9._:-]{1,128}$", str(reply_to)):
        raise ValueError(f"reply-to {reply_to!r} is not a WhatsApp message id")
    return Target(parse_target(to), None, str(reply_to) if reply_to else None)
