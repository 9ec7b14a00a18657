# -*- test-case-name: tests.test_ws -*-
"""
Presence: the gateway itself, every connected client (under its device or
instance id), nodes' beacons and clients' system events; bounded, newest
kept, each change broadcast with its C{stateVersion}.
"""

from __future__ import annotations

import platform
from typing import Any

from openclaw import __version__
from openclaw.gateway.boot import Boot
from openclaw.gateway.events import StateVersion
from openclaw.interfaces import EventSink

PRESENCE_MAX = 200


class Presence:
    """L{openclaw.interfaces.PresenceSink}; entries of live connections last while one holds them."""

    def __init__(self, boot: Boot, events: EventSink, versions: StateVersion) -> None:
        self.boot = boot
        self.events = events
        self.versions = versions
        self.entries: dict[str, dict[str, Any]] = {}
        self._holders: dict[str, int] = {}  # key → live connections under it

    def join(self, key: str, entry: dict[str, Any]) -> None:
        """A connection under C{key} is ready."""
        self._holders[key] = self._holders.get(key, 0) + 1
        self._set(key, entry)

    def leave(self, key: str) -> None:
        """A connection under C{key} closed; the entry goes with the last one."""
        held = self._holders.get(key, 0) - 1
        if held > 0:
            self._holders[key] = held
            return
        self._holders.pop(key, None)
        if self.entries.pop(key, None) is not None:
            self._changed()

    def update(self, key: str, entry: dict[str, Any]) -> None:
        self._set(key, {**self.entries.get(key, {}), **entry, "ts": self.boot.now_ms()})

    def _set(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry
        while len(self.entries) > PRESENCE_MAX:
            oldest = min(self.entries, key=lambda k: self.entries[k]["ts"])
            del self.entries[oldest]
        self._changed()

    def _changed(self) -> None:
        self.versions.presence += 1
        self.events.broadcast("presence", {"presence": self.list()}, drop_if_slow=True)

    def own(self) -> dict[str, Any]:
        """The gateway's own entry."""
        ip = "127.0.0.1"
        host = self.boot.hostname
        return {
            "host": host,
            "ip": ip,
            "version": __version__,
            "platform": f"{platform.system().lower()} {platform.release()}",
            "deviceFamily": platform.system() or "Linux",
            "modelIdentifier": platform.machine() or "unknown",
            "mode": "gateway",
            "reason": "self",
            "text": f"Gateway: {host} ({ip}) · app {__version__} · mode gateway · reason self",
            "ts": self.boot.now_ms(),
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.own(), *sorted(self.entries.values(), key=lambda e: e["ts"])]
