# -*- test-case-name: tests.test_discord_units -*-
"""
Discord gateway events as L{InboundMessage}s (sans-IO).

C{MESSAGE_CREATE} without a C{guild_id} is a DM; in a guild it is a
C{channel} message, and a message in a thread keeps its parent channel as
the chat with the thread as C{thread} (sessions get C{:thread:<id>}; the
group rules of the parent apply). Which channel is a thread, and its
parent and name, comes from the L{Directory} that C{GUILD_CREATE},
C{CHANNEL_*} and C{THREAD_*} events fill. A message mentions the bot when
Discord lists the bot in C{mentions}, the text holds C{<@id>}, or it replies
to one of the bot's messages. The bot's own messages (Discord echoes them)
are dropped here; other bots' (and webhooks') unless C{allowBots}; system
messages (joins, pins, ...) are never answered.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import attrs

from openclaw.channels.interfaces import CHANNEL, DM, THREAD, InboundMessage, ReplyRef

DISCORD_EPOCH_MS = 1420070400000
THREAD_TYPES = frozenset({10, 11, 12})  # announcement, public and private threads
USER_MESSAGES = frozenset({0, 19})  # DEFAULT and REPLY; the rest are system messages
DIRECTORY_LIMIT = 5000
_SNOWFLAKE = re.compile(r"^\d{1,20}$")
_USER_MENTION = re.compile(r"<@!?(\d{1,20})>")


def snowflake(value: Any) -> str | None:
    """A Discord id as a string, or None when it is not one."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return text if _SNOWFLAKE.match(text) else None


@attrs.frozen
class ChannelInfo:
    id: str
    type: int
    guild_id: str | None = None
    parent_id: str | None = None
    name: str | None = None

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES


class Directory:
    """Channels, threads and guild names the gateway told us about (bounded, least recently used out)."""

    def __init__(self, limit: int = DIRECTORY_LIMIT) -> None:
        self.limit = limit
        self._channels: OrderedDict[str, ChannelInfo] = OrderedDict()
        self._guilds: OrderedDict[str, str] = OrderedDict()

    def get(self, channel_id: str) -> ChannelInfo | None:
        info = self._channels.get(channel_id)
        if info is not None:
            self._channels.move_to_end(channel_id)
        return info

    def guild_name(self, guild_id: str | None) -> str | None:
        return self._guilds.get(guild_id) if guild_id else None

    def channel(self, data: Any, guild_id: str | None = None) -> ChannelInfo | None:
        """Remember a channel object (from an event or C{GET /channels/{id}})."""
        if not isinstance(data, dict):
            return None
        cid = snowflake(data.get("id"))
        kind = data.get("type")
        if cid is None or not isinstance(kind, int):
            return None
        info = ChannelInfo(
            cid,
            kind,
            snowflake(data.get("guild_id")) or guild_id,
            snowflake(data.get("parent_id")),
            data["name"][:100] if isinstance(data.get("name"), str) else None,
        )
        self._channels[cid] = info
        self._channels.move_to_end(cid)
        while len(self._channels) > self.limit:
            self._channels.popitem(last=False)
        return info

    def forget(self, data: Any) -> None:
        cid = snowflake(data.get("id")) if isinstance(data, dict) else None
        if cid is not None:
            self._channels.pop(cid, None)

    def guild(self, data: Any) -> None:
        """C{GUILD_CREATE}: the guild's name, channels and active threads."""
        if not isinstance(data, dict):
            return
        gid = snowflake(data.get("id"))
        if gid is None:
            return
        if isinstance(data.get("name"), str):
            self._guilds[gid] = data["name"][:100]
            self._guilds.move_to_end(gid)
            while len(self._guilds) > self.limit:
                self._guilds.popitem(last=False)
        for key in ("channels", "threads"):
            for channel in _list(data.get(key)):
                self.channel(channel, gid)

    def event(self, name: str, data: Any) -> None:
        """Keep up with the gateway's channel and thread events."""
        if name == "GUILD_CREATE":
            self.guild(data)
        elif name in ("CHANNEL_CREATE", "CHANNEL_UPDATE", "THREAD_CREATE", "THREAD_UPDATE"):
            self.channel(data)
        elif name in ("CHANNEL_DELETE", "THREAD_DELETE"):
            self.forget(data)
        elif name == "THREAD_LIST_SYNC" and isinstance(data, dict):
            for thread in _list(data.get("threads")):
                self.channel(thread, snowflake(data.get("guild_id")))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name(user: Any) -> str | None:
    if not isinstance(user, dict):
        return None
    for key in ("global_name", "username"):
        if isinstance(user.get(key), str) and user[key]:
            return str(user[key])
    return None


def mentions_me(message: dict[str, Any], me: str) -> bool:
    for user in _list(message.get("mentions")):
        if isinstance(user, dict) and snowflake(user.get("id")) == me:
            return True
    content = message["content"] if isinstance(message.get("content"), str) else ""
    if f"<@{me}>" in content or f"<@!{me}>" in content:
        return True
    referenced = message.get("referenced_message")
    author = referenced.get("author") if isinstance(referenced, dict) else None
    return isinstance(author, dict) and snowflake(author.get("id")) == me


def readable(message: dict[str, Any]) -> str:
    """The text with user mentions (C{<@id>}) as C{@name}, as people read them."""
    content = message["content"] if isinstance(message.get("content"), str) else ""
    names = {snowflake(u.get("id")): (u.get("username") or _name(u)) for u in _list(message.get("mentions")) if isinstance(u, dict)}
    return _USER_MENTION.sub(lambda m: f"@{names[m.group(1)]}" if names.get(m.group(1)) else m.group(0), content)


def _media(message: dict[str, Any]) -> tuple[str, ...]:
    kinds = []
    for attachment in _list(message.get("attachments")):
        ctype = str((attachment or {}).get("content_type") or "") if isinstance(attachment, dict) else ""
        kind = next((k for p, k in (("image/", "image"), ("video/", "video"), ("audio/", "audio")) if ctype.startswith(p)), "document")
        kinds.append(kind)
    if message.get("sticker_items"):
        kinds.append("sticker")
    return tuple(kinds)


def ts_ms(message_id: str) -> int:
    """When a message was created, from its snowflake id."""
    return (int(message_id) >> 22) + DISCORD_EPOCH_MS


def normalize(message: Any, me: str, directory: Directory, account_id: str = "default", allow_bots: bool = False, channel: str = "discord") -> InboundMessage | None:
    """The C{MESSAGE_CREATE} as an inbound message, or None when it is nothing to answer."""
    if not isinstance(message, dict):
        return None
    message_id, channel_id = snowflake(message.get("id")), snowflake(message.get("channel_id"))
    author = message["author"] if isinstance(message.get("author"), dict) else None
    sender_id = snowflake(author.get("id")) if author is not None else None
    if message_id is None or channel_id is None or author is None or sender_id is None:
        return None
    kind = message.get("type", 0)
    if not isinstance(kind, int) or kind not in USER_MESSAGES:
        return None
    if sender_id == me:
        return None  # Discord echoes our own messages
    if (author.get("bot") or message.get("webhook_id")) and not allow_bots:
        return None
    guild_id = snowflake(message.get("guild_id"))
    chat_id, chat_type, thread_id, title = channel_id, DM, None, None
    if guild_id is not None:
        chat_type = CHANNEL
        info = directory.get(channel_id)
        if info is not None and info.is_thread and info.parent_id:
            chat_id, thread_id = info.parent_id, channel_id
            parent = directory.get(info.parent_id)
            title = f"#{parent.name}" if parent is not None and parent.name else None
        elif info is not None and info.name:
            title = f"#{info.name}"
        guild = directory.guild_name(guild_id)
        if guild and title:
            title = f"{guild} {title}"
    referenced = message.get("referenced_message")
    reply = None
    if isinstance(referenced, dict) and snowflake(referenced.get("id")):
        ref_author = referenced["author"] if isinstance(referenced.get("author"), dict) else {}
        quoted = referenced["content"] if isinstance(referenced.get("content"), str) else ""
        reply = ReplyRef(str(referenced["id"]), _name(ref_author), quoted[:500] or None, snowflake(ref_author.get("id")) == me)
    text, media = readable(message), _media(message)
    if not text.strip() and not media:
        return None  # nothing to answer (or the Message Content intent is off)
    username = author["username"] if isinstance(author.get("username"), str) else None
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=chat_id,
        chat_type=chat_type,
        sender_id=sender_id,
        message_id=message_id,
        text=text,
        sender_name=_name(author),
        sender_username=username,
        chat_title=title,
        thread_id=thread_id,
        thread_kind=THREAD if thread_id else None,
        mentions_me=chat_type != DM and mentions_me(message, me),
        reply_to=reply,
        media=media,
        ts_ms=ts_ms(message_id),
    )
