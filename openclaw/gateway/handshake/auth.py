# -*- test-case-name: tests.test_ws -*-
"""
Handshake step: who may connect. The failure limiter first (a locked-out
address is refused before its secret is looked at), then the shared secret
(token or password), else a Tailscale Serve identity the transport confirmed
(C{gateway.auth.allowTailscale}), else the device's own token; and the scopes
a client without a device identity gets.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from openclaw.config.settings import AuthSettings
from openclaw.gateway.auth import FailureLimiter, SecretCheck, auth_failure, check_shared_secret
from openclaw.gateway.devices import PairingStore
from openclaw.gateway.handshake.peer import Peer
from openclaw.protocol.connect import CONTROL_UI_CLIENTS, ROLE_OPERATOR
from openclaw.protocol.errors import INVALID_REQUEST, HandshakeFailed


def authenticate(
    auth: AuthSettings,
    given: dict[str, Any],
    device: dict[str, Any] | None,
    role: str,
    peer: Peer,
    limiter: FailureLimiter,
    exempt_loopback: bool,
    pairing: PairingStore,
    other: Callable[[dict[str, Any]], str | None] | None = None,
) -> str:
    """
    The auth method that let the client in: C{none}, C{token}, C{password},
    C{tailscale} or C{device-token}; or what C{other} (a credential of the role
    asked for: a channel adapter's token) names. Failures count against the
    client's address.

    @raise HandshakeFailed: with upstream's C{AUTH_*} details.
    """
    key = peer.ip
    exempt = peer.local and exempt_loopback and peer.origin is None
    if not exempt:
        wait = limiter.retry_after(key)
        if wait is not None:
            raise auth_failure("rate_limited", retry_after_ms=int(wait * 1000))
    secret = check_shared_secret(auth, given)
    if not secret.ok and peer.tailscale_user:
        secret = SecretCheck(True, "tailscale")  # whois confirmed it (ops/tailscale.py)
    method = secret.method
    if not secret.ok and other is not None:
        method = other(given)
    if method is None and device is not None:
        candidate = given.get("deviceToken") or given.get("token")
        if candidate and pairing.check_token(device.get("id", ""), role, candidate):
            method = "device-token"
        elif given.get("deviceToken"):
            secret = attrs.evolve(secret, reason="device_token_mismatch")
    if method is None:
        if not exempt:
            limiter.failed(key)
        can_retry = secret.reason == "token_mismatch" and device is not None and not given.get("deviceToken")
        raise auth_failure(secret.reason or "unauthorized", can_retry_with_device_token=can_retry)
    limiter.succeeded(key)
    return method


def scopes_without_device(client: dict[str, Any], role: str, requested: list[str], method: str, peer: Peer, allow_insecure: bool) -> list[str]:
    """
    A client without a device identity keeps its requested scopes only when
    trusted: a local CLI or backend helper, auth mode C{none}, or a Control
    UI when C{allowInsecureAuth} is on. Everyone else connects without scopes.

    @raise HandshakeFailed: a Control UI without device identity, not allowed.
    """
    insecure_ui = client["id"] in CONTROL_UI_CLIENTS
    if insecure_ui and not allow_insecure:
        raise HandshakeFailed(
            INVALID_REQUEST,
            "control ui requires device identity (use HTTPS or localhost secure context)",
            details={"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"},
        )
    local_helper = peer.local and peer.origin is None and (
        (client["id"] == "cli" and client["mode"] == "cli") or (client["id"] == "gateway-client" and client["mode"] == "backend")
    )
    trusted = local_helper or method == "none" or insecure_ui  # insecure_ui: allowInsecureAuth opted in
    return requested if trusted and role == ROLE_OPERATOR else []
