# -*- test-case-name: tests.test_http -*-
"""
Bearer auth for the HTTP API routes (C{/v1/*}, C{/tools/invoke}), counted
by the gateway's failure limiter: the same one, under the same address, as
WebSocket connects, so guesses over either lock out both.
"""

from __future__ import annotations

import math
from typing import Sequence

import attrs
from twisted.logger import Logger
from twisted.web.server import Request

from openclaw.gateway.auth import AuthState, FailureLimiter, check_bearer, limiter_key
from openclaw.web.websocket import client_address

log = Logger(namespace="openclaw.http")


@attrs.frozen
class Bearer:
    """C{ok}, or refused; C{retry_after} (whole seconds) when the address is locked out."""

    ok: bool
    retry_after: int | None = None


def _headers(request: Request) -> dict[str, str]:
    return {name.decode("latin-1").lower(): values[0].decode("latin-1") for name, values in request.requestHeaders.getAllRawHeaders() if values}


class BearerAuth:
    """The HTTP routes' check: the secrets in force, counted by the connects' failure limiter."""

    def __init__(self, auth: AuthState, limiter: FailureLimiter, exempt_loopback: bool = True, trusted_proxies: Sequence[str] = ()) -> None:
        self.auth = auth
        self.limiter = limiter
        self.exempt_loopback = exempt_loopback
        self.trusted_proxies = list(trusted_proxies)

    def authorize(self, request: Request) -> Bearer:
        """Check the request's bearer; an accepted one marks the request authenticated."""
        headers = _headers(request)
        peer = getattr(request.getClientAddress(), "host", "") or ""
        ip, local = client_address(peer, headers, self.trusted_proxies)
        key = limiter_key(ip, local, headers.get("origin"), self.exempt_loopback)
        limiter = self.limiter
        if key is not None:
            wait = limiter.retry_after(key)
            if wait is not None:
                return Bearer(False, retry_after=max(1, math.ceil(wait)))
        check = check_bearer(self.auth.current, headers.get("authorization"))
        if not check.ok:
            if key is not None:
                limiter.failed(key)
                if limiter.retry_after(key) is not None:
                    log.info("http auth from {ip} locked out after repeated failures", ip=ip)
            log.debug("http auth refused from {ip}: {reason}", ip=ip, reason=check.reason)
            return Bearer(False)
        if key is not None:
            limiter.succeeded(key)
        request.authenticated = True  # type: ignore[attr-defined]
        return Bearer(True)
