"""diagnostics.stability: event-loop lag on the injected clock, memory, load, a bounded record."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.gateway.stability import SAMPLE_INTERVAL, Stability, rss_bytes
from tests.wsclient import GatewayMixin, connect_params


class RecorderTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.load = {"connections": 2, "nodes": 1, "runs": {"active": 1, "queued": 3}, "uptimeMs": 0}
        self.stability = Stability(self.clock, lambda: dict(self.load), rss=lambda: 123456, capacity=10)
        self.stability.start()
        self.addCleanup(self.stability.stop)

    def test_lag_measured_on_the_clock(self):
        """A probe due in 1 s that runs at 1.5 s measured 500 ms of lag; on time is 0."""
        self.clock.advance(1.0)
        self.clock.advance(1.5)
        self.assertEqual(list(self.stability.lags_ms), [0.0, 500.0])
        loop = self.stability.event_loop()
        self.assertEqual((loop["delayMaxMs"], loop["delayP99Ms"], loop["degraded"], loop["reasons"]), (500.0, 500.0, False, []))

    def test_liveness_warning(self):
        """A probe late by a second or more records a warning and marks the loop degraded."""
        self.clock.advance(3.0)
        warning = [r for r in self.stability.records if r["type"] == "diagnostic.liveness.warning"]
        self.assertEqual([(w["durationMs"], w["eventLoopDelayMaxMs"], w["level"]) for w in warning], [(2000, 2000.0, "warning")])
        loop = self.stability.event_loop()
        self.assertEqual((loop["degraded"], loop["reasons"], loop["degradedSinceMs"]), (True, ["event_loop_delay"], 3000))

    def test_samples_and_snapshot(self):
        """Memory and load records at start and every 30 s; snapshot filters, limits and summarises."""
        first = self.stability.snapshot()
        self.assertEqual([r["type"] for r in first["events"]], ["diagnostic.memory.sample", "diagnostic.heartbeat"])
        beat = first["events"][1]
        self.assertEqual((beat["active"], beat["queued"], beat["connections"], beat["nodes"]), (1, 3, 2, 1))
        self.assertEqual(first["summary"]["memory"]["latest"], {"rssBytes": 123456})
        self.assertEqual((first["firstSeq"], first["lastSeq"], first["count"], first["capacity"]), (1, 2, 2, 10))
        self.assertEqual(first["live"]["runs"], {"active": 1, "queued": 3})
        for _ in range(int(SAMPLE_INTERVAL)):
            self.clock.advance(1.0)
        memory = self.stability.snapshot(type="diagnostic.memory.sample")
        self.assertEqual((memory["count"], memory["summary"]["byType"]), (2, {"diagnostic.memory.sample": 2}))
        later = self.stability.snapshot(limit=1, since_seq=2)
        self.assertEqual((later["count"], [r["seq"] for r in later["events"]]), (2, [4]))
        self.assertEqual(self.stability.snapshot(type="nothing")["events"], [])
        self.assertNotIn("firstSeq", self.stability.snapshot(type="nothing"))

    def test_bounded(self):
        """Past its capacity the record drops the oldest and counts them."""
        for i in range(25):
            self.stability.record("x", n=i)
        snap = self.stability.snapshot(limit=1000)
        self.assertEqual((snap["count"], snap["dropped"], snap["events"][-1]["n"]), (10, 17, 24))

    def test_stop(self):
        """stop() leaves nothing scheduled."""
        self.stability.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rss(self):
        """The RSS figure is this process's, read from the kernel."""
        self.assertGreater(rss_bytes(), 10 * 1024 * 1024)


class MethodTests(GatewayMixin, TestCase):
    async def test_over_the_wire(self):
        """operator.read may ask; the CLI's params work; bad params are INVALID_REQUEST; figures are live."""
        await self.gateway()
        ws, _ = await self.connect(connect_params(protocol=4, client_id="cli", mode="cli", scopes=["operator.read"]))
        res = await ws.request("diagnostics.stability", {"limit": 25})
        self.assertTrue(res["ok"], res)
        snap = res["payload"]
        self.assertEqual(set(snap) >= {"generatedAt", "capacity", "count", "dropped", "events", "summary", "live"}, True)
        self.assertGreaterEqual(snap["live"]["connections"], 1)
        self.assertGreater(snap["live"]["memory"]["rssBytes"], 0)
        self.assertIn("diagnostic.heartbeat", snap["summary"]["byType"])
        bad = await ws.request("diagnostics.stability", {"limit": 0})
        self.assertEqual(bad["error"]["code"], "INVALID_REQUEST")
        health = (await ws.request("health"))["payload"]
        self.assertEqual(set(health["eventLoop"]), {"degraded", "degradedSinceMs", "reasons", "intervalMs", "delayP99Ms", "delayMaxMs", "utilization", "cpuCoreRatio"})
