"""The pending pairing-request queue shared by the device and node stores."""

from pathlib import Path

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
        again = PendingRequests(self.path, ttl_ms=1000)
        self.assertEqual(again.where("nodeId", "a"), [keep])
        self.assertEqual(again.where("nodeId", "b"), [])
