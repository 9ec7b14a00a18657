# -*- test-case-name: tests.test_ws -*-
"""
Events to connections: scope-gated, numbered per connection (C{seq}),
versioned for C{presence}/C{health}, and the 30 s C{tick}.

Broadcasts are fire-and-forget: a connection's C{send_frame} never raises,
and a bug in one connection still cannot stop the others from getting the
event (it is counted as dropped). An event is encoded once
(L{openclaw.protocol.frames.EventFrame}); each connection only adds its C{seq}.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from openclaw.gateway.connections import Connections, Member
from openclaw.gateway.scopes import has_scope
from openclaw.protocol.connect import APPROVALS, PAIRING, READ
from openclaw.protocol.frames import EventFrame
from openclaw.protocol.versions import TICK_INTERVAL_MS

log = Logger(namespace="openclaw.gateway")

# Events this gateway emits, in upstream's order (tests.test_status checks that
# each one has an emitter and that nothing else is emitted); ours come last:
# `pairing` (DM pairing requests, for the web UI), and `channel.send` and
# `channel.typing` (to an out-of-process channel adapter only).
EVENTS = [
    "connect.challenge", "agent", "chat", "presence", "tick", "shutdown", "health", "heartbeat", "cron",
    "node.pair.requested", "node.pair.resolved", "node.invoke.request", "device.pair.requested", "device.pair.resolved",
    "voicewake.changed", "pairing", "channel.send", "channel.typing",
    "exec.approval.requested", "exec.approval.resolved", "session.message", "sessions.changed",
]
_EVENT_SCOPE = {"agent": READ, "chat": READ, "device.pair.": PAIRING, "node.pair.": PAIRING, "pairing": PAIRING, "exec.approval.": APPROVALS}
_UNGATED = {"tick", "presence", "health", "heartbeat", "shutdown", "voicewake.changed", "talk.mode", "cron"}
# A channel adapter's credential may be narrower than the gateway's: it hears the tick and the goodbye only.
_CHANNEL_ROLE_EVENTS = {"tick", "shutdown"}


def event_scope(name: str) -> str | None:
    """The scope a broadcast needs (None: every authenticated socket)."""
    if name in _UNGATED:
        return None
    for prefix, scope in _EVENT_SCOPE.items():
        if name == prefix or (prefix.endswith(".") and name.startswith(prefix)):
            return scope
    return READ  # unknown families are gated


@attrs.define
class StateVersion:
    """C{snapshot.stateVersion}: bumped by presence and health changes, sent with their events."""

    presence: int = 1
    health: int = 1

    def snapshot(self) -> dict[str, int]:
        return {"presence": self.presence, "health": self.health}


class Broadcaster:
    """L{openclaw.interfaces.EventSink} and L{openclaw.interfaces.SessionEvents} over the live connections."""

    def __init__(self, connections: Connections, versions: StateVersion, clock: IReactorTime) -> None:
        self.connections = connections
        self.versions = versions
        self.clock = clock
        self._tick = LoopingCall(self._send_tick)
        self._tick.clock = clock

    def _send(self, conn: Member, frame: EventFrame, drop_if_slow: bool) -> None:
        try:
            conn.send_frame(frame, drop_if_slow)
        except Exception:
            self.connections.stats.dropped += 1
            log.failure("{event} event to {conn} failed", event=frame.name, conn=conn.conn_id)

    def broadcast(self, name: str, payload: Any, drop_if_slow: bool = False) -> None:
        """Send an event to every authenticated socket allowed to see it (encoded once for all)."""
        scope = event_scope(name)
        versioned = self.versions.snapshot() if name in ("presence", "health") else None
        frame = EventFrame(name, payload, versioned)
        for conn in self.connections:
            if scope is not None and not (conn.role == "operator" and has_scope(conn.scopes, scope)):
                continue
            if conn.role == "channel" and name not in _CHANNEL_ROLE_EVENTS:
                continue
            self._send(conn, frame, drop_if_slow)

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        """A subsystem's event (scheduled work, channels): broadcast, skipped for readers that are behind."""
        self.broadcast(name, dict(payload), drop_if_slow=True)

    def to_members(self, name: str, payload: Any, wanted: Callable[[Member], bool], drop_if_slow: bool = False) -> None:
        """Send an event to the authenticated sockets C{wanted} picks, among those allowed to see it (encoded once for all)."""
        scope = event_scope(name)
        frame = EventFrame(name, payload)
        for conn in self.connections:
            if scope is not None and not (conn.role == "operator" and has_scope(conn.scopes, scope)):
                continue
            if wanted(conn):
                self._send(conn, frame, drop_if_slow)

    def to_session(self, name: str, payload: Any, session_key: str, drop_if_slow: bool = False) -> None:
        """A session's chat/agent event: to readers, and to nodes subscribed to that session (one pass, one encoding)."""
        scope = event_scope(name)
        frame = EventFrame(name, payload, self.versions.snapshot() if name in ("presence", "health") else None)
        node_frame = frame if frame.state_version is None else EventFrame(name, payload)
        for conn in self.connections:
            if scope is None or (conn.role == "operator" and has_scope(conn.scopes, scope)):
                self._send(conn, frame, drop_if_slow)
            if conn.role == "node" and session_key in conn.subscriptions:
                self._send(conn, node_frame, drop_if_slow)

    def tool_event(self, payload: Any, session_key: str, verbose: bool) -> None:
        """Tool events: to readers that advertised cap "tool-events", or to all when the session is verbose."""
        frame = EventFrame("agent", payload)
        for conn in self.connections:
            if conn.role == "operator" and has_scope(conn.scopes, READ) and (verbose or "tool-events" in conn.caps):
                self._send(conn, frame, False)
            elif conn.role == "node" and session_key in conn.subscriptions:
                self._send(conn, frame, False)

    # -- the tick

    def _send_tick(self) -> None:
        self.broadcast("tick", {"ts": int(self.clock.seconds() * 1000)}, drop_if_slow=True)

    def start(self) -> None:
        self._tick.start(TICK_INTERVAL_MS / 1000, now=False)

    def stop(self) -> None:
        if self._tick.running:
            self._tick.stop()
