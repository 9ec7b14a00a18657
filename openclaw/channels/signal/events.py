# -*- test-case-name: tests.test_signal -*-
"""
signal-cli C{receive} events as L{InboundMessage}s (sans-IO).

An event is C{{"envelope": {...}, "account": "+NUM"}}; the envelope has the
sender (C{sourceNumber}, C{sourceUuid}, C{sourceName}), C{timestamp}, and
one of C{dataMessage} (a message: C{message}, C{groupInfo}, C{mentions},
C{quote}, C{attachments}), C{syncMessage} (what this account sent from
another device), C{typingMessage}, C{receiptMessage}, C{storyMessage}.
Only data messages with text or attachments are messages to answer.

Senders are their number, or C{uuid:<id>} when they hide it (as upstream
stores them in C{allowFrom}); a DM's chat is its sender, a group's chat its
C{groupId}. A message's id is its Signal timestamp (what quotes and
reactions refer to). Mentions of this account, or a quote of one of its
messages, count as mentioning it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from openclaw.channels.interfaces import DM, GROUP, InboundMessage, ReplyRef

OBJECT_REPLACEMENT = "\ufffc"  # where a mention sits in the text
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def sender_of(envelope: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(number, uuid) of an envelope's sender."""
    number = _str(envelope.get("sourceNumber"))
    uuid = _str(envelope.get("sourceUuid"))
    source = _str(envelope.get("source"))
    if source and not number and source.startswith("+"):
        number = source
    if source and not uuid and UUID.match(source):
        uuid = source
    return number, uuid


def is_me(number: str | None, uuid: str | None, account: str | None) -> bool:
    if not account:
        return False
    return account == number or (uuid is not None and account.lower() == uuid.lower())


def _text(data: Mapping[str, Any], account: str | None) -> tuple[str, bool]:
    """The text with mentions written out as @name, and whether one of them is this account."""
    text = data["message"] if isinstance(data.get("message"), str) else ""
    mentions = [m for m in data.get("mentions") or [] if isinstance(m, dict) and _int(m.get("start")) is not None]
    me = False
    for mention in sorted(mentions, key=lambda m: m["start"], reverse=True):
        start, length = mention["start"], _int(mention.get("length")) or 1
        number, uuid = _str(mention.get("number")), _str(mention.get("uuid"))
        if is_me(number, uuid, account):
            me = True
        name = _str(mention.get("name")) or number or uuid or "someone"
        if 0 <= start <= len(text) and text[start : start + length] == OBJECT_REPLACEMENT * length:
            text = f"{text[:start]}@{name}{text[start + length:]}"
    return text, me


def _media(attachments: Any) -> tuple[str, ...]:
    kinds = []
    for item in attachments if isinstance(attachments, list) else []:
        if not isinstance(item, dict):
            continue
        ctype = str(item.get("contentType") or "").lower()
        if item.get("voiceNote"):
            kinds.append("voice")
        elif ctype.startswith("image/"):
            kinds.append("image")
        elif ctype.startswith("video/"):
            kinds.append("video")
        elif ctype.startswith("audio/"):
            kinds.append("audio")
        else:
            kinds.append("file")
    return tuple(kinds[:10])


def normalize(event: Any, account: str | None, channel: str = "signal", account_id: str = "default") -> InboundMessage | None:
    """The message in a C{receive} event's data, or None when there is nothing to answer."""
    if not isinstance(event, dict):
        return None
    envelope = event.get("envelope")
    if not isinstance(envelope, dict):
        return None
    data = envelope.get("dataMessage")
    if not isinstance(data, dict) or data.get("reaction") or data.get("remoteDelete"):
        return None
    number, uuid = sender_of(envelope)
    if number is None and uuid is None:
        return None
    if is_me(number, uuid, account):
        return None  # loop protection: this account's own messages
    sender = number or f"uuid:{uuid}"
    text, mentioned = _text(data, account)
    media = _media(data.get("attachments"))
    if not text.strip() and not media:
        return None
    stamp = _int(data.get("timestamp")) or _int(envelope.get("timestamp"))
    if stamp is None:
        return None
    group = data["groupInfo"] if isinstance(data.get("groupInfo"), dict) else None
    group_id = _str(group.get("groupId")) if group else None
    quote = data["quote"] if isinstance(data.get("quote"), dict) else None
    reply = None
    if quote is not None and _int(quote.get("id")) is not None:
        q_number = _str(quote.get("authorNumber")) or (_str(quote.get("author")) if str(quote.get("author") or "").startswith("+") else None)
        q_uuid = _str(quote.get("authorUuid"))
        from_me = is_me(q_number, q_uuid, account)
        mentioned = mentioned or from_me
        q_text = quote["text"] if isinstance(quote.get("text"), str) else None
        reply = ReplyRef(str(quote["id"]), None if from_me else (q_number or q_uuid), q_text[:500] if q_text else None, from_me)
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=group_id or sender,
        chat_type=GROUP if group_id else DM,
        sender_id=sender,
        message_id=str(stamp),
        text=text.strip(),
        sender_name=_str(envelope.get("sourceName")),
        chat_title=_str(group.get("groupName")) if group else None,
        mentions_me=bool(group_id) and mentioned,
        reply_to=reply,
        media=media,
        ts_ms=stamp,
    )
