"""GET /metrics: Prometheus text parsed with prometheus_client's own parser; figures from a live gateway."""

from __future__ import annotations

import time

import attrs
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.protocol.dispatch import TwoPhase
from openclaw.ops.metrics import CoreFigures, CronFigure, FrameFigures, GatewayMetrics, Meter, RunFigure
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError, InvalidInput
from tests.fakes import Reply, openai_text, start_fake
from tests.test_agent import model_config
from tests.test_bridge import Harness
from tests.wsclient import TOKEN, GatewayMixin, connect_params


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), via prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@attrs.define
class Figures:
    """A GatewayFigures for unit tests."""

    run_list: list[RunFigure] = attrs.field(factory=list)

    def connections_by_role(self):
        return {"operator": 2, "node": 1}

    def sockets(self):
        return 4

    def frames(self):
        return FrameFigures(10, 2, 3, 1)

    def runs(self):
        return list(self.run_list)

    def runs_active(self):
        return 1

    def runs_queued(self):
        return 0

    def nodes(self):
        return 1

    def channels(self):
        return {"telegram": True, "discord": False}

    def uptime(self):
        return 12.5


@attrs.define
class Cron:
    """A CronFigures for unit tests."""

    figure: CronFigure = CronFigure(3, 1, 1, 1, {"ok": 5, "error": 2})

    def cron(self):
        return self.figure


class MeterTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.figures = Figures()
        self.metrics = GatewayMetrics(self.figures, self.clock)

    def scrape(self):
        return samples(self.metrics.scrape().decode())

    def test_outcomes_and_latency(self):
        """Sync, async, two-phase and failing handlers: counted by outcome, timed until their (final) answer."""
        meter: Meter = self.metrics.meter
        meter.wrap("health", lambda conn, params: {"ok": True})(None, {})
        pending = Deferred()
        d = meter.wrap("agent.wait", lambda conn, params: pending)(None, {})
        self.clock.advance(2.0)
        pending.callback({})
        self.assertEqual(self.successResultOf(d), {})
        final = Deferred()
        two = meter.wrap("agent", lambda conn, params: TwoPhase({"status": "accepted"}, final))(None, {})
        self.assertIsInstance(two, TwoPhase)
        self.clock.advance(0.5)
        final.errback(GatewayError(INVALID_REQUEST, "no"))
        self.failureResultOf(two.final, GatewayError)

        def invalid(conn, params):
            raise InvalidInput("bad key")

        def broken(conn, params):
            raise KeyError("bug")

        self.assertRaises(InvalidInput, meter.wrap("sessions.get", invalid), None, {})
        self.assertRaises(KeyError, meter.wrap("status", broken), None, {})

        async def coroutine(conn, params):
            return 1

        self.assertEqual(self.successResultOf(meter.wrap("models.list", coroutine)(None, {})), 1)
        got = self.scrape()
        for method, outcome in (("health", "ok"), ("agent.wait", "ok"), ("agent", "error"), ("sessions.get", "invalid"), ("status", "failed"), ("models.list", "ok")):
            self.assertEqual(got[("openclaw_requests_total", (("method", method), ("outcome", outcome)))], 1.0, method)
        self.assertEqual(got[("openclaw_request_duration_seconds_sum", (("method", "agent.wait"),))], 2.0)
        self.assertEqual(got[("openclaw_request_duration_seconds_bucket", (("le", "1.0"), ("method", "agent.wait")))], 0.0)
        self.assertEqual(got[("openclaw_request_duration_seconds_bucket", (("le", "2.5"), ("method", "agent.wait")))], 1.0)
        self.assertEqual(got[("openclaw_request_duration_seconds_sum", (("method", "agent"),))], 0.5)

    def test_snapshot_figures(self):
        """Connections by role, frames, slow consumers, nodes, channels, process RSS and fds."""
        got = self.scrape()
        self.assertEqual(got[("openclaw_connections", (("role", "operator"),))], 2)
        self.assertEqual(got[("openclaw_connections", (("role", "node"),))], 1)
        self.assertEqual(got[("openclaw_frames_sent_total", ())], 10)
        self.assertEqual(got[("openclaw_frames_dropped_total", (("reason", "closed"),))], 2)
        self.assertEqual(got[("openclaw_frames_dropped_total", (("reason", "slow"),))], 3)
        self.assertEqual(got[("openclaw_slow_consumer_closes_total", ())], 1)
        self.assertEqual(got[("openclaw_nodes_connected", ())], 1)
        self.assertEqual(got[("openclaw_channel_connected", (("channel", "telegram"),))], 1)
        self.assertEqual(got[("openclaw_channel_connected", (("channel", "discord"),))], 0)
        self.assertGreater(got[("process_resident_memory_bytes", ())], 1 << 20)
        self.assertGreater(got[("process_open_fds", ())], 2)

    def test_runs_counted_once(self):
        """A finished run counts once however often it is harvested; provider errors by kind; forgotten runs are forgotten."""
        self.figures.run_list = [RunFigure("a", True, "ok", 3.0, None), RunFigure("b", True, "error", 1.0, "rate_limit"), RunFigure("c", False, "running", None, None)]
        self.metrics.harvest()
        self.metrics.harvest()
        got = self.scrape()
        self.assertEqual(got[("openclaw_agent_runs_total", (("status", "ok"),))], 1)
        self.assertEqual(got[("openclaw_agent_runs_total", (("status", "error"),))], 1)
        self.assertEqual(got[("openclaw_model_provider_errors_total", (("kind", "rate_limit"),))], 1)
        self.assertEqual(got[("openclaw_agent_run_duration_seconds_count", ())], 2)
        self.assertEqual(got[("openclaw_agent_run_duration_seconds_sum", ())], 4.0)
        self.figures.run_list = [RunFigure("c", True, "aborted", 0.5, None)]
        self.metrics.harvest()
        self.assertEqual(self.metrics._counted, {"c"})
        self.assertEqual(self.scrape()[("openclaw_agent_runs_total", (("status", "aborted"),))], 1)

    def test_cron_figures(self):
        """Cron jobs by state, failing and running jobs, runs by status (every status shown, zero included)."""
        got = samples(GatewayMetrics(Figures(), Clock(), Cron()).scrape().decode())
        self.assertEqual(got[("openclaw_cron_jobs", (("state", "enabled"),))], 3)
        self.assertEqual(got[("openclaw_cron_jobs", (("state", "disabled"),))], 1)
        self.assertEqual(got[("openclaw_cron_jobs_failing", ())], 1)
        self.assertEqual(got[("openclaw_cron_runs_active", ())], 1)
        self.assertEqual(got[("openclaw_cron_runs_total", (("status", "ok"),))], 5)
        self.assertEqual(got[("openclaw_cron_runs_total", (("status", "error"),))], 2)
        self.assertEqual(got[("openclaw_cron_runs_total", (("status", "skipped"),))], 0)
        self.assertNotIn(("openclaw_cron_jobs_failing", ()), self.scrape())  # no scheduler given: no cron figures

    def test_two_registries(self):
        """Each GatewayMetrics has its own registry: two in one process count apart."""
        other = GatewayMetrics(Figures(), Clock())
        other.meter.wrap("health", lambda c, p: 1)(None, {})
        self.assertNotIn(("openclaw_requests_total", (("method", "health"), ("outcome", "ok"))), self.scrape())


class DispatchPointTests(Harness):
    def test_bridge_requests_are_metered(self):
        """The served methods' meter is the dispatch point of both transports: bridge requests count; refused ones do not."""
        metrics = GatewayMetrics(CoreFigures.of(self.core), self.clock)
        self.core.methods.meter = metrics.meter
        proto, transport = self.ready()
        self.send(proto, {"type": "req", "id": "r1", "method": "health"}, {"type": "req", "id": "r2", "method": "config.set", "paramsJSON": "{}"})
        self.assertEqual([f["ok"] for f in self.frames(transport)], [True, False])
        got = samples(metrics.scrape().decode())
        self.assertEqual(got[("openclaw_requests_total", (("method", "health"), ("outcome", "ok")))], 1)
        self.assertNotIn(("openclaw_requests_total", (("method", "config.set"), ("outcome", "error"))), got)  # not allowed over the bridge
        self.assertEqual(got[("openclaw_nodes_connected", ())], 1)

    def test_core_figures(self):
        """CoreFigures reads the core's collaborators: send stats, sockets, uptime on the core's clock, no runs yet."""
        figures = CoreFigures.of(self.core)
        self.core.connections.stats.sent += 3
        self.core.connections.socket_opened()
        self.clock.advance(5)
        self.assertEqual(figures.frames(), FrameFigures(3, 0, 0, 0))
        self.assertEqual(figures.sockets(), 1)
        self.assertEqual(figures.uptime(), 5.0)
        self.assertEqual((list(figures.runs()), figures.runs_active(), figures.runs_queued()), ([], 0, 0))
        self.assertEqual(figures.connections_by_role(), {"operator": 0, "node": 0})


class MetricsEndpointTests(GatewayMixin, TestCase):
    timeout = 60

    async def get(self, path="/metrics", headers=None):
        response = await treq.get(f"http://127.0.0.1:{self.service.port}{path}", headers=headers or {}, persistent=False)
        return response.code, (await response.text()), response.headers

    async def test_live_gateway(self):
        """Loopback-only: open to local scrapes; real requests, connections and a finished run show up."""
        fake, url = await start_fake(self)
        fake.replies.append(openai_text("hi"))
        await self.gateway(**model_config(url))
        ws, res = await self.connect(connect_params(scopes=["operator.admin"]))
        self.assertTrue(res["ok"])
        await ws.request("health")
        await ws.request("no.such.method")  # refused before dispatch: not a method's request
        final = await ws.request("agent", {"message": "hi", "idempotencyKey": "run-1", "sessionKey": "main"})
        self.assertTrue(final["ok"])
        waited = await ws.request("agent.wait", {"runId": "run-1", "timeoutMs": 10000})
        self.assertEqual(waited["payload"]["status"], "ok", waited)
        code, text, headers = await self.get()
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4"))
        got = samples(text)
        self.assertEqual(got[("openclaw_requests_total", (("method", "health"), ("outcome", "ok")))], 1)
        self.assertNotIn(("openclaw_requests_total", (("method", "no.such.method"), ("outcome", "ok"))), got)
        self.assertEqual(got[("openclaw_connections", (("role", "operator"),))], 1)
        self.assertEqual(got[("openclaw_agent_runs_total", (("status", "ok"),))], 1)
        self.assertEqual(got[("openclaw_agent_run_duration_seconds_count", ())], 1)
        self.assertGreater(got[("openclaw_frames_sent_total", ())], 3)
        self.assertEqual(got[("openclaw_uptime_seconds", ())] >= 0, True)

        self.assertEqual(got[("openclaw_cron_jobs", (("state", "enabled"),))], 0)

        at = int(time.time() * 1000) + 3_600_000
        job = (await ws.request("cron.add", {"name": "m", "schedule": {"kind": "at", "atMs": at}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "go"}}))["payload"]
        fake.replies.append(Reply([b'{"error":{"message":"bad request","type":"invalid_request_error"}}'], status=400))
        ran = await ws.request("cron.run", {"id": job["id"], "mode": "force"})
        self.assertTrue(ran["ok"], ran)
        got = samples((await self.get())[1])
        self.assertEqual(got[("openclaw_cron_jobs", (("state", "enabled"),))], 1)
        self.assertEqual(got[("openclaw_cron_runs_total", (("status", "error"),))], 1)
        self.assertEqual(got[("openclaw_cron_jobs_failing", ())], 1)

        forwarded = await self.get(headers={"X-Forwarded-For": "100.64.0.9"})
        self.assertEqual(forwarded[0], 401)  # through a proxy (Serve, a tunnel): auth required
        self.assertEqual((await self.get("/metrics/x"))[0], 404)

    async def test_lan_bind_needs_the_token(self):
        """Bound beyond loopback: no token 401, a wrong one 401, the gateway token 200."""
        await self.gateway(gateway={"bind": "lan"})
        self.assertEqual((await self.get())[0], 401)
        self.assertEqual((await self.get(headers={"Authorization": "Bearer nope"}))[0], 401)
        code, text, _ = await self.get(headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(code, 200)
        self.assertIn(("openclaw_sockets_open", ()), samples(text))

    async def test_two_services_in_one_process(self):
        """Two gateways in one process start (and scrape) with their own registries."""
        first = await self.gateway()
        self.home = None
        second = await self.gateway()
        self.assertIsNot(first.metrics.registry, second.metrics.registry)
        await (await treq.get(f"http://127.0.0.1:{first.port}/metrics", persistent=False)).text()
        for service in (first, second):
            response = await treq.get(f"http://127.0.0.1:{service.port}/metrics", persistent=False)
            self.assertEqual(response.code, 200)
            self.assertIn(("openclaw_sockets_open", ()), samples(await response.text()))

