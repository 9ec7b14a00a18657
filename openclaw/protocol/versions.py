# -*- test-case-name: tests.test_protocol -*-
"""Protocol generations this gateway speaks, their limits, and negotiation."""

from __future__ import annotations

import attrs

PREAUTH_MAX_PAYLOAD = 65536
HANDSHAKE_TIMEOUT = 10.0  # seconds; v3's value, applied before a version is known
TICK_INTERVAL_MS = 30000
HEALTH_REFRESH_MS = 60000
CLOSE_REASON_MAX = 120


@attrs.frozen
class Version:
    number: int
    max_payload: int
    max_buffered: int
    signature_skew_ms: int
    # v3 answers a missing scope with INVALID_REQUEST; v4 with FORBIDDEN + details.
    forbidden_code: bool

    def policy(self) -> dict[str, int]:
        return {"maxPayload": self.max_payload, "maxBufferedBytes": self.max_buffered, "tickIntervalMs": TICK_INTERVAL_MS}


V3 = Version(3, 524288, 1572864, 600_000, forbidden_code=False)
V4 = Version(4, 26214400, 52428800, 120_000, forbidden_code=True)
SUPPORTED = (V4, V3)  # highest first


def negotiate(min_protocol: int, max_protocol: int) -> Version | None:
    """The highest version in both ranges, or None."""
    for version in SUPPORTED:
        if min_protocol <= version.number <= max_protocol:
            return version
    return None


def truncate_reason(reason: str, limit: int = CLOSE_REASON_MAX) -> str:
    """Cut a close reason to C{limit} UTF-8 bytes on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", "ignore")


# v4 server capabilities (hello-ok.features.capabilities), only those implemented here:
# published-model-catalog: models.list answers from this gateway's catalog (includeDetails, availability).
CAPABILITIES = ["published-model-catalog"]
# Capabilities the challenge announces because they change what a client sends in connect
# (upstream: model-catalog-snapshot, not implemented here).
CHALLENGE_CAPABILITIES: list[str] = []
