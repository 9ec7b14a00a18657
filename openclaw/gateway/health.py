# -*- test-case-name: tests.test_status -*-
"""
The C{health} snapshot: cached, refreshed every 60 s (and on C{probe}),
each refresh broadcast with its C{stateVersion}.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from openclaw.config.settings import AgentSettings, HeartbeatSettings
from openclaw.gateway.boot import Boot
from openclaw.gateway.events import StateVersion
from openclaw.gateway.stability import Stability
from openclaw.gateway.summary import SessionStores, agent_rows, health_sessions, heartbeat_summary, store_of
from openclaw.interfaces import EventSink
from openclaw.protocol.versions import HEALTH_REFRESH_MS


class HeartbeatReport:
    """
    What health and status say about heartbeats: disabled (upstream's shape
    when nothing schedules them) until a scheduler reports its own with
    L{use}.
    """

    def __init__(self, settings: HeartbeatSettings) -> None:
        self._settings = settings
        self._source: Callable[[], dict[str, Any]] | None = None

    def use(self, source: Callable[[], dict[str, Any]]) -> None:
        """Report C{source()} from now on (C{enabled}, C{every}, C{everyMs}, C{prompt}, C{target}, C{ackMaxChars})."""
        self._source = source

    def summary(self) -> dict[str, Any]:
        return self._source() if self._source is not None else heartbeat_summary(self._settings)

    def seconds(self) -> int:
        """C{heartbeatSeconds}: 0 while disabled (upstream: 0 when everyMs is null)."""
        summary = self.summary()
        every = summary.get("everyMs")
        return every // 1000 if summary.get("enabled") and isinstance(every, int) else 0


class ChannelSummary(Protocol):
    """What the channels say about their accounts (L{openclaw.channels.service.ChannelsService})."""

    def health_summary(self) -> dict[str, Any]:
        """C{channels} (per channel: the default account's row and C{accounts}), C{channelOrder}, C{channelLabels}."""
        ...

    def summary_lines(self) -> list[str]:
        """C{status}'s C{channelSummary}: a line per channel, then one per configured account."""
        ...


class ChannelReport:
    """
    What health and status say about channels: the configured ones, none
    running, until the channels report their accounts with L{use}.
    """

    def __init__(self, configured: tuple[str, ...]) -> None:
        self._configured = configured
        self._source: ChannelSummary | None = None

    def use(self, source: ChannelSummary) -> None:
        self._source = source

    def health(self) -> dict[str, Any]:
        if self._source is not None:
            return self._source.health_summary()
        return {"channels": {}, "channelOrder": [], "channelLabels": {}}

    def lines(self) -> list[str]:
        if self._source is not None:
            return self._source.summary_lines()
        return [f"{name}: configured, not running (this gateway has no {name} channel yet)" for name in self._configured]


class Health:
    def __init__(self, agents: AgentSettings, heartbeats: HeartbeatReport, boot: Boot, events: EventSink, versions: StateVersion, stores: SessionStores, stability: Stability, clock: IReactorTime, channels: ChannelReport | None = None) -> None:
        self.agents = agents
        self.heartbeats = heartbeats
        self.channels = channels if channels is not None else ChannelReport(())
        self.boot = boot
        self.events = events
        self.versions = versions
        self.stores = stores
        self.stability = stability
        self._cache: dict[str, Any] | None = None
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = clock

    def snapshot(self) -> dict[str, Any]:
        """The last snapshot (a fresh one if there is none yet), with the channels as they are now (in memory: cheap)."""
        if self._cache is None:
            return self.refresh()
        return {**self._cache, **self.channels.health()}

    def refresh(self) -> dict[str, Any]:
        started = time.monotonic()
        now = self.boot.now_ms()
        default_id = self.agents.default_id
        agents = []
        for agent in agent_rows(self.agents):
            entry = {
                "agentId": agent["id"],
                "isDefault": agent["id"] == default_id,
                "heartbeat": self.heartbeats.summary(),
                "sessions": health_sessions(store_of(self.stores, agent["id"]), now),
            }
            if "name" in agent:
                entry["name"] = agent["name"]
            agents.append(entry)
        default = next(a for a in agents if a["isDefault"])
        snapshot = {
            "ok": True,
            "ts": now,
            "durationMs": int((time.monotonic() - started) * 1000),
            "eventLoop": self.stability.event_loop(),
            **self.channels.health(),
            "heartbeatSeconds": self.heartbeats.seconds(),
            "defaultAgentId": default_id,
            "agents": agents,
            "sessions": default["sessions"],
        }
        self._cache = snapshot
        self.versions.health += 1
        self.events.broadcast("health", snapshot)
        return snapshot

    def start(self) -> None:
        self.refresh()
        self._loop.start(HEALTH_REFRESH_MS / 1000, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
