# -*- test-case-name: tests.test_core -*-
"""This gateway process: its clock, boot id, start time and host name."""

from __future__ import annotations

import socket
import uuid

from twisted.internet.interfaces import IReactorTime


class Boot:
    """Time (in the protocol's milliseconds) on the injected clock, and who this gateway is."""

    def __init__(self, clock: IReactorTime, hostname: str | None = None) -> None:
        self.clock = clock
        self.boot_id = str(uuid.uuid4())
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.started_ms = self.now_ms()

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def uptime_ms(self) -> int:
        return max(0, self.now_ms() - self.started_ms)
