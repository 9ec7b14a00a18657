# -*- test-case-name: tests.test_matrix -*-
"""
Matrix C{/sync} answers as L{InboundMessage}s (sans-IO).

L{Rooms} remembers what the sync stream said about rooms (joined member
counts, names, display names, C{m.direct}, encryption), bounded. A room is
a DM when C{m.direct} lists it or it has exactly two joined members; every
other room is a group. L{to_message} turns one C{m.room.message} into an
inbound message: edits, notices and our own events are not messages to
answer; C{m.thread} relations become C{thread} ids; a message mentions us
when C{m.mentions} names us, its body holds our MXID or display name (or a
C{matrix.to} link to us), or it replies to one of our messages.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Iterable, Iterator

import attrs

from openclaw.channels.interfaces import DM, GROUP, THREAD, InboundMessage, ReplyRef

ROOM_LIMIT = 2000
NAME_LIMIT = 5000
SENT_LIMIT = 2000
MEDIA = {"m.image": "image", "m.file": "file", "m.audio": "audio", "m.video": "video", "m.location": "location", "m.sticker": "sticker"}
THREAD_OFF, THREAD_INBOUND, THREAD_ALWAYS = "off", "inbound", "always"


class Bounded(OrderedDict[Any, Any]):
    """A mapping that forgets its oldest entries beyond C{limit}."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@attrs.define
class Invite:
    room_id: str
    inviter: str | None
    aliases: tuple[str, ...] = ()
    is_direct: bool = False


@attrs.define
class JoinedRoom:
    room_id: str
    state: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    joined_count: int | None
    limited: bool


@attrs.define
class SyncBatch:
    next_batch: str
    joined: list[JoinedRoom]
    invites: list[Invite]
    left: list[str]
    account_data: list[dict[str, Any]]


def _events(value: Any) -> list[dict[str, Any]]:
    events = value.get("events") if isinstance(value, dict) else None
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def parse_sync(body: Any) -> SyncBatch:
    """The parts of a sync answer we use; ValueError when it has no C{next_batch}."""
    if not isinstance(body, dict) or not isinstance(body.get("next_batch"), str) or not body["next_batch"]:
        raise ValueError("the sync answer has no next_batch")
    rooms = body["rooms"] if isinstance(body.get("rooms"), dict) else {}
    joined = []
    for room_id, room in (rooms.get("join") or {}).items() if isinstance(rooms.get("join"), dict) else ():
        if not isinstance(room, dict):
            continue
        summary = room["summary"] if isinstance(room.get("summary"), dict) else {}
        count = summary.get("m.joined_member_count")
        timeline = room["timeline"] if isinstance(room.get("timeline"), dict) else {}
        joined.append(
            JoinedRoom(str(room_id), _events(room.get("state")), _events(timeline), count if isinstance(count, int) and not isinstance(count, bool) else None, bool(timeline.get("limited")))
        )
    invites = []
    for room_id, room in (rooms.get("invite") or {}).items() if isinstance(rooms.get("invite"), dict) else ():
        state = _events(room.get("invite_state")) if isinstance(room, dict) else []
        inviter, aliases, direct = None, [], False
        for event in state:
            content = event["content"] if isinstance(event.get("content"), dict) else {}
            if event.get("type") == "m.room.member" and content.get("membership") == "invite":
                inviter = event["sender"] if isinstance(event.get("sender"), str) else inviter
                direct = direct or content.get("is_direct") is True
            elif event.get("type") == "m.room.canonical_alias":
                for alias in [content.get("alias"), *(content.get("alt_aliases") or [])]:
                    if isinstance(alias, str):
                        aliases.append(alias)
        invites.append(Invite(str(room_id), inviter, tuple(aliases), direct))
    left = [str(r) for r in rooms.get("leave") or {}] if isinstance(rooms.get("leave"), dict) else []
    return SyncBatch(body["next_batch"], joined, invites, left, _events(body.get("account_data")))


class Rooms:
    """What we know about the rooms we are in (bounded; refreshed from the sync stream)."""

    def __init__(self) -> None:
        self.direct: set[str] = set()
        self.counts: Bounded = Bounded(ROOM_LIMIT)
        self.names: Bounded = Bounded(ROOM_LIMIT)
        self.display: Bounded = Bounded(NAME_LIMIT)  # (room, user) → display name
        self.encrypted: Bounded = Bounded(ROOM_LIMIT)  # room → True

    def set_direct(self, content: Any) -> None:
        """C{m.direct}: C{{user_id: [room_id, ...]}}."""
        rooms: set[str] = set()
        if isinstance(content, dict):
            for ids in content.values():
                if isinstance(ids, list):
                    rooms.update(r for r in ids if isinstance(r, str))
        self.direct = rooms

    def direct_room(self, content: Any, user_id: str) -> str | None:
        ids = content.get(user_id) if isinstance(content, dict) else None
        return next((r for r in reversed(ids) if isinstance(r, str)), None) if isinstance(ids, list) else None

    def learn(self, room: JoinedRoom) -> None:
        if room.joined_count is not None:
            self.counts.put(room.room_id, room.joined_count)
        for event in room.state:
            self._state(room.room_id, event, change=False)
        for event in room.timeline:
            self._state(room.room_id, event, change=True)

    def _state(self, room_id: str, event: dict[str, Any], change: bool) -> None:
        if not isinstance(event.get("state_key"), str):
            return
        content = event["content"] if isinstance(event.get("content"), dict) else {}
        kind = event.get("type")
        if kind == "m.room.member":
            user = event["state_key"]
            if content.get("membership") == "join" and isinstance(content.get("displayname"), str):
                self.display.put((room_id, user), content["displayname"][:100])
            if change and room_id not in self.direct:
                self.counts.pop(room_id, None)  # someone came or went: count again when it matters
        elif kind == "m.room.name" and isinstance(content.get("name"), str):
            self.names.put(room_id, content["name"][:200] or None)
        elif kind == "m.room.encryption":
            self.encrypted.put(room_id, True)

    def forget(self, room_id: str) -> None:
        for table in (self.counts, self.names, self.encrypted):
            table.pop(room_id, None)

    def needs_count(self, room_id: str) -> bool:
        return room_id not in self.direct and room_id not in self.counts

    def is_dm(self, room_id: str) -> bool:
        return room_id in self.direct or self.counts.get(room_id) == 2


@attrs.define
class Me:
    user_id: str
    display_name: str | None = None
    sent: Bounded = attrs.field(factory=lambda: Bounded(SENT_LIMIT))  # our recent event ids

    def remember(self, event_id: str) -> None:
        self.sent.put(event_id, True)

    def mentioned_in(self, content: dict[str, Any], body: str) -> bool:
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict) and isinstance(mentions.get("user_ids"), list) and self.user_id in mentions["user_ids"]:
            return True
        lowered = body.lower()
        if self.user_id.lower() in lowered:
            return True
        local = self.user_id[1:].split(":", 1)[0]
        if self.display_name and _word(self.display_name).search(body):
            return True
        if local and _word("@" + local).search(body):
            return True
        formatted = content.get("formatted_body")
        if isinstance(formatted, str):
            links = formatted.replace("%40", "@").replace("%3A", ":").replace("%3a", ":")
            if f"matrix.to/#/{self.user_id}".lower() in links.lower():
                return True
        return False


def _word(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w@])" + re.escape(name) + r"(?!\w)", re.IGNORECASE)


_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n")


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted C{> <@user> ...} lines older clients put before a reply's text."""
    return _FALLBACK.sub("", body, count=1)


def to_message(
    room_id: str,
    event: dict[str, Any],
    rooms: Rooms,
    me: Me,
    thread_mode: str = THREAD_INBOUND,
    channel: str = "matrix",
    account_id: str = "default",
) -> InboundMessage | None:
    """The message in a timeline event, or None when there is nothing to answer."""
    if event.get("type") != "m.room.message" or isinstance(event.get("state_key"), str):
        return None
    sender, event_id = event.get("sender"), event.get("event_id")
    content = event.get("content")
    if not isinstance(sender, str) or not isinstance(event_id, str) or not isinstance(content, dict) or sender == me.user_id:
        return None
    relation = content["m.relates_to"] if isinstance(content.get("m.relates_to"), dict) else {}
    if relation.get("rel_type") == "m.replace":
        return None  # an edit of an earlier message, not a new one
    kind = content.get("msgtype")
    if kind == "m.notice" or not isinstance(kind, str):
        return None  # notices are what bots send: answering them loops bots into each other
    body = content["body"] if isinstance(content.get("body"), str) else ""
    media: tuple[str, ...] = ()
    if kind in MEDIA:
        media, text = (MEDIA[kind],), ""
    elif kind == "m.emote":
        text = f"* {body}"
    else:
        text = body
    reply_to = None
    quoted = relation.get("m.in_reply_to")
    if isinstance(quoted, dict) and isinstance(quoted.get("event_id"), str) and not relation.get("is_falling_back"):
        reply_to = ReplyRef(quoted["event_id"], from_me=quoted["event_id"] in me.sent)
        text = strip_reply_fallback(text)
    dm = rooms.is_dm(room_id)
    thread_id = None
    if thread_mode != THREAD_OFF:
        if relation.get("rel_type") == "m.thread" and isinstance(relation.get("event_id"), str):
            thread_id = relation["event_id"]
        elif thread_mode == THREAD_ALWAYS:
            thread_id = event_id  # the question starts a thread of its own
    ts = event.get("origin_server_ts")
    return InboundMessage(
        channel=channel,
        account_id=account_id,
        chat_id=room_id,
        chat_type=DM if dm else GROUP,
        sender_id=sender,
        message_id=event_id,
        text=text,
        sender_name=rooms.display.get((room_id, sender)),
        chat_title=rooms.names.get(room_id),
        thread_id=thread_id,
        thread_kind=THREAD if thread_id else None,
        mentions_me=not dm and (me.mentioned_in(content, body) or bool(reply_to and reply_to.from_me)),
        reply_to=reply_to,
        media=media,
        ts_ms=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
    )


def encrypted_events(events: Iterable[dict[str, Any]], me: Me) -> Iterator[dict[str, Any]]:
    """Events we cannot read (E2EE is not supported), other than our own."""
    for event in events:
        if event.get("type") == "m.room.encrypted" and event.get("sender") != me.user_id:
            yield event
