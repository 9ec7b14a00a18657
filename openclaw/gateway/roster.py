# -*- test-case-name: tests.test_ws -*-
"""
Who is connected: a connection that finished its handshake joins the live
connections (broadcasts reach it), presence (under its key) and, if it is a
node, the node registry; it leaves all three when it closes.
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.logger import Logger

from openclaw.gateway.connections import Connections, Member
from openclaw.gateway.presence import Presence
from openclaw.gateway.voicewake import VoiceWake
from openclaw.nodes.registry import NodeInfo, NodeLink, NodeRegistry

log = Logger(namespace="openclaw.gateway")


class Joiner(Member, NodeLink, Protocol):
    """A connection as the roster sees it."""

    @property
    def presence_key(self) -> str | None: ...

    @property
    def node_id(self) -> str | None: ...

    @property
    def node_info(self) -> NodeInfo | None: ...

    def presence_entry(self) -> dict[str, object] | None: ...

    def send_direct(self, name: str, payload: object) -> None: ...


class Roster:
    def __init__(self, connections: Connections, presence: Presence, nodes: NodeRegistry, voicewake: VoiceWake) -> None:
        self.connections = connections
        self.presence = presence
        self.nodes = nodes
        self.voicewake = voicewake
        self._leaving: list[Callable[[object], None]] = []

    def on_leave(self, listener: Callable[[object], None]) -> None:
        """Tell C{listener} about each connection that leaves (once; a subsystem's own connections: channel adapters)."""
        self._leaving.append(listener)

    def join(self, conn: Joiner) -> None:
        self.connections.add(conn)
        entry = conn.presence_entry()
        if conn.presence_key is not None and entry is not None:
            self.presence.join(conn.presence_key, dict(entry))
        if conn.node_info is not None:
            self.nodes.attach(conn.node_info, conn)
            conn.send_direct("voicewake.changed", {"triggers": self.voicewake.triggers()})

    def leave(self, conn: Joiner) -> None:
        joined = self.connections.remove(conn)
        if joined and conn.presence_key is not None:
            self.presence.leave(conn.presence_key)
        if conn.node_id is not None:
            self.nodes.detach(conn.node_id, conn)
        if joined:
            for listener in self._leaving:
                try:
                    listener(conn)
                except Exception:
                    log.failure("a leave listener failed for {conn}", conn=conn.conn_id)
