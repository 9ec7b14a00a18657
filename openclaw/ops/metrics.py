# -*- test-case-name: tests.test_metrics -*-
"""
C{GET /metrics}: Prometheus text, from a registry of this service's own
(never the global default: two gateways in one process each have theirs).

Figures are read when scraped, through L{GatewayFigures} (a small typed port;
L{CoreFigures} adapts the core's collaborators to it: connections and their
send stats, the agent runtime, the node registry, health, boot); scheduled
work's figures through L{CronFigures} (L{CronCounts} over the scheduler). Requests are
counted by one hook at the dispatch point: the served L{Methods}' meter
(L{Meter.wrap} around the handler, for WebSocket and bridge requests alike).
Agent runs are counted once each as they finish, harvested from the runtime's
recent runs at every scrape and every L{HARVEST_INTERVAL} seconds.

Unauthenticated only when the gateway listens on loopback alone and the
request comes straight from loopback; otherwise the gateway's bearer token.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import attrs
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from twisted.application.service import IServiceCollection, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from openclaw import __version__
from openclaw.agent.runtime import AgentRuntime
from openclaw.config.settings import is_loopback
from openclaw.cron.service import CronService
from openclaw.gateway.boot import Boot
from openclaw.gateway.connections import Connections
from openclaw.gateway.core import GatewayCore
from openclaw.gateway.health import Health
from openclaw.nodes.registry import NodeRegistry
from openclaw.protocol.dispatch import Caller, Handler, TwoPhase
from openclaw.protocol.errors import GatewayError, InvalidInput
from openclaw.web.bearer import Bearer, BearerAuth
from openclaw.web.jsonpage import JsonError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format generate_latest writes (as upstream serves it)
HARVEST_INTERVAL = 10.0  # runs stay in the runtime's window for 300 s (up to 1000 of them)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RUN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# -- the port the figures come through


@attrs.frozen
class FrameFigures:
    sent: int
    dropped_closed: int
    dropped_slow: int
    slow_consumers: int


@attrs.frozen
class RunFigure:
    run_id: str
    done: bool
    status: str
    seconds: float | None
    error_kind: str | None


class GatewayFigures(Protocol):
    """What the gateway knows right now, for a scrape."""

    def connections_by_role(self) -> Mapping[str, int]: ...

    def sockets(self) -> int: ...

    def frames(self) -> FrameFigures: ...

    def runs(self) -> Iterable[RunFigure]: ...

    def runs_active(self) -> int: ...

    def runs_queued(self) -> int: ...

    def nodes(self) -> int: ...

    def channels(self) -> Mapping[str, bool]: ...

    def uptime(self) -> float: ...


class CoreFigures:
    """L{GatewayFigures} over the core's collaborators, read at each scrape."""

    def __init__(self, connections: Connections, agent: AgentRuntime, nodes: NodeRegistry, health: Health, boot: Boot) -> None:
        self.connections = connections
        self.agent = agent
        self.node_registry = nodes
        self.health = health
        self.boot = boot

    @classmethod
    def of(cls, core: GatewayCore) -> CoreFigures:
        return cls(core.connections, core.agent, core.nodes, core.health, core.boot)

    def connections_by_role(self) -> Mapping[str, int]:
        counts = {"operator": 0, "node": 0}
        for conn in self.connections:
            role = conn.role if conn.role in counts else "other"
            counts[role] = counts.get(role, 0) + 1
        return counts

    def sockets(self) -> int:
        return self.connections.open_sockets()

    def frames(self) -> FrameFigures:
        s = self.connections.stats
        return FrameFigures(s.sent, s.dropped, s.dropped_slow, s.slow_consumers)

    def runs(self) -> Iterable[RunFigure]:
        figures = []
        for _, run in list(self.agent.runs.values()):
            seconds = (run.ended_at - run.started_at) / 1000 if run.ended_at and run.started_at else None
            figures.append(RunFigure(run.run_id, run.outcome.done, run.status, seconds, run.error_kind))
        return figures

    def runs_active(self) -> int:
        return len(self.agent.active)

    def runs_queued(self) -> int:
        return sum(len(q) for q in self.agent.queued.values())

    def nodes(self) -> int:
        return len(self.node_registry.links)

    def channels(self) -> Mapping[str, bool]:
        # The last health snapshot (taken at start, then every 60 s): a scrape never refreshes it.
        channels = self.health.snapshot().get("channels") or {}
        return {str(k): bool(v.get("connected") or v.get("running")) for k, v in channels.items() if isinstance(v, dict)}

    def uptime(self) -> float:
        return self.boot.uptime_ms() / 1000


@attrs.frozen
class CronFigure:
    jobs_enabled: int
    jobs_disabled: int
    jobs_failing: int  # enabled jobs whose last run(s) failed
    runs_active: int
    runs: Mapping[str, int]  # recorded since start, by status


class CronFigures(Protocol):
    """Scheduled work right now, for a scrape."""

    def cron(self) -> CronFigure: ...


class CronCounts:
    """L{CronFigures} over the scheduler's jobs in memory (a scrape reads no file)."""

    def __init__(self, cron: CronService) -> None:
        self.scheduler = cron

    def cron(self) -> CronFigure:
        jobs = list(self.scheduler.jobs.values())
        enabled = sum(1 for j in jobs if j.enabled)
        failing = sum(1 for j in jobs if j.enabled and j.state.consecutive_errors > 0)
        active = sum(1 for j in jobs if self.scheduler.is_running(j.id))
        return CronFigure(enabled, len(jobs) - enabled, failing, active, dict(self.scheduler.finished))


# -- requests: one hook at the dispatch point


def outcome_of(error: BaseException | Failure | None) -> str:
    """ok; error (a GatewayError the client gets); invalid (bad params); failed (our bug)."""
    if error is None:
        return "ok"
    value = error.value if isinstance(error, Failure) else error
    if isinstance(value, InvalidInput):
        return "invalid"
    if isinstance(value, GatewayError):
        return "error"
    return "failed"


class Meter:
    """Counts requests by method and outcome, and times them until their (final) answer."""

    def __init__(self, registry: CollectorRegistry, clock: IReactorTime) -> None:
        self.clock = clock
        self.requests = Counter("openclaw_requests", "Requests dispatched to a method, by outcome.", ["method", "outcome"], registry=registry)
        self.latency = Histogram("openclaw_request_duration_seconds", "Time from a request to its (final) response.", ["method"], buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, method: str, started: float, error: BaseException | Failure | None) -> None:
        self.requests.labels(method, outcome_of(error)).inc()
        self.latency.labels(method).observe(max(0.0, self.clock.seconds() - started))

    def wrap(self, method: str, handler: Handler) -> Handler:
        def metered(caller: Caller, params: Any) -> Any:
            started = self.clock.seconds()
            try:
                result = handler(caller, params)
            except Exception as e:
                self.observe(method, started, e)
                raise
            if isinstance(result, TwoPhase):  # timed until the final answer
                result.final.addBoth(self._done, method, started)
                return result
            if inspect.iscoroutine(result):
                result = Deferred.fromCoroutine(result)
            if isinstance(result, Deferred):
                return result.addBoth(self._done, method, started)
            self.observe(method, started, None)
            return result

        return metered

    def _done(self, value: Any, method: str, started: float) -> Any:
        self.observe(method, started, value if isinstance(value, Failure) else None)
        return value


# -- the registry


class _Snapshot:
    """Gauges and counters read from the figures at scrape time."""

    def __init__(self, figures: GatewayFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Metric]:
        f = self.figures
        connections = GaugeMetricFamily("openclaw_connections", "Authenticated WebSocket connections, by role.", labels=["role"])
        for role, count in sorted(f.connections_by_role().items()):
            connections.add_metric([role], count)
        yield connections
        yield GaugeMetricFamily("openclaw_sockets_open", "WebSocket sockets open (authenticated or not).", value=f.sockets())
        frames = f.frames()
        yield CounterMetricFamily("openclaw_frames_sent", "Frames (events and responses) written to sockets.", value=frames.sent)
        dropped = CounterMetricFamily("openclaw_frames_dropped", "Frames not delivered: socket closing (closed) or droppable event for a slow reader (slow).", labels=["reason"])
        dropped.add_metric(["closed"], frames.dropped_closed)
        dropped.add_metric(["slow"], frames.dropped_slow)
        yield dropped
        yield CounterMetricFamily("openclaw_slow_consumer_closes", "Connections closed 1008 for not reading.", value=frames.slow_consumers)
        yield GaugeMetricFamily("openclaw_agent_runs_active", "Agent runs running now.", value=f.runs_active())
        yield GaugeMetricFamily("openclaw_agent_runs_queued", "Agent runs waiting for their session.", value=f.runs_queued())
        yield GaugeMetricFamily("openclaw_nodes_connected", "Nodes connected (WebSocket and bridge).", value=f.nodes())
        channels = GaugeMetricFamily("openclaw_channel_connected", "Channel connection state (1 connected, 0 not).", labels=["channel"])
        for name, up in sorted(f.channels().items()):
            channels.add_metric([name], 1 if up else 0)
        yield channels
        yield GaugeMetricFamily("openclaw_uptime_seconds", "Seconds since the gateway started.", value=f.uptime())
        info = GaugeMetricFamily("openclaw_build_info", "The gateway's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


class _CronSnapshot:
    """Scheduled work's gauges and counters, read at scrape time."""

    def __init__(self, figures: CronFigures) -> None:
        self.figures = figures

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Metric]:
        f = self.figures.cron()
        jobs = GaugeMetricFamily("openclaw_cron_jobs", "Cron jobs in the store, by state.", labels=["state"])
        jobs.add_metric(["enabled"], f.jobs_enabled)
        jobs.add_metric(["disabled"], f.jobs_disabled)
        yield jobs
        yield GaugeMetricFamily("openclaw_cron_jobs_failing", "Enabled cron jobs whose last run failed.", value=f.jobs_failing)
        yield GaugeMetricFamily("openclaw_cron_runs_active", "Cron jobs running now.", value=f.runs_active)
        runs = CounterMetricFamily("openclaw_cron_runs", "Cron runs recorded since start, by status (ok, error, skipped).", labels=["status"])
        for status in sorted({"ok", "error", "skipped", *f.runs}):
            runs.add_metric([status], f.runs.get(status, 0))
        yield runs


class GatewayMetrics:
    """One gateway's registry, meter and run counters."""

    def __init__(self, figures: GatewayFigures, clock: IReactorTime, cron: CronFigures | None = None) -> None:
        self.figures = figures
        self.registry = CollectorRegistry(auto_describe=True)
        self.meter = Meter(self.registry, clock)
        self.runs = Counter("openclaw_agent_runs", "Agent runs finished, by status (ok, error, timeout, aborted).", ["status"], registry=self.registry)
        self.run_seconds = Histogram("openclaw_agent_run_duration_seconds", "Agent run duration, start to end.", buckets=RUN_BUCKETS, registry=self.registry)
        self.provider_errors = Counter("openclaw_model_provider_errors", "Runs that ended with a model provider error, by kind.", ["kind"], registry=self.registry)
        self.registry.register(_Snapshot(figures))
        if cron is not None:
            self.registry.register(_CronSnapshot(cron))
        ProcessCollector(namespace="", registry=self.registry)  # process_resident_memory_bytes, process_open_fds, ...
        self._counted: set[str] = set()

    def harvest(self) -> None:
        """Count each finished run once; forget the ones the runtime has forgotten."""
        seen = set()
        for run in self.figures.runs():
            seen.add(run.run_id)
            if not run.done or run.run_id in self._counted:
                continue
            self._counted.add(run.run_id)
            self.runs.labels(run.status).inc()
            if run.seconds is not None:
                self.run_seconds.observe(run.seconds)
            if run.status == "error" and run.error_kind:
                self.provider_errors.labels(run.error_kind).inc()
        self._counted &= seen

    def scrape(self) -> bytes:
        self.harvest()
        return generate_latest(self.registry)


class HarvestService(Service):
    """Harvests finished runs between scrapes, so none leaves the runtime's window uncounted."""

    def __init__(self, metrics: GatewayMetrics, clock: IReactorTime) -> None:
        self.loop = LoopingCall(metrics.harvest)
        self.loop.clock = clock

    def startService(self) -> None:
        super().startService()
        self.loop.start(HARVEST_INTERVAL, now=False)

    def stopService(self) -> None:
        if self.loop.running:
            self.loop.stop()
        super().stopService()


class MetricsPage(Resource):
    """C{GET /metrics}; C{authorize(request)} decides for requests that are not loopback-only."""

    isLeaf = True

    def __init__(self, metrics: GatewayMetrics, open_to: Callable[[Request], bool], authorize: Callable[[Request], Bearer]) -> None:
        super().__init__()
        self.metrics = metrics
        self.open_to = open_to
        self.authorize = authorize

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return JsonError(404, "not_found", "Not Found").render(request)
        if not self.open_to(request):
            verdict = self.authorize(request)
            if not verdict.ok:
                if verdict.retry_after is not None:
                    request.setHeader(b"Retry-After", str(verdict.retry_after).encode())
                    return JsonError(429, "rate_limited", "Too many failed attempts; retry later.").render(request)
                request.setHeader(b"WWW-Authenticate", b'Bearer realm="openclaw"')
                return JsonError(401, "unauthorized", "Send the gateway token as Authorization: Bearer <token>.").render(request)
        body = self.metrics.scrape()
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return body


def install_metrics(parent: IServiceCollection, root: Resource, core: GatewayCore, bearer: BearerAuth, hosts: Sequence[str], cron: CronService | None = None) -> GatewayMetrics:
    """
    Wire C{GET /metrics} into C{root}, the request meter into the core's
    served methods, and the run harvester into C{parent} (one call, at build).
    """
    metrics = GatewayMetrics(CoreFigures.of(core), core.clock, CronCounts(cron) if cron is not None else None)
    core.methods.meter = metrics.meter
    loopback_only = all(is_loopback(h) for h in hosts)

    def open_to(request: Request) -> bool:
        if not loopback_only:
            return False
        peer = getattr(request.getClientAddress(), "host", "") or ""
        forwarded = any(request.getHeader(h) for h in (b"x-forwarded-for", b"x-real-ip", b"forwarded"))
        return is_loopback(peer) and not forwarded  # Tailscale Serve and other proxies arrive on loopback too

    root.putChild(b"metrics", MetricsPage(metrics, open_to, bearer.authorize))
    HarvestService(metrics, core.clock).setServiceParent(parent)
    return metrics
