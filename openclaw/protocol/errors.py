# -*- test-case-name: tests.test_protocol -*-
"""Error codes and the error shape C{{code, message, details?, retryable?, retryAfterMs?}}."""

from __future__ import annotations

from typing import Any

NOT_LINKED = "NOT_LINKED"
NOT_PAIRED = "NOT_PAIRED"
AGENT_TIMEOUT = "AGENT_TIMEOUT"
INVALID_REQUEST = "INVALID_REQUEST"
FORBIDDEN = "FORBIDDEN"
UNAVAILABLE = "UNAVAILABLE"


class InvalidInput(ValueError):
    """
    A value from a client that cannot be used (a bad id, key, name or path),
    found wherever it is checked, however deep. The dispatcher answers
    C{INVALID_REQUEST} with the message and logs it at debug level: bad input
    is the client's mistake, not the gateway's failure.
    """


class GatewayError(Exception):
    """
    A request failed in a way the client is told about. C{payload}, when set,
    goes out beside the error (upstream's failed C{agent} run carries one).
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
        retry_after_ms: int | None = None,
        payload: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms
        self.payload = payload

    def shape(self) -> dict[str, Any]:
        shape: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            shape["details"] = self.details
        if self.retryable is not None:
            shape["retryable"] = self.retryable
        if self.retry_after_ms is not None:
            shape["retryAfterMs"] = self.retry_after_ms
        return shape


class HandshakeFailed(GatewayError):
    """A connect that fails: answered (unless C{respond} is false), then closed."""

    def __init__(self, code: str, message: str, close_code: int = 1008, close_reason: str | None = None, respond: bool = True, **kw: Any) -> None:
        super().__init__(code, message, **kw)
        self.close_code = close_code
        self.close_reason = message if close_reason is None else close_reason
        self.respond = respond


def invalid(message: str, details: dict[str, Any] | None = None) -> GatewayError:
    return GatewayError(INVALID_REQUEST, message, details)
