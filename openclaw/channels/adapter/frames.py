# -*- test-case-name: tests.test_channel_adapter -*-
"""
What an out-of-process channel adapter and the gateway say to each other,
without IO: the params of the adapter's methods (closed shapes), an inbound
message read into an L{InboundMessage}, a send written as the payload of a
C{channel.send} event, and the adapter's answer to it read into a
L{Receipt} or one of the errors that steer the framework.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

from openclaw.channels.interfaces import (
    CHAT_TYPES,
    THREAD,
    TOPIC,
    AuthFailed,
    ChannelError,
    InboundMessage,
    Moved,
    Outbound,
    Rejected,
    ReplyRef,
    RetryAfter,
    Target,
    Unreachable,
    Unsupported,
)
from openclaw.protocol.errors import InvalidInput
from openclaw.shape import Any_, Bool, Int, List, Obj, Str

MAX_ID = 256
MAX_TEXT = 100_000
MAX_NAME = 256
MAX_CURSOR = 4096  # characters, as JSON
MAX_SELF_IDS = 50
MAX_MEDIA = 20

_ID = Str(nonempty=True, max_length=MAX_ID)
_NAME = Str(max_length=MAX_NAME)

REGISTER = Obj(
    {"channel": _ID, "accountId": _ID, "maxText": Int(64, MAX_TEXT), "typing": Bool(), "selfIds": List(_ID)},
    required=("channel",),
    closed=True,
)
_REPLY_TO = Obj({"messageId": _ID, "senderName": _NAME, "text": Str(max_length=MAX_TEXT), "fromMe": Bool()}, required=("messageId",), closed=True)
INBOUND = Obj(
    {
        "chatId": _ID,
        "chatType": Str(CHAT_TYPES),
        "senderId": _ID,
        "messageId": _ID,
        "text": Str(max_length=MAX_TEXT),
        "senderName": _NAME,
        "senderUsername": _NAME,
        "chatTitle": _NAME,
        "threadId": _ID,
        "threadKind": Str((TOPIC, THREAD)),
        "mentionsMe": Bool(),
        "replyTo": _REPLY_TO,
        "media": List(Str(nonempty=True, max_length=64)),
        "ts": Int(0),
        "cursor": Any_(),
    },
    required=("chatId", "chatType", "senderId", "messageId"),
    closed=True,
)
# How a send failed, as the adapter says: the framework retries, waits, re-targets or drops by kind.
ERROR_KINDS = ("transient", "retry", "moved", "unreachable", "rejected", "unsupported", "auth")
_SEND_ERROR = Obj(
    {"kind": Str(ERROR_KINDS), "message": Str(max_length=1000), "retryAfterMs": Int(0, 3_600_000), "chatId": _ID},
    required=("kind",),
    closed=True,
)
SENT = Obj({"id": _ID, "messageId": _ID, "chatId": _ID, "error": _SEND_ERROR}, required=("id",), closed=True)


def cursor_of(params: Mapping[str, Any]) -> Any:
    """The adapter's opaque resume position (any JSON value, small), or None."""
    cursor = params.get("cursor")
    if cursor is not None and len(json.dumps(cursor)) > MAX_CURSOR:
        raise InvalidInput(f"cursor is longer than {MAX_CURSOR} characters as JSON")
    return cursor


def self_ids(params: Mapping[str, Any]) -> frozenset[str]:
    ids = params.get("selfIds") or []
    if len(ids) > MAX_SELF_IDS:
        raise InvalidInput(f"selfIds: at most {MAX_SELF_IDS} ids")
    return frozenset(ids)


def inbound_message(channel: str, account_id: str, params: Mapping[str, Any]) -> InboundMessage:
    """A C{channel.inbound}'s params (checked against L{INBOUND}) as the framework's message."""
    media = params.get("media") or []
    if len(media) > MAX_MEDIA:
        raise InvalidInput(f"media: at most {MAX_MEDIA} entries")
    reply = params.get("replyTo")
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=params["chatId"],
        chat_type=params["chatType"],
        sender_id=params["senderId"],
        message_id=params["messageId"],
        text=params.get("text") or "",
        sender_name=params.get("senderName") or None,
        sender_username=params.get("senderUsername") or None,
        chat_title=params.get("chatTitle") or None,
        thread_id=params.get("threadId"),
        thread_kind=params.get("threadKind") or (THREAD if params.get("threadId") else None),
        mentions_me=bool(params.get("mentionsMe")),
        reply_to=ReplyRef(reply["messageId"], reply.get("senderName") or None, reply.get("text"), bool(reply.get("fromMe"))) if reply else None,
        media=tuple(media),
        ts_ms=int(params.get("ts") or 0),
    )


def send_event(send_id: str, target: Target, message: Outbound) -> dict[str, Any]:
    """The payload of a C{channel.send} event (absent fields left out)."""
    payload: dict[str, Any] = {"id": send_id, "chatId": target.chat_id, "text": message.text}
    if target.thread_id:
        payload["threadId"] = target.thread_id
    if target.reply_to:
        payload["replyTo"] = target.reply_to
    if message.silent:
        payload["silent"] = True
    if message.key:
        payload["key"] = message.key  # the same for every attempt at one journaled chunk: adapters dedupe on it
    media = message.media
    if media is not None:
        item: dict[str, Any] = {"asVoice": media.as_voice} if media.as_voice else {}
        if media.url:
            item["url"] = media.url
        if media.data is not None:
            item["data"] = base64.b64encode(media.data).decode("ascii")
        if media.filename:
            item["filename"] = media.filename
        if media.content_type:
            item["contentType"] = media.content_type
        payload["media"] = item
    return payload


def typing_event(target: Target) -> dict[str, Any]:
    payload = {"chatId": target.chat_id}
    if target.thread_id:
        payload["threadId"] = target.thread_id
    return payload


def send_error(error: Mapping[str, Any]) -> ChannelError:
    """The adapter's C{channel.sent} error as the framework's: what it does next depends on the kind."""
    kind = error["kind"]
    text = error.get("message") or f"the adapter could not send ({kind})"
    if kind == "retry":
        return RetryAfter((error.get("retryAfterMs") or 1000) / 1000, text)
    if kind == "moved" and error.get("chatId"):
        return Moved(error["chatId"], text)
    if kind == "unreachable":
        return Unreachable(text)
    if kind == "rejected":
        return Rejected(text)
    if kind == "unsupported":
        return Unsupported(text)
    if kind == "auth":
        return AuthFailed(text)
    return ChannelError(text)  # transient: retried
