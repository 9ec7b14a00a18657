# -*- test-case-name: tests.test_stability -*-
"""
The gateway's vital signs for C{diagnostics.stability} (the v4 CLI's
C{openclaw gateway stability}) and C{status}.

Event-loop lag is measured on the injected clock: a probe is scheduled every
second, and the time it fires past its due time is the lag. Over the same
window, the reactor thread's CPU time per elapsed second is the loop's
utilization, and the process's CPU time per second its core ratio. Every 30 seconds
(and at start) a memory sample (RSS) and a load record (connections, nodes,
runs) go into a bounded ring of records, shaped as upstream's stability
recorder: C{{seq, ts, type, ...}}. A probe late by a second or more adds a
C{diagnostic.liveness.warning}.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime

CAPACITY = 1000
DEFAULT_LIMIT = 50
PROBE_INTERVAL = 1.0
SAMPLE_INTERVAL = 30.0
LAG_WINDOW = 60  # probes kept for p99/max: the last minute
WARN_LAG_MS = 1000


def rss_bytes() -> int | None:
    """This process's resident set size now (Linux /proc), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            resident = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Stability:
    def __init__(self, clock: IReactorTime, vitals: Callable[[], dict[str, Any]], rss: Callable[[], int | None] = rss_bytes, capacity: int = CAPACITY) -> None:
        self.clock = clock
        self.vitals = vitals  # connections, nodes, runs {active, queued}, uptimeMs
        self.rss = rss
        self.capacity = capacity
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seq = 0
        self.dropped = 0
        self.lags_ms: deque[float] = deque(maxlen=LAG_WINDOW)
        self.cpu: deque[tuple[float, float, float]] = deque(maxlen=LAG_WINDOW + 1)  # (clock, thread CPU, process CPU)
        self.degraded_since: int | None = None
        self._probe_call: Any = None
        self._sample_call: Any = None
        self._due = 0.0

    # -- running

    def start(self) -> None:
        if self._probe_call is not None:
            return
        self._schedule_probe()
        self._sample()

    def stop(self) -> None:
        for call in (self._probe_call, self._sample_call):
            if call is not None and call.active():
                call.cancel()
        self._probe_call = self._sample_call = None

    def _schedule_probe(self) -> None:
        self.cpu.append((self.clock.seconds(), time.thread_time(), time.process_time()))
        self._due = self.clock.seconds() + PROBE_INTERVAL
        self._probe_call = self.clock.callLater(PROBE_INTERVAL, self._probe)

    def _probe(self) -> None:
        lag_ms = max(0.0, (self.clock.seconds() - self._due) * 1000)
        self.lags_ms.append(lag_ms)
        if lag_ms >= WARN_LAG_MS:
            self.degraded_since = self.degraded_since or self.now_ms()
            loop = self.event_loop()
            self.record(
                "diagnostic.liveness.warning",
                level="warning",
                reason="event_loop_delay",
                durationMs=round(lag_ms),
                eventLoopDelayP99Ms=loop["delayP99Ms"],
                eventLoopDelayMaxMs=loop["delayMaxMs"],
            )
        self._schedule_probe()

    def _sample(self) -> None:
        self._sample_call = self.clock.callLater(SAMPLE_INTERVAL, self._sample)
        rss = self.rss()
        if rss is not None:
            self.record("diagnostic.memory.sample", memory={"rssBytes": rss})
        vitals = self.vitals()
        runs = vitals.get("runs") or {}
        self.record(
            "diagnostic.heartbeat",
            active=runs.get("active", 0),
            queued=runs.get("queued", 0),
            connections=vitals.get("connections", 0),
            nodes=vitals.get("nodes", 0),
            uptimeMs=vitals.get("uptimeMs", 0),
        )

    # -- records

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def record(self, type: str, **fields: Any) -> None:
        self.seq += 1
        if len(self.records) == self.capacity:
            self.dropped += 1
        self.records.append({"seq": self.seq, "ts": self.now_ms(), "type": type, **fields})

    def event_loop(self) -> dict[str, Any]:
        """Upstream's C{eventLoop} health (the v4 schema's shape) over the last minute of probes."""
        lags = list(self.lags_ms)
        delayed = bool(lags) and max(lags) >= WARN_LAG_MS
        if not delayed:
            self.degraded_since = None
        utilization = core_ratio = 0.0
        if len(self.cpu) >= 2:
            (t0, thread0, process0), (t1, thread1, process1) = self.cpu[0], self.cpu[-1]
            elapsed = t1 - t0
            if elapsed > 0:
                utilization = min(1.0, max(0.0, (thread1 - thread0) / elapsed))
                core_ratio = max(0.0, (process1 - process0) / elapsed)
        return {
            "degraded": delayed,
            "degradedSinceMs": self.degraded_since if delayed else None,
            "reasons": ["event_loop_delay"] if delayed else [],
            "intervalMs": round(PROBE_INTERVAL * 1000 + (sum(lags) / len(lags) if lags else 0.0), 1),
            "delayP99Ms": round(percentile(lags, 0.99), 1) if lags else 0.0,
            "delayMaxMs": round(max(lags), 1) if lags else 0.0,
            "utilization": round(utilization, 3),
            "cpuCoreRatio": round(core_ratio, 3),
        }

    def snapshot(self, limit: int = DEFAULT_LIMIT, type: str | None = None, since_seq: int | None = None) -> dict[str, Any]:
        """Upstream's stability snapshot, plus C{live}: the figures as of now."""
        chosen = [r for r in self.records if (type is None or r["type"] == type) and (since_seq is None or r["seq"] > since_seq)]
        memory = [r["memory"] for r in chosen if "memory" in r]
        summary: dict[str, Any] = {"byType": dict(Counter(r["type"] for r in chosen))}
        if memory:
            summary["memory"] = {"latest": memory[-1], "maxRssBytes": max(m["rssBytes"] for m in memory), "pressureCount": 0}
        snapshot: dict[str, Any] = {
            "generatedAt": datetime.fromtimestamp(self.clock.seconds(), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "capacity": self.capacity,
            "count": len(chosen),
            "dropped": self.dropped,
            "events": chosen[-limit:],
            "summary": summary,
            "live": self.live(),
        }
        if chosen:
            snapshot["firstSeq"], snapshot["lastSeq"] = chosen[0]["seq"], chosen[-1]["seq"]
        return snapshot

    def live(self) -> dict[str, Any]:
        vitals = self.vitals()
        rss = self.rss()
        return {
            "ts": self.now_ms(),
            "pid": os.getpid(),
            "uptimeMs": vitals.get("uptimeMs", 0),
            "memory": {"rssBytes": rss} if rss is not None else {},
            "eventLoop": {**self.event_loop(), "samples": len(self.lags_ms)},
            "connections": vitals.get("connections", 0),
            "nodes": vitals.get("nodes", 0),
            "runs": vitals.get("runs") or {"active": 0, "queued": 0},
            "cpuSeconds": round(time.process_time(), 3),
        }
