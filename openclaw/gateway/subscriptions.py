# -*- test-case-name: tests.test_uimethods -*-
"""
Following sessions (upstream's v4 session feeds), for the Control UI:

  - C{sessions.subscribe} / C{sessions.unsubscribe}: the caller gets
    C{sessions.changed} whenever a session's row changes (created, patched,
    reset, deleted, a run started or ended), each carrying the row, the
    C{sessionKey}, the C{reason} and, for runs, the C{runId};
  - C{sessions.messages.subscribe} / C{sessions.messages.unsubscribe}: the
    caller gets C{session.message} for every message appended to that
    session's transcript (the user's, the assistant's, injected notes),
    with the row, C{message}, C{messageId} and C{messageSeq} (its number
    among the session's messages).

L{SessionFeeds} is the L{openclaw.interfaces.SessionWatch} the session
stores and the agent runtime tell. Who follows what lives with the
connection object (a weak mapping: a closed connection leaves nothing
behind) and is bounded per connection. The live C{chat}/C{agent} events
are unchanged: they still reach every reader.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol
from weakref import WeakKeyDictionary

import attrs

from openclaw.agent.methods import annotate
from openclaw.gateway.connections import Member
from openclaw.gateway.scopes import has_scope
from openclaw.protocol.connect import APPROVALS
from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Bool, Either, Int, Obj, Str

MAX_FOLLOWED = 256  # session message feeds per connection
_KEY = Str(nonempty=True, max_length=512)
_NONEMPTY = Str(nonempty=True)

Row = Callable[[str], dict[str, Any]]  # a session's row, as C{sessions.list} shows it
Canonical = Callable[[str, str | None], str]  # (key, agentId) → canonical key; raises InvalidInput/GatewayError
Lister = Callable[[Caller, Params], JSON]  # sessions.list, for a subscribe that asks for the list


class ToMembers(Protocol):
    """L{openclaw.gateway.events.Broadcaster.to_members}."""

    def __call__(self, name: str, payload: Any, wanted: Callable[[Member], bool], drop_if_slow: bool = False) -> None: ...


@attrs.define
class Following:
    """What one connection follows."""

    sessions: bool = False
    messages: set[str] = attrs.field(factory=set)


class SessionFeeds:
    """L{openclaw.interfaces.SessionWatch}: turns session changes into events for their followers."""

    def __init__(self, to_members: ToMembers, now_ms: Callable[[], int], row: Row) -> None:
        self.to_members = to_members  # the broadcaster's: an event to the connections a test picks
        self._now_ms = now_ms
        self._row = row
        self._following: WeakKeyDictionary[Any, Following] = WeakKeyDictionary()

    def of(self, conn: Any) -> Following:
        found = self._following.get(conn)
        if found is None:
            found = self._following[conn] = Following()
        return found

    def _followed(self, conn: Any) -> Following | None:
        try:
            return self._following.get(conn)
        except TypeError:  # not weakly referenceable: follows nothing
            return None

    def follow_sessions(self, conn: Any, on: bool) -> None:
        self.of(conn).sessions = on

    def follow_messages(self, conn: Any, key: str, on: bool) -> None:
        following = self.of(conn)
        if not on:
            following.messages.discard(key)
            return
        if key not in following.messages and len(following.messages) >= MAX_FOLLOWED:
            raise GatewayError(INVALID_REQUEST, f"too many followed sessions on this connection (at most {MAX_FOLLOWED}); unsubscribe some first")
        following.messages.add(key)

    def _any(self, wanted: Callable[[Following], bool]) -> bool:
        return any(wanted(f) for f in list(self._following.values()))

    # -- SessionWatch

    def appended(self, session_key: str, record: Mapping[str, Any], seq: int) -> None:
        if not self._any(lambda f: session_key in f.messages):
            return
        message = record.get("message")
        run_id = record.get("runId")
        if isinstance(message, dict):
            message = annotate(message, record.get("id"), seq, run_id if isinstance(run_id, str) else None)
        payload = {**self._row(session_key), "sessionKey": session_key, "message": message, "messageId": record.get("id"), "messageSeq": seq}
        self.to_members("session.message", payload, lambda conn: session_key in (self._followed(conn) or Following()).messages)

    def changed(self, session_key: str, reason: str, run_id: str | None = None) -> None:
        if not self._any(lambda f: f.sessions):
            return
        payload: dict[str, Any] = {**self._row(session_key), "sessionKey": session_key, "reason": reason, "ts": self._now_ms()}
        if run_id is not None:
            payload["runId"] = run_id
        self.to_members("sessions.changed", payload, lambda conn: (self._followed(conn) or Following()).sessions, True)


@attrs.frozen
class FeedDeps:
    """The feeds, canonical session keys, and C{sessions.list} for a subscribe that asks for it."""

    feeds: SessionFeeds
    canonical: Canonical
    lister: Lister
    now_ms: Callable[[], int]


FEED_METHODS: MethodTable[FeedDeps] = MethodTable()

# sessions.subscribe takes sessions.list's params: with any, it answers the list too.
_LIST = Obj(
    {
        "limit": Int(1),
        "offset": Int(0),
        "activeMinutes": Int(1),
        "requireLastInteraction": Bool(),
        "sortBy": Str(("updatedAt", "lastInteractionAt")),
        "includeGlobal": Bool(),
        "includeUnknown": Bool(),
        "configuredAgentsOnly": Bool(),
        "includeDerivedTitles": Bool(),
        "includeLastMessage": Bool(),
        "label": Str(),
        "boardFace": Str(("chat", "dashboard")),
        "creatorId": _NONEMPTY,
        "ownerId": _NONEMPTY,
        "ownerFirst": Bool(),
        "involvingMe": Bool(),
        "involvingProfileId": _NONEMPTY,
        "includePeople": Bool(),
        "spawnedBy": _NONEMPTY,
        "agentId": Str(),
        "search": Str(),
        "archived": Either((Bool(), Str(("all",)))),
        "hasBoard": Bool(),
    },
    closed=True,
)


@FEED_METHODS.method("sessions.subscribe", _LIST)
def sessions_subscribe(fd: FeedDeps, caller: Caller, params: Params) -> JSON:
    result: dict[str, JSON] = {"subscribed": True}
    if params:
        result["list"] = fd.lister(caller, params)  # refused params refuse the subscription too
    fd.feeds.follow_sessions(caller, True)
    return result


@FEED_METHODS.method("sessions.unsubscribe")
def sessions_unsubscribe(fd: FeedDeps, caller: Caller, params: Params) -> JSON:
    fd.feeds.follow_sessions(caller, False)
    return {"subscribed": False}


_SUBSCRIBE = Obj({"key": _KEY, "agentId": _NONEMPTY, "includeApprovals": Bool()}, required=("key",), closed=True)


@FEED_METHODS.method("sessions.messages.subscribe", _SUBSCRIBE)
def messages_subscribe(fd: FeedDeps, caller: Caller, params: Params) -> JSON:
    if params.get("includeApprovals") is False:
        raise GatewayError(INVALID_REQUEST, "invalid sessions.messages.subscribe params: includeApprovals: expected true when given")
    if params.get("includeApprovals") and not has_scope(caller.scopes, APPROVALS):
        raise GatewayError(INVALID_REQUEST, f"sessions.messages.subscribe includeApprovals requires a paired device and gateway scope: {APPROVALS}")
    key = fd.canonical(params["key"], params.get("agentId"))
    fd.feeds.follow_messages(caller, key, True)
    result: dict[str, JSON] = {"subscribed": True, "key": key}
    if params.get("includeApprovals"):
        # No approval requests are raised by sessions on this gateway: nothing pending to replay.
        result["approvalReplay"] = {"sessionKey": key, "updatedAtMs": fd.now_ms(), "approvals": [], "truncated": False}
    return result


@FEED_METHODS.method("sessions.messages.unsubscribe", Obj({"key": _KEY, "agentId": _NONEMPTY}, required=("key",), closed=True))
def messages_unsubscribe(fd: FeedDeps, caller: Caller, params: Params) -> JSON:
    key = fd.canonical(params["key"], params.get("agentId"))
    fd.feeds.follow_messages(caller, key, False)
    return {"subscribed": False, "key": key}
