"""The pending pairing-request queue shared by the device and node stores."""

import json
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from openclaw.pending import PendingRequests


class PendingTests(SynchronousTestCase):
    def setUp(self):
        self.path = Path(self.mktemp()) / "pending.json"
        self.queue = PendingRequests(self.path, ttl_ms=1000, limit=3)

    def test_ttl_counts_from_last_ask(self):
        """A request expires TTL after its last touch, not after it was made."""
        request = self.queue.add({"deviceId": "d"}, now_ms=0)
        self.queue.touch(request, now_ms=900)
        self.assertEqual([r["requestId"] for r in self.queue.list(now_ms=1800)], [request["requestId"]])
        self.assertEqual(self.queue.list(now_ms=1901), [])

    def test_bounded_oldest_goes(self):
        """Past the limit the oldest request is dropped."""
        ids = [self.queue.add({"n": i}, now_ms=i)["requestId"] for i in range(4)]
        self.assertEqual([r["requestId"] for r in self.queue.list(now_ms=4)], ids[1:])

    def test_persisted(self):
        """Adds and pops are on disk: a new queue on the same file sees them."""
        keep = self.queue.add({"nodeId": "a"}, now_ms=0)
        gone = self.queue.add({"nodeId": "b"}, now_ms=0)
        self.assertEqual(self.queue.pop(gone["requestId"]), gone)
        self.assertIsNone(self.queue.pop(gone["requestId"]))
        again = PendingRequests(self.path, ttl_ms=1000).load()
        self.assertEqual(again.where("nodeId", "a"), [keep])
        self.assertEqual(again.where("nodeId", "b"), [])


class CoalescingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.path = Path(self.mktemp()) / "pending.json"
        self.queue = PendingRequests(self.path, ttl_ms=60_000, limit=5, clock=self.clock)

    def test_requests_coalesced(self):
        """Adds and touches from requesters write the file once, a second later, not per request."""
        for i in range(20):
            request = self.queue.add({"nodeId": f"n{i}"}, now_ms=i)
            self.queue.touch(request, now_ms=i)
        self.assertFalse(self.path.exists())
        self.clock.advance(1)
        self.assertEqual(len(json.loads(self.path.read_text())), 5)
        self.assertEqual(self.queue.file.writes, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_decision_written_at_once(self):
        """An operator's pop is on disk immediately (with the adds before it)."""
        keep = self.queue.add({"nodeId": "a"}, now_ms=0)
        gone = self.queue.add({"nodeId": "b"}, now_ms=0)
        self.queue.pop(gone["requestId"])
        self.assertEqual(list(json.loads(self.path.read_text())), [keep["requestId"]])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_flush(self):
        """flush() writes what is waiting (shutdown)."""
        self.queue.add({"nodeId": "a"}, now_ms=0)
        self.queue.flush()
        self.assertEqual(len(json.loads(self.path.read_text())), 1)

    def test_oversized_file_cut_on_load(self):
        """A file written before the bound (or damaged) loads as at most `limit` well-formed requests."""
        entries = {str(i): {"requestId": str(i), "ts": i, "nodeId": "x"} for i in range(50)}
        entries["bad"] = {"requestId": "bad"}
        entries["worse"] = "text"
        self.path.parent.mkdir(parents=True)
        self.path.write_text(json.dumps(entries))
        queue = PendingRequests(self.path, ttl_ms=10**12, limit=5).load()
        self.assertEqual([r["requestId"] for r in queue.list(now_ms=100)], ["45", "46", "47", "48", "49"])
