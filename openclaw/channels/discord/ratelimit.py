# -*- test-case-name: tests.test_discord_units -*-
"""
Discord's REST rate limits, as its headers describe them (sans-IO).

Each route (method and path template) with its major parameter (the
channel id) belongs to a bucket that Discord names in C{X-RateLimit-Bucket};
C{X-RateLimit-Remaining} and C{X-RateLimit-Reset-After} (seconds, a float)
say how many requests are left and when the bucket refills. A request to an
exhausted bucket waits for the reset instead of earning a 429. A 429 says
how long to wait in its body's C{retry_after} (a float); C{global: true}
(or C{X-RateLimit-Global}) holds every route. Requests Discord counts as
invalid (401, 403, 429 other than shared) are counted over ten minutes:
Cloudflare bans an address that makes 10,000, so we stop well before.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Mapping

import attrs

BUCKET_LIMIT = 2000  # buckets (and route → bucket names) remembered
INVALID_WINDOW = 600.0
INVALID_LIMIT = 5000  # half of Cloudflare's ban threshold


@attrs.define
class Bucket:
    remaining: int | None = None
    reset_at: float = 0.0
    limit: int | None = None


class RateLimits:
    def __init__(self, bucket_limit: int = BUCKET_LIMIT, invalid_limit: int = INVALID_LIMIT) -> None:
        self.bucket_limit = bucket_limit
        self.invalid_limit = invalid_limit
        self.global_until = 0.0
        self._names: OrderedDict[str, str] = OrderedDict()  # route → Discord's bucket name
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()
        self._invalid: deque[float] = deque()

    def _key(self, route: str, major: str) -> tuple[str, str]:
        return (self._names.get(route, route), major)

    def _bucket(self, route: str, major: str) -> Bucket:
        key = self._key(route, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket()
            while len(self._buckets) > self.bucket_limit:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def wait(self, route: str, major: str, now: float) -> float:
        """Seconds before a request on this route may go (0: now)."""
        wait = max(0.0, self.global_until - now)
        bucket = self._buckets.get(self._key(route, major))
        if bucket is not None and bucket.remaining is not None and bucket.remaining <= 0 and bucket.reset_at > now:
            wait = max(wait, bucket.reset_at - now)
        return wait + self.invalid_wait(now)

    def invalid_wait(self, now: float) -> float:
        """Seconds before we may risk another request, with too many invalid ones in the window."""
        while self._invalid and now - self._invalid[0] >= INVALID_WINDOW:
            self._invalid.popleft()
        if len(self._invalid) < self.invalid_limit:
            return 0.0
        return self._invalid[len(self._invalid) - self.invalid_limit] + INVALID_WINDOW - now

    def taken(self, route: str, major: str, now: float) -> None:
        """A request is going: one fewer left (so concurrent requests do not all go)."""
        bucket = self._bucket(route, major)
        if bucket.reset_at <= now and bucket.limit is not None:
            bucket.remaining = bucket.limit
        if bucket.remaining is not None:
            bucket.remaining -= 1

    def update(self, route: str, major: str, headers: Mapping[str, str], now: float) -> None:
        """Learn the bucket from a response's C{X-RateLimit-*} headers."""
        name = headers.get("x-ratelimit-bucket")
        if name:
            self._names[route] = name
            self._names.move_to_end(route)
            while len(self._names) > self.bucket_limit:
                self._names.popitem(last=False)
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset_after = _number(headers.get("x-ratelimit-reset-after"))
        limit = _number(headers.get("x-ratelimit-limit"))
        if remaining is None and reset_after is None:
            return
        bucket = self._bucket(route, major)
        if remaining is not None:
            bucket.remaining = int(remaining)
        if reset_after is not None:
            bucket.reset_at = now + reset_after
        if limit is not None:
            bucket.limit = int(limit)

    def limited(self, route: str, major: str, retry_after: float, is_global: bool, now: float) -> None:
        """A 429: hold the route (or everything) for C{retry_after} seconds."""
        if is_global:
            self.global_until = max(self.global_until, now + retry_after)
            return
        bucket = self._bucket(route, major)
        bucket.remaining = 0
        bucket.reset_at = max(bucket.reset_at, now + retry_after)

    def invalid(self, now: float) -> None:
        """Count a 401, 403 or (not shared) 429."""
        self._invalid.append(now)
        while len(self._invalid) > self.invalid_limit * 2:
            self._invalid.popleft()

    @property
    def invalid_count(self) -> int:
        return len(self._invalid)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None
