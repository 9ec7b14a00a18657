# -*- test-case-name: tests.test_pending -*-
"""
Pairing requests that wait for an operator: one JSON file (crash-safe),
expiring 5 minutes after the requester last asked, at most 200 (the oldest
goes first). The device and node pairing stores both keep theirs here.

Requesters (often unauthenticated) add and touch requests as often as they
like: with a clock those changes are coalesced into at most one write per
second (L{openclaw.coalesce}); an operator's decision (C{pop}) is written at
once.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime

from openclaw.coalesce import CoalescedJSON
from openclaw.store import read_json

TTL_MS = 5 * 60 * 1000
LIMIT = 200


Requests = list[dict[str, Any]]  # (a method below is named list)


def _well_formed(request: Any) -> bool:
    return isinstance(request, dict) and isinstance(request.get("requestId"), str) and isinstance(request.get("ts"), int)


class PendingRequests:
    def __init__(self, path: Path, ttl_ms: int = TTL_MS, limit: int = LIMIT, clock: IReactorTime | None = None) -> None:
        self.path = Path(path)
        self.ttl_ms = ttl_ms
        self.limit = limit
        self._items: dict[str, dict[str, Any]] = {}
        self.file = CoalescedJSON(self.path, lambda: self._items, clock)

    def load(self) -> "PendingRequests":
        """Read the file (at start, with the state dir locked); returns self."""
        stored = read_json(self.path, {})
        items = [r for r in (stored.values() if isinstance(stored, dict) else ()) if _well_formed(r)]
        newest = sorted(items, key=lambda r: r["ts"])[-self.limit :]  # an older, larger file is cut to the bound
        self._items = {r["requestId"]: r for r in newest}
        return self

    def _save(self) -> None:
        self.file.changed()

    def flush(self) -> None:
        self.file.flush()

    def expire(self, now_ms: int) -> Requests:
        """Drop and return the requests nobody asked about for the TTL."""
        gone = [r for r in self._items.values() if now_ms - r["ts"] > self.ttl_ms]
        for request in gone:
            del self._items[request["requestId"]]
        if gone:
            self._save()
        return gone

    def list(self, now_ms: int) -> Requests:
        self.expire(now_ms)
        return sorted(self._items.values(), key=lambda r: r["ts"])

    def where(self, field: str, value: Any) -> Requests:
        return [r for r in self._items.values() if r.get(field) == value]

    def add(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        if len(self._items) >= self.limit:
            oldest = min(self._items.values(), key=lambda r: r["ts"])
            del self._items[oldest["requestId"]]
        request = {"requestId": str(uuid.uuid4()), **fields, "ts": now_ms}
        self._items[request["requestId"]] = request
        self._save()
        return request

    def touch(self, request: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The requester asked again: the TTL counts from now."""
        request["ts"] = now_ms
        self._save()
        return request

    def pop(self, request_id: str) -> dict[str, Any] | None:
        request = self._items.pop(request_id, None)
        if request is not None:
            self._save()
            self.flush()
        return request
