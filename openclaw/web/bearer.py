# -*- test-case-name: tests.test_http -*-
"""
Bearer auth for the HTTP API routes (C{/v1/*}, C{/tools/invoke}), counted
by the hub's failure limiter: the same one, under the same address, as
WebSocket connects, so guesses over either lock out both.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.web.server import Request

from openclaw.gateway.auth import check_bearer, limiter_key
from openclaw.ws import client_address

log = Logger(namespace="openclaw.http")


@attrs.frozen
class Bearer:
    """C{ok}, or refused; C{retry_after} (whole seconds) when the address is locked out."""

    ok: bool
    retry_after: int | None = None


def _headers(request: Request) -> dict[str, str]:
    return {name.decode("latin-1").lower(): values[0].decode("latin-1") for name, values in request.requestHeaders.getAllRawHeaders() if values}


def authorize(hub: Any, request: Request) -> Bearer:
    """Check the request's bearer; an accepted one marks the request authenticated."""
    headers = _headers(request)
    peer = getattr(request.getClientAddress(), "host", "") or ""
    trusted = list(((hub.settings.config.get("gateway") or {}).get("trustedProxies")) or [])
    ip, local = client_address(peer, headers, trusted)
    key = limiter_key(ip, local, headers.get("origin"), hub.exempt_loopback)
    if key is not None:
        wait = hub.limiter.retry_after(key)
        if wait is not None:
            return Bearer(False, retry_after=max(1, math.ceil(wait)))
    check = check_bearer(hub.auth, headers.get("authorization"))
    if not check.ok:
        if key is not None:
            hub.limiter.failed(key)
            if hub.limiter.retry_after(key) is not None:
                log.info("http auth from {ip} locked out after repeated failures", ip=ip)
        log.debug("http auth refused from {ip}: {reason}", ip=ip, reason=check.reason)
        return Bearer(False)
    if key is not None:
        hub.limiter.succeeded(key)
    request.authenticated = True  # type: ignore[attr-defined]
    return Bearer(True)
