# -*- test-case-name: tests.test_sdnotify -*-
"""
The systemd notify protocol, written out: datagrams of C{KEY=VALUE} lines to
the unix socket named by C{$NOTIFY_SOCKET} (a leading C{@} names an abstract
socket). L{NotifyService} says C{READY=1} once it starts (it is the gateway's
last child, so every listener is up), C{WATCHDOG=1} at half of
C{$WATCHDOG_USEC}, and C{STOPPING=1} as the gateway begins to stop.

`openclaw gateway start` uses the same protocol to learn when its background
gateway is ready: it passes a socket of its own as C{NOTIFY_SOCKET}.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger(namespace="openclaw.systemd")

MAX_DATAGRAM = 4096


def socket_address(name: str) -> str:
    """C{$NOTIFY_SOCKET} as a C{sendto} address: C{@name} is the abstract C{\\0name}."""
    return "\0" + name[1:] if name.startswith("@") else name


def parse(datagram: bytes) -> dict[str, str]:
    """A notify datagram's fields (later ones win); lines without C{=} are ignored."""
    fields: dict[str, str] = {}
    for line in datagram.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class Notifier:
    """Sends notify datagrams; never raises (the service manager may be gone)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.address = socket_address(name)
        self.sent: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Notifier | None":
        name = env.get("NOTIFY_SOCKET")
        if not name or not (name.startswith("/") or name.startswith("@")):
            return None
        return cls(name)

    def send(self, *fields: str) -> bool:
        data = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(data, self.address)
        except OSError as e:
            # Gone (`gateway start` waits only for READY=1, then closes its socket): nobody to tell.
            gone = e.errno in (errno.ECONNREFUSED, errno.ENOENT)
            (log.debug if gone else log.warn)("sd_notify to {socket} failed: {error}", socket=self.name, error=e.strerror or str(e))
            return False
        self.sent += 1
        return True


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between C{WATCHDOG=1} pings: half of C{$WATCHDOG_USEC}, if the watchdog is ours."""
    usec = env.get("WATCHDOG_USEC")
    owner = env.get("WATCHDOG_PID")
    if not usec:
        return None
    if owner and owner != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2 / 1_000_000 if value > 0 else None


class NotifyService(Service):
    """READY=1 at start, WATCHDOG=1 while running, STOPPING=1 at stop."""

    name = "sd_notify"

    def __init__(self, notifier: Notifier, clock: Any, watchdog: float | None, status: Callable[[], str] = lambda: "") -> None:
        self.notifier = notifier
        self.clock = clock
        self.watchdog = watchdog
        self.status = status
        self._ping: LoopingCall | None = None
        self._stopping = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], clock: Any, status: Callable[[], str] = lambda: "") -> "NotifyService | None":
        notifier = Notifier.from_env(env)
        if notifier is None:
            return None
        return cls(notifier, clock, watchdog_interval(env, os.getpid()), status)

    def startService(self) -> None:
        super().startService()
        fields = ["READY=1", f"MAINPID={os.getpid()}"]
        status = self.status()
        if status:
            fields.append(f"STATUS={status}")
        self.notifier.send(*fields)
        if self.watchdog:
            self._ping = LoopingCall(self.notifier.send, "WATCHDOG=1")
            self._ping.clock = self.clock
            self._ping.start(self.watchdog, now=False)

    def stopping(self) -> None:
        """Tell the manager the stop has begun (once); the watchdog stops with it."""
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        self._ping = None
        if not self._stopping:
            self._stopping = True
            self.notifier.send("STOPPING=1", "STATUS=stopping")

    def stopService(self) -> None:
        self.stopping()
        super().stopService()
