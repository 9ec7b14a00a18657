# -*- test-case-name: tests.test_telegram -*-
"""
Telegram C{Update}s as L{InboundMessage}s (sans-IO).

C{message} and C{channel_post} carry chat messages (edits, callbacks and
member updates are not messages to answer). Private chats are DMs; groups
and supergroups are groups, with forum topics as C{topic} threads (the
General topic is thread 1); channels are channels. A message mentions the
bot when an entity names C{@botname} (or the bot's user), a command is
addressed to it, or it replies to one of the bot's messages.
"""

from __future__ import annotations

from typing import Any

import attrs

from openclaw.channels.interfaces import CHANNEL, DM, GROUP, TOPIC, InboundMessage, ReplyRef

ALLOWED_UPDATES = ["message", "channel_post"]
MEDIA_KINDS = ("photo", "video", "voice", "audio", "document", "sticker", "animation", "video_note", "location", "contact", "poll")
GENERAL_TOPIC = "1"


@attrs.frozen
class Bot:
    id: int
    username: str

    @classmethod
    def from_me(cls, me: Any) -> Bot:
        if not isinstance(me, dict) or not isinstance(me.get("id"), int):
            raise ValueError("getMe returned no bot id")
        return cls(me["id"], str(me.get("username") or ""))


def _utf16(text: str, offset: int, length: int) -> str:
    """The entity's text: Telegram counts offsets in UTF-16 code units."""
    data = text.encode("utf-16-le")
    return data[offset * 2 : (offset + length) * 2].decode("utf-16-le", "replace")


def _name(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    name = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k)).strip()
    return name or user.get("title") or None


def mentions(message: dict[str, Any], bot: Bot) -> bool:
    text = message.get("text") or message.get("caption") or ""
    handle = f"@{bot.username}".lower() if bot.username else None
    for entity in (message.get("entities") or []) + (message.get("caption_entities") or []):
        if not isinstance(entity, dict):
            continue
        kind = entity.get("type")
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            continue
        if kind == "text_mention" and (entity.get("user") or {}).get("id") == bot.id:
            return True
        if handle and kind == "mention" and _utf16(text, offset, length).lower() == handle:
            return True
        if handle and kind == "bot_command" and _utf16(text, offset, length).lower().endswith(handle):
            return True
    reply = message.get("reply_to_message")
    return isinstance(reply, dict) and (reply.get("from") or {}).get("id") == bot.id


def normalize(update: Any, bot: Bot, channel: str = "telegram", account_id: str = "default") -> InboundMessage | None:
    """The message in an update, or None when there is nothing to answer."""
    if not isinstance(update, dict):
        return None
    message = update.get("message") or update.get("channel_post")
    if not isinstance(message, dict):
        return None
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or not isinstance(message.get("message_id"), int):
        return None
    kind = {"private": DM, "group": GROUP, "supergroup": GROUP, "channel": CHANNEL}.get(str(chat.get("type")))
    if kind is None:
        return None
    sender = message["from"] if isinstance(message.get("from"), dict) else None
    if sender is None:
        sender = message["sender_chat"] if isinstance(message.get("sender_chat"), dict) else chat
    if not isinstance(sender.get("id"), int):
        return None
    thread = message.get("message_thread_id")
    thread_id: str | None = str(thread) if isinstance(thread, int) else None
    if kind == GROUP and chat.get("is_forum"):
        thread_id = thread_id if message.get("is_topic_message") and thread_id else GENERAL_TOPIC
    elif kind == GROUP:
        thread_id = None  # replies in plain groups carry no topic
    reply = message.get("reply_to_message")
    reply_ref = None
    if isinstance(reply, dict) and isinstance(reply.get("message_id"), int) and not reply.get("forum_topic_created"):
        reply_ref = ReplyRef(str(reply["message_id"]), _name(reply.get("from")), (reply.get("text") or reply.get("caption") or "")[:500] or None, (reply.get("from") or {}).get("id") == bot.id)
    date = message.get("date")
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=str(chat["id"]),
        chat_type=kind,
        sender_id=str(sender["id"]),
        message_id=str(message["message_id"]),
        text=str(message.get("text") or message.get("caption") or ""),
        sender_name=_name(sender),
        sender_username=sender["username"] if isinstance(sender.get("username"), str) else None,
        chat_title=chat["title"] if isinstance(chat.get("title"), str) else None,
        thread_id=thread_id,
        thread_kind=TOPIC if thread_id else None,
        mentions_me=kind != DM and mentions(message, bot),
        reply_to=reply_ref,
        media=tuple(k for k in MEDIA_KINDS if k in message),
        ts_ms=date * 1000 if isinstance(date, int) else 0,
    )
