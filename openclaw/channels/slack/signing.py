# -*- test-case-name: tests.test_slack_units -*-
"""
Slack request signing (HTTP mode), sans-IO.

Slack signs each request: C{X-Slack-Signature: v0=<hex>}, the HMAC-SHA256
with the app's signing secret over C{v0:<X-Slack-Request-Timestamp>:<raw
body>}. A request is genuine when the signature matches (compared in
constant time) and the timestamp is within five minutes of now (so a
captured request cannot be replayed later). A blank secret verifies
nothing.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_SKEW = 300.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """C{v0=<hex>} for a request (what Slack sends)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def check(secret: str, timestamp: bytes | None, given: bytes | None, body: bytes, now: float, skew: float = MAX_SKEW) -> str | None:
    """None when the request is Slack's; else why not (safe to log)."""
    if not secret.strip():
        return "no signing secret is configured"
    if not timestamp or not given:
        return "unsigned request"
    try:
        stamp = timestamp.decode("ascii")
        at = int(stamp)
    except (UnicodeDecodeError, ValueError):
        return "bad timestamp"
    if abs(now - at) > skew:
        return "stale timestamp"
    expected = signature(secret, stamp, body).encode("ascii")
    if not hmac.compare_digest(expected, given.strip()):
        return "bad signature"
    return None
