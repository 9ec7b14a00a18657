# -*- test-case-name: tests.test_ws -*-
"""Who is at the other end of a connection, as the transport saw it."""

from __future__ import annotations

import attrs


@attrs.frozen
class Peer:
    ip: str  # the client's address (behind a trusted proxy: the one it forwarded)
    local: bool  # direct from loopback, with a local Host
    origin: str | None = None  # a browser's Origin
    tailscale_user: str | None = None  # a login `tailscale whois` confirmed for a connect through Serve (allowTailscale)
