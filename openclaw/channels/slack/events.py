# -*- test-case-name: tests.test_slack_units -*-
"""
Slack Events API payloads as L{InboundMessage}s (sans-IO).

C{message} events (from C{im}, C{mpim}, C{channel} and C{group} — private
channel — conversations) and C{app_mention} are messages to answer; edits,
deletions, joins and other subtypes are not, nor anything a bot wrote
(C{bot_id}: our own replies come back this way) or our own user wrote.

The message id is the message's C{ts}: unique within a conversation, and the
same for a C{message} event and the C{app_mention} event Slack sends for the
same words (their C{event_id}s differ), so the framework answers once. A
redelivered envelope (C{retry_attempt} > 0) carries the same C{ts} too.

Threads: C{thread_ts} becomes the C{thread} id (session C{…:thread:<ts>},
replies with C{thread_ts}). A mention is C{<@bot>} in the text, an
C{app_mention} event, or a thread reply under one of the bot's messages.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Generic, TypeVar

import attrs

from openclaw.channels.interfaces import CHANNEL, DM, GROUP, THREAD, InboundMessage

CHAT_TYPES = {"im": DM, "mpim": GROUP, "channel": CHANNEL, "group": CHANNEL}
ANSWERED_SUBTYPES = (None, "file_share", "thread_broadcast", "me_message")
MAX_TEXT = 40_000
_MARKUP = re.compile(r"<([^<>\n]{1,2000})>")
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A bounded memory (the oldest entry goes first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)


@attrs.frozen
class BotUser:
    """Who we are, from C{auth.test}."""

    user_id: str
    name: str = ""
    bot_id: str | None = None
    team_id: str | None = None
    team: str | None = None

    @classmethod
    def from_auth(cls, value: Any) -> BotUser:
        if not isinstance(value, dict) or not isinstance(value.get("user_id"), str) or not value["user_id"]:
            raise ValueError("auth.test returned no user_id")

        def text(key: str) -> str | None:
            v = value.get(key)
            return v if isinstance(v, str) and v else None

        return cls(value["user_id"], text("user") or "", text("bot_id"), text("team_id"), text("team"))


def is_ts(value: Any) -> bool:
    return isinstance(value, str) and bool(_TS.match(value))


def chat_type(channel_type: Any, channel_id: str, known: Recent[str, str] | None = None) -> str:
    """C{im} → dm, C{mpim} → group, channels → channel; without a type (C{app_mention}), what a message event said or the id's prefix."""
    if isinstance(channel_type, str) and channel_type in CHAT_TYPES:
        return CHAT_TYPES[channel_type]
    seen = known.get(channel_id) if known is not None else None
    if seen is not None:
        return seen
    return DM if channel_id.startswith("D") else CHANNEL


def plain_text(text: str, bot: BotUser | None = None) -> str:
    """Slack markup as the agent should read it: C{<@U1|ann>} → C{@ann}, C{<url|label>} → C{label (url)}, entities decoded."""

    def sub(m: re.Match[str]) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith("@"):
            if bot is not None and target[1:] == bot.user_id:
                return f"@{bot.name or bot.user_id}"
            return "@" + (label.lstrip("@") or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            if label:
                return label
            return "@" + target[1:].split("^", 1)[0]
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        if label and label != target:
            return f"{label} ({target})"
        return target

    return _MARKUP.sub(sub, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentions(event: dict[str, Any], bot: BotUser) -> bool:
    if event.get("type") == "app_mention":
        return True
    text = event["text"] if isinstance(event.get("text"), str) else ""
    assert isinstance(text, str)
    if f"<@{bot.user_id}>" in text or f"<@{bot.user_id}|" in text:
        return True
    return bool(event.get("thread_ts")) and event.get("parent_user_id") == bot.user_id


def _media(files: Any) -> tuple[str, ...]:
    out = []
    for f in files if isinstance(files, list) else ():
        if not isinstance(f, dict):
            continue
        mime = str(f.get("mimetype") or "")
        out.append(next((kind for prefix, kind in (("image/", "photo"), ("video/", "video"), ("audio/", "audio")) if mime.startswith(prefix)), "document"))
    return tuple(out[:10])


def normalize(payload: Any, bot: BotUser, known: Recent[str, str] | None = None, account_id: str = "default", channel: str = "slack") -> InboundMessage | None:
    """The message in an C{event_callback} payload, or None when there is nothing to answer."""
    if not isinstance(payload, dict) or payload.get("type") != "event_callback":
        return None
    event = payload.get("event")
    if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("subtype") not in ANSWERED_SUBTYPES or event.get("bot_id") or event.get("hidden"):
        return None
    user, chat, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (isinstance(user, str) and user and isinstance(chat, str) and chat and is_ts(ts)):
        return None
    assert isinstance(ts, str)
    if user == bot.user_id:
        return None
    if event.get("type") == "message" and known is not None and event.get("channel_type") in CHAT_TYPES:
        known.put(chat, CHAT_TYPES[event["channel_type"]])
    kind = chat_type(event.get("channel_type"), chat, known)
    thread = event.get("thread_ts") if is_ts(event.get("thread_ts")) else None
    profile = event["user_profile"] if isinstance(event.get("user_profile"), dict) else {}
    assert isinstance(profile, dict)
    name = next((profile[k] for k in ("display_name", "real_name") if isinstance(profile.get(k), str) and profile[k]), None)
    handle = profile["name"] if isinstance(profile.get("name"), str) and profile.get("name") else None
    raw = event["text"] if isinstance(event.get("text"), str) else ""
    assert isinstance(raw, str)
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=chat,
        chat_type=kind,
        sender_id=user,
        message_id=ts,
        text=plain_text(raw[:MAX_TEXT], bot),
        sender_name=name,
        sender_username=handle,
        thread_id=thread,
        thread_kind=THREAD if thread else None,
        mentions_me=kind != DM and mentions(event, bot),
        media=_media(event.get("files")),
        ts_ms=int(float(ts) * 1000),
    )
