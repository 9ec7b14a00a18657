# -*- test-case-name: tests.test_auth -*-
"""
Shared-secret auth for WebSocket connects and HTTP bearer requests:
constant-time comparison, upstream's messages and detail codes, and the one
per-IP failure limiter both count against.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.config.loader import LoadedConfig
from openclaw.config.settings import AuthSettings, Flags, resolve_auth
from openclaw.protocol.errors import INVALID_REQUEST, HandshakeFailed

log = Logger(namespace="openclaw.gateway")

_LOCAL_HINT = "use this gateway's gateway.auth.token or pair the device"
_MESSAGES = {
    "token_missing": f"unauthorized: gateway token missing ({_LOCAL_HINT})",
    "token_mismatch": f"unauthorized: gateway token mismatch ({_LOCAL_HINT})",
    "token_missing_config": "unauthorized: gateway token not configured on gateway (set gateway.auth.token)",
    "password_missing": "unauthorized: gateway password missing (set the gateway password in the client)",
    "password_mismatch": "unauthorized: gateway password mismatch (set the gateway password in the client)",
    "password_missing_config": "unauthorized: gateway password not configured on gateway (set gateway.auth.password)",
    "rate_limited": "unauthorized: too many failed authentication attempts (retry later)",
    "device_token_mismatch": "unauthorized: device token mismatch (rotate/reissue device token)",
}
_DETAIL_CODES = {
    "token_missing": "AUTH_TOKEN_MISSING",
    "token_mismatch": "AUTH_TOKEN_MISMATCH",
    "token_missing_config": "AUTH_TOKEN_NOT_CONFIGURED",
    "password_missing": "AUTH_PASSWORD_MISSING",
    "password_mismatch": "AUTH_PASSWORD_MISMATCH",
    "password_missing_config": "AUTH_PASSWORD_NOT_CONFIGURED",
    "rate_limited": "AUTH_RATE_LIMITED",
    "device_token_mismatch": "AUTH_DEVICE_TOKEN_MISMATCH",
}
_NEXT_STEP = {
    "token_missing_config": "update_auth_configuration",
    "password_missing_config": "update_auth_configuration",
    "rate_limited": "wait_then_retry",
}


def secret_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@attrs.frozen
class SecretCheck:
    ok: bool
    method: str | None = None
    reason: str | None = None


def check_shared_secret(auth: AuthSettings, given: dict[str, Any]) -> SecretCheck:
    """Check C{connect.params.auth} against the configured mode (token or password)."""
    if auth.mode == "none":
        return SecretCheck(True, "none")
    if auth.mode not in ("token", "password"):
        return SecretCheck(False, reason="unsupported_mode")
    kind = auth.mode
    expected = auth.token if kind == "token" else auth.password
    if not expected:
        return SecretCheck(False, reason=f"{kind}_missing_config")
    supplied = given.get(kind)
    if not supplied:
        return SecretCheck(False, reason=f"{kind}_missing")
    if secret_equal(supplied, expected):
        return SecretCheck(True, kind)
    return SecretCheck(False, reason=f"{kind}_mismatch")


def check_bearer(auth: AuthSettings, header: str | None) -> SecretCheck:
    """Check an HTTP C{Authorization: Bearer <token|password>} header against the configured mode."""
    if auth.mode == "none":
        return SecretCheck(True, "none")
    header = (header or "").strip()
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return check_shared_secret(auth, {auth.mode: given})


def limiter_key(ip: str, local: bool, origin: str | None, exempt_loopback: bool) -> str | None:
    """
    The key a caller's failures count under (its address), or None when it is
    exempt: a direct loopback caller without a browser C{Origin}, unless
    C{gateway.auth.rateLimit.exemptLoopback} is false.
    """
    return None if local and exempt_loopback and origin is None else ip


def auth_failure(reason: str, retry_after_ms: int | None = None, can_retry_with_device_token: bool = False) -> HandshakeFailed:
    message = _MESSAGES.get(reason, "unauthorized")
    details = {
        "code": _DETAIL_CODES.get(reason, "AUTH_UNAUTHORIZED"),
        "authReason": reason,
        "canRetryWithDeviceToken": can_retry_with_device_token,
        "recommendedNextStep": _NEXT_STEP.get(reason, "update_auth_credentials"),
    }
    if retry_after_ms is not None:
        return HandshakeFailed(INVALID_REQUEST, message, details=details, retryable=True, retry_after_ms=retry_after_ms)
    return HandshakeFailed(INVALID_REQUEST, message, details=details)


class FailureLimiter:
    """
    C{max_attempts} failures within C{window} seconds lock an address out for
    C{lockout} seconds. Memory is bounded: at most C{max_keys} addresses.
    """

    def __init__(self, clock: IReactorTime, max_attempts: int = 10, window: float = 60.0, lockout: float = 300.0, max_keys: int = 10_000) -> None:
        self.clock = clock
        self.max_attempts = max_attempts
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, key: str) -> float | None:
        """Seconds until C{key} may try again, or None when it may now."""
        until = self._locked_until.get(key)
        now = self.clock.seconds()
        if until is None:
            return None
        if until <= now:
            del self._locked_until[key]
            return None
        return until - now

    def failed(self, key: str) -> None:
        now = self.clock.seconds()
        recent = [t for t in self._failures.get(key, ()) if now - t < self.window]
        recent.append(now)
        if len(recent) >= self.max_attempts:
            self._locked_until[key] = now + self.lockout
            self._failures.pop(key, None)
        else:
            self._failures[key] = recent
        self._bound(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _bound(self, now: float) -> None:
        if len(self._failures) + len(self._locked_until) <= self.max_keys:
            return
        self._failures = {k: v for k, v in self._failures.items() if now - v[-1] < self.window}
        self._locked_until = {k: v for k, v in self._locked_until.items() if v > now}
        while len(self._failures) > self.max_keys // 2:
            self._failures.pop(next(iter(self._failures)))


class AuthState:
    """
    The shared secrets in force. They are the one part of the config that
    changes without a restart: a new token or password applies to new
    connections, and each C{on_change} listener hears of it (the log
    redactor learns the new values; shared-secret sessions are ended).
    """

    def __init__(self, auth: AuthSettings, flags: Flags) -> None:
        self.current = auth
        self.flags = flags
        self.on_change: list[Callable[[AuthSettings], None]] = []

    def config_changed(self, loaded: LoadedConfig) -> None:
        auth = resolve_auth(loaded.config, loaded.env, self.flags)
        if auth == self.current:
            return
        self.current = auth
        log.info("gateway auth changed; closing shared-secret sessions")
        for listener in list(self.on_change):
            listener(auth)
