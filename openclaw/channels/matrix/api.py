# -*- test-case-name: tests.test_matrix -*-
"""
The Matrix client-server API over treq: JSON requests to
C{<homeserver>/_matrix/client/v3/...} with the access token in the
C{Authorization: Bearer} header (never in a URL), answered with JSON or
C{{"errcode", "error", "retry_after_ms"?}}.

L{map_error} turns the homeserver's errors into the framework's (sans-IO):
C{M_LIMIT_EXCEEDED}/429 waits, C{M_UNKNOWN_TOKEN}/401 stops the account,
C{M_FORBIDDEN} on a send drops it. Bodies are read up to a bound.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from treq.client import HTTPClient

from openclaw.channels.interfaces import AuthFailed, ChannelError, IChannelReactor, Rejected, RetryAfter, Unreachable

PREFIX = "/_matrix/client/v3"
MAX_BODY = 32 * 1024 * 1024  # a first sync of a busy account is large
MAX_ERROR_TEXT = 300


class TokenRefused(AuthFailed):
    """401 / M_UNKNOWN_TOKEN: the access token is gone (logged out, expired, deactivated)."""

    def __init__(self, message: str, soft: bool = False) -> None:
        super().__init__(message)
        self.soft = soft


class MatrixError(ChannelError):
    """Any other homeserver error; C{status} and C{errcode} say which."""

    def __init__(self, message: str, status: int = 0, errcode: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


class Forbidden(Unreachable):
    """403 M_FORBIDDEN: not in the room, not allowed to post, or banned."""


def path(*segments: str) -> str:
    """C{/_matrix/client/v3/a/b} with each segment escaped (room ids hold C{!} and C{:})."""
    return PREFIX + "".join("/" + quote(s, safe="") for s in segments)


def map_error(what: str, status: int, body: Any, retry_header: str | None = None) -> ChannelError:
    """The framework error for a failed request (C{what} names it; no URL, no token)."""
    value = body if isinstance(body, dict) else {}
    errcode = value["errcode"] if isinstance(value.get("errcode"), str) else ""
    error = value["error"] if isinstance(value.get("error"), str) else ""
    text = f"{what}: Matrix {status} {errcode} {error[:MAX_ERROR_TEXT]}".rstrip()
    if status == 429 or errcode == "M_LIMIT_EXCEEDED":
        ms = value.get("retry_after_ms")
        if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0:
            seconds = ms / 1000.0
        else:
            try:
                seconds = float(retry_header) if retry_header else 5.0
            except ValueError:
                seconds = 5.0
        return RetryAfter(seconds, text)
    if errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN") or status == 401:
        return TokenRefused(f"the homeserver refused the access token ({errcode or status}{': ' + error[:200] if error else ''})", bool(value.get("soft_logout")))
    if errcode == "M_USER_DEACTIVATED":
        return AuthFailed(f"the Matrix account is deactivated ({error[:200] or errcode})")
    if status == 403 or errcode == "M_FORBIDDEN":
        return Forbidden(text)
    if status in (400, 413) or errcode in ("M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"):
        return Rejected(text)
    return MatrixError(text, status, errcode)


def describe(e: BaseException) -> str:
    """A network error in words (treq wraps the reasons)."""
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Collect(Protocol):
    """A response body, up to C{limit} bytes (the connection is dropped beyond)."""

    def __init__(self, limit: int, done: Deferred[bytes]) -> None:
        self.limit = limit
        self.done = done
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.done.errback(ChannelError(f"the homeserver's answer is larger than {self.limit} bytes"))
            IPushProducer(self.transport).stopProducing()
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


class MatrixApi:
    def __init__(self, reactor: IChannelReactor, homeserver: str, token: str | None = None) -> None:
        self.reactor = reactor
        self.homeserver = homeserver.rstrip("/")
        self.token = token
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._flying: set[Deferred[tuple[int, Any, str | None]]] = set()
        self.closed = False

    def close(self) -> Deferred[None]:
        """Cancel what is in flight and close kept connections."""
        self.closed = True
        for d in list(self._flying):
            d.cancel()
        return self._pool.closeCachedConnections()

    async def call(
        self,
        method: str,
        url_path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        what: str = "",
        auth: bool = True,
        raw: bytes | None = None,
        content_type: str = "application/octet-stream",
    ) -> Any:
        """The decoded JSON answer; errors per L{map_error}, or L{ChannelError} for network trouble."""
        what = what or f"{method} {url_path.removeprefix(PREFIX)}"
        if self.closed:
            raise ChannelError(f"{what}: the Matrix client is closed")
        timed_out: list[bool] = []
        d = Deferred.fromCoroutine(self._request(method, url_path, body, query, auth, what, raw, content_type))
        self._flying.add(d)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(timeout, expire)
        try:
            status, value, retry = await d
        except CancelledError:
            if timed_out:
                raise ChannelError(f"{what}: no answer from the homeserver within {timeout:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()
        if 200 <= status < 300:
            if not isinstance(value, dict):
                raise MatrixError(f"{what}: the homeserver answered HTTP {status} with a body that is not a JSON object", status)
            return value
        raise map_error(what, status, value, retry)

    async def _request(
        self, method: str, url_path: str, body: Mapping[str, Any] | None, query: Mapping[str, str] | None, auth: bool, what: str, raw: bytes | None, content_type: str
    ) -> tuple[int, Any, str | None]:
        url = self.homeserver + url_path + ("?" + urlencode(query) if query else "")
        headers = Headers({b"Accept": [b"application/json"]})
        if auth and self.token:
            headers.addRawHeader(b"Authorization", b"Bearer " + self.token.encode())
        data = raw
        if raw is not None:
            headers.addRawHeader(b"Content-Type", content_type.encode("latin-1", "replace"))
        elif body is not None:
            data = json.dumps(body).encode()
            headers.addRawHeader(b"Content-Type", b"application/json")
        try:
            response = await self._http.request(method, url, headers=headers, data=data)
            length = response.length if isinstance(response.length, int) else None
            if length is not None and length > MAX_BODY:
                response.deliverBody(_Collect(0, Deferred()))
                raise ChannelError(f"{what}: the homeserver's answer is too large ({length} bytes)")
            done: Deferred[bytes] = Deferred()
            response.deliverBody(_Collect(MAX_BODY, done))
            raw = await done
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None
            raise ChannelError(f"{what}: network error: {describe(e)}") from None
        retry = response.headers.getRawHeaders(b"retry-after")
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            if 200 <= response.code < 300:
                raise MatrixError(f"{what}: the homeserver answered HTTP {response.code} with a body that is not JSON", response.code) from None
            value = {}
        return response.code, value, retry[0].decode("latin-1") if retry else None
