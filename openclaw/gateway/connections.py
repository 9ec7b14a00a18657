# -*- test-case-name: tests.test_ws -*-
"""
The live connections: authenticated ones (what broadcasts reach), the count
of open sockets (authenticated or not), and what was not delivered.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

import attrs

from openclaw.protocol.frames import EventFrame


@attrs.define
class SendStats:
    """What the gateway delivered and did not, for diagnostics and metrics."""

    sent: int = 0  # frames written to a socket
    dropped: int = 0  # frames for a socket already closing or closed
    dropped_slow: int = 0  # droppable events skipped for a slow reader
    slow_consumers: int = 0  # connections closed 1008 "slow consumer"


class Member(Protocol):
    """An authenticated connection as the registry and the broadcaster see it."""

    @property
    def conn_id(self) -> str: ...

    @property
    def role(self) -> str | None: ...

    @property
    def scopes(self) -> list[str]: ...

    @property
    def caps(self) -> set[str]: ...

    @property
    def subscriptions(self) -> set[str]: ...

    @property
    def device_id(self) -> str | None: ...

    @property
    def auth_method(self) -> str | None: ...

    def send_frame(self, frame: EventFrame, drop_if_slow: bool = False) -> None:
        """An event frame shared by every recipient (encoded once); the member adds its C{seq}."""
        ...

    def close(self, code: int, reason: str = "") -> None: ...


class Connections:
    """Authenticated connections (added at hello, removed at close) and open sockets."""

    def __init__(self) -> None:
        self._live: dict[Member, None] = {}  # insertion-ordered set
        self._sockets = 0
        self.stats = SendStats()

    def add(self, conn: Member) -> None:
        self._live[conn] = None

    def remove(self, conn: Member) -> bool:
        """Forget C{conn}; whether it was there."""
        if conn not in self._live:
            return False
        del self._live[conn]
        return True

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self._live))  # a snapshot: closing one while iterating is fine

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, conn: object) -> bool:
        return conn in self._live

    def close_where(self, match: Callable[[Member], bool], code: int, reason: str) -> int:
        """Close every connection C{match} accepts; how many."""
        closing = [c for c in self if match(c)]
        for conn in closing:
            conn.close(code, reason)
        return len(closing)

    # -- sockets (a closing connection leaves the set at once; its socket may linger)

    def socket_opened(self) -> None:
        self._sockets += 1

    def socket_closed(self) -> None:
        self._sockets -= 1

    def open_sockets(self) -> int:
        return self._sockets
