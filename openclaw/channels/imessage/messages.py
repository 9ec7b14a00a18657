# -*- test-case-name: tests.test_imessage_units -*-
"""
imsg C{Message} objects as L{InboundMessage}s, and which of them to answer
(sans-IO).

A message is a row of C{chat.db}: C{id} (the rowid, rising), C{chat_id},
C{guid}, C{sender}, C{is_from_me}, C{text}, C{created_at} (ISO 8601),
C{attachments}, C{chat_name}, C{is_group}, C{reply_to_guid}.

The cursor persisted with each message is C{{"rowid", "ts"}}: the last row
seen and the send time of the newest message answered. After a restart
the watch resumes after C{rowid} (C{since_rowid}), so messages that came
while the gateway was down are answered. Apple sometimes flushes a
"backlog bomb" of old messages into C{chat.db} after a Push recovery: new
rows with old send times. Those are suppressed: a message sent more than
C{SKEW_MS} before the newest one already answered, or more than
C{MAX_AGE_MS} ago, is skipped (logged, the cursor moves past it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import attrs

from openclaw.channels.interfaces import DM, GROUP, InboundMessage, ReplyRef

SKEW_MS = 15 * 60 * 1000  # clocks and delivery order differ this much without being a backlog
MAX_AGE_MS = 2 * 60 * 60 * 1000  # older than this is never answered
OBJECT_REPLACEMENT = "\ufffc"  # where an attachment sits in the text

ACCEPT = "accept"
SEEN = "seen"
OWN = "own"
REACTION = "reaction"
EMPTY = "empty"
BACKLOG = "backlog"
STALE = "stale"
MALFORMED = "malformed"


@attrs.frozen
class Cursor:
    rowid: int = 0
    ts: int = 0

    def to_json(self) -> dict[str, int]:
        return {"rowid": self.rowid, "ts": self.ts}

    @classmethod
    def from_json(cls, value: Any) -> Cursor | None:
        if not isinstance(value, dict):
            return None
        rowid, ts = value.get("rowid"), value.get("ts", 0)
        if not isinstance(rowid, int) or not isinstance(ts, int) or not _int(rowid) or not _int(ts):
            return None
        return cls(max(0, rowid), max(0, ts))


@attrs.frozen
class Verdict:
    action: str  # ACCEPT or why it is skipped
    cursor: Cursor | None  # the cursor after this message (None: unchanged)
    ts_ms: int = 0


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_time(value: Any) -> int:
    """Milliseconds since the epoch of an ISO 8601 time; 0 when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return 0
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return 0
    if when.tzinfo is None:
        return 0
    return int(when.timestamp() * 1000)


def judge(message: Any, cursor: Cursor | None, now_ms: int) -> Verdict:
    """Whether to answer a C{message} notification's message, and the cursor after it."""
    if not isinstance(message, dict) or not _int(message.get("id")) or not _int(message.get("chat_id")):
        return Verdict(MALFORMED, None)
    rowid: int = message["id"]
    if cursor is not None and rowid <= cursor.rowid:
        return Verdict(SEEN, None)
    last_ts = cursor.ts if cursor is not None else 0
    moved = Cursor(rowid, last_ts)
    ts = parse_time(message.get("created_at"))
    if message.get("is_from_me") is True:
        return Verdict(OWN, moved, ts)
    if message.get("is_reaction") is True:
        return Verdict(REACTION, moved, ts)
    if not _text(message) and not message.get("attachments"):
        return Verdict(EMPTY, moved, ts)
    if ts and last_ts and ts < last_ts - SKEW_MS:
        return Verdict(BACKLOG, moved, ts)
    if ts and ts < now_ms - MAX_AGE_MS:
        return Verdict(STALE, moved, ts)
    return Verdict(ACCEPT, Cursor(rowid, max(last_ts, ts)), ts)


def _text(message: Mapping[str, Any]) -> str:
    text = message.get("text")
    return text.replace(OBJECT_REPLACEMENT, "").strip() if isinstance(text, str) else ""


def _media(attachments: Any) -> tuple[str, ...]:
    kinds = []
    for item in attachments if isinstance(attachments, list) else []:
        if not isinstance(item, dict):
            continue
        mime = str(item.get("mime_type") or "").lower()
        if item.get("is_sticker"):
            kinds.append("sticker")
        elif mime.startswith("image/"):
            kinds.append("image")
        elif mime.startswith("video/"):
            kinds.append("video")
        elif mime.startswith("audio/"):
            kinds.append("audio")
        else:
            kinds.append("file")
    return tuple(kinds[:10])


def normalize(message: Mapping[str, Any], ts_ms: int, groups: Mapping[str, Any], channel: str = "imessage", account_id: str = "default") -> InboundMessage:
    """
    The message as the framework sees it (after L{judge} accepted it). A
    thread Messages marks C{is_group} is a group; so is one whose C{chat_id}
    is listed under C{groups} (multi-person threads can arrive as not a group).
    """
    chat_id = str(message["chat_id"])
    group = message.get("is_group") is True or (chat_id in groups and chat_id != "*")
    sender = message["sender"] if isinstance(message.get("sender"), str) and message.get("sender") else None
    guid = message["guid"] if isinstance(message.get("guid"), str) and message.get("guid") else None
    reply = message.get("reply_to_guid")
    name = message.get("chat_name")
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=chat_id,
        chat_type=GROUP if group else DM,
        sender_id=sender or f"chat:{chat_id}",
        message_id=guid or str(message["id"]),
        text=_text(message),
        chat_title=name if group and isinstance(name, str) and name else None,
        reply_to=ReplyRef(reply) if isinstance(reply, str) and reply else None,
        media=_media(message.get("attachments")),
        ts_ms=ts_ms,
    )
