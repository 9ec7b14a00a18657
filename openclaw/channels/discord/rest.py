# -*- test-case-name: tests.test_discord -*-
"""
Discord's REST API over treq: C{<apiBase>/<path>} with C{Authorization: Bot
<token>} and a C{DiscordBot} User-Agent, JSON (or multipart) bodies,
answers in JSON (C{{"message", "code", "errors"?}} on failure).

Requests wait for their rate-limit bucket (L{RateLimits}) instead of earning
a 429; a 429 (its C{retry_after} a float) becomes L{RetryAfter}. A 401 stops
every further request of this client (no loop on a revoked token), and the
invalid requests Discord counts (401, 403, 429) are capped well below the
Cloudflare ban. No header is ever logged or put in an error.
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers

import treq
from treq.client import HTTPClient

from openclaw import __version__
from openclaw.channels.discord.ratelimit import RateLimits
from openclaw.channels.interfaces import AuthFailed, ChannelError, IChannelReactor, Rejected, RetryAfter, Unreachable

API_BASE = "https://discord.com/api/v10"
USER_AGENT = f"DiscordBot (https://github.com/openclaw/openclaw, {__version__})"
MAX_RESPONSE = 8 * 1024 * 1024
INLINE_WAIT = 5.0  # wait this long for a bucket inside the request; longer is the caller's RetryAfter
TOKEN_FIX = "check channels.discord.token (or tokenFile / DISCORD_BOT_TOKEN)"
ACCESS_FIX = "give the bot View Channel and Send Messages there (server settings → the channel → Permissions)"
UNREACHABLE_CODES = {
    10003: "Unknown Channel",
    10013: "Unknown User",
    50001: "Missing Access",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
}


def _status_error(cls: type[ChannelError], text: str, status: int, code: int | None) -> ChannelError:
    error = cls(text)
    error.status = status  # type: ignore[attr-defined]
    error.code = code  # type: ignore[attr-defined]
    return error


def map_error(what: str, status: int, body: Any) -> ChannelError:
    """The framework error for a failed request (not 429, which L{Rest} handles)."""
    body = body if isinstance(body, dict) else {}
    code = body["code"] if isinstance(body.get("code"), int) else None
    message = str(body.get("message") or "")[:200]
    if message.startswith(f"{status}: "):
        message = message[len(f"{status}: ") :]  # Discord writes "401: Unauthorized"
    text = f"{what}: Discord {status}" + (f" {message}" if message else "") + (f" (code {code})" if code else "")
    if status == 401:
        return _status_error(AuthFailed, f"Discord refused the bot token ({status} {message or 'Unauthorized'}): {TOKEN_FIX}", status, code)
    if code in (50001, 50013):
        return _status_error(Unreachable, f"{text}: {ACCESS_FIX}", status, code)
    if code in UNREACHABLE_CODES or status == 403:
        return _status_error(Unreachable, text, status, code)
    if 400 <= status < 500:
        return _status_error(Rejected, text, status, code)
    return _status_error(ChannelError, text, status, code)


def describe(e: BaseException) -> str:
    """A network error in words."""
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class Rest:
    def __init__(self, reactor: IChannelReactor, base: str, token: str, timeout: float = 30.0, limits: RateLimits | None = None) -> None:
        self.reactor = reactor
        self.base = base.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.limits = limits or RateLimits()
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._flying: set[Deferred[Any]] = set()
        self.refused: AuthFailed | None = None  # a 401 seen: no more requests
        self.closed = False
        self.requests = 0

    def close(self) -> Deferred[None]:
        self.closed = True
        for d in list(self._flying):
            d.cancel()
        return self._pool.closeCachedConnections()

    def _headers(self) -> Headers:
        return Headers({b"Authorization": [f"Bot {self._token}".encode()], b"User-Agent": [USER_AGENT.encode()]})

    async def call(
        self,
        method: str,
        path: str,
        route: str,
        major: str = "",
        body: Any = None,
        files: list[tuple[str, str, bytes]] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """
        The decoded answer (None for 204). C{route} names the rate-limit route
        (C{"POST /channels/{id}/messages"}), C{major} its major parameter.
        """
        what = f"{method} {path}"
        for _ in range(8):
            self._usable(what)
            wait = self.limits.wait(route, major, self.reactor.seconds())
            if wait <= 0:
                break
            if wait > INLINE_WAIT:
                raise RetryAfter(wait, f"{what}: waiting for Discord's rate limit")
            await deferLater(self.reactor, wait, lambda: None)
        self._usable(what)  # closed or refused while waiting?
        self.limits.taken(route, major, self.reactor.seconds())
        self.requests += 1
        limit = timeout or self.timeout
        timed_out: list[bool] = []
        d = Deferred.fromCoroutine(self._send(method, path, body, files))
        self._flying.add(d)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(limit, expire)
        try:
            status, headers, raw = await d
        except CancelledError:
            if timed_out:
                raise ChannelError(f"{what}: no answer from Discord within {limit:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()
        now = self.reactor.seconds()
        self.limits.update(route, major, headers, now)
        try:
            value = json.loads(raw) if raw.strip() else None
        except ValueError:
            value = None
            if status < 300:
                raise ChannelError(f"{what}: Discord answered HTTP {status} with a body that is not JSON") from None
        if status < 300:
            return value
        if status == 429:
            retry = self._limited(route, major, headers, value, now)
            scope = "global" if self.limits.global_until > now else headers.get("x-ratelimit-scope", "user")
            raise RetryAfter(retry, f"{what}: Discord rate limit ({scope})")
        if status in (401, 403):
            self.limits.invalid(now)
        error = map_error(what, status, value)
        if isinstance(error, AuthFailed):
            self.refused = error
        raise error

    def _usable(self, what: str) -> None:
        if self.refused is not None:
            raise AuthFailed(str(self.refused))
        if self.closed:
            raise ChannelError(f"{what}: the Discord client is closed")

    def _limited(self, route: str, major: str, headers: dict[str, str], value: Any, now: float) -> float:
        body = value if isinstance(value, dict) else {}
        retry = _float(body.get("retry_after")) or _float(headers.get("retry-after")) or 1.0
        is_global = body.get("global") is True or headers.get("x-ratelimit-global", "").lower() == "true"
        if headers.get("x-ratelimit-scope") != "shared":
            self.limits.invalid(now)
        self.limits.limited(route, major, retry, is_global, now)
        return retry

    async def _send(self, method: str, path: str, body: Any, files: list[tuple[str, str, bytes]] | None) -> tuple[int, dict[str, str], bytes]:
        url = f"{self.base}{path}"
        try:
            if files:
                uploads = [(f"files[{i}]", (name, ctype, FileBodyProducer(io.BytesIO(data)))) for i, (name, ctype, data) in enumerate(files)]
                response = await self._http.request(method, url, headers=self._headers(), data={"payload_json": json.dumps(body or {})}, files=uploads)
            elif body is not None:
                response = await self._http.request(method, url, headers=self._headers(), json=body)
            else:
                response = await self._http.request(method, url, headers=self._headers())
            headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1") for k, v in response.headers.getAllRawHeaders()}
            length = response.length if isinstance(response.length, int) else 0
            if length > MAX_RESPONSE:
                response.deliverBody(_Discard())
                raise ChannelError(f"{method} {path}: Discord's answer is too large ({length} bytes)")
            raw = await treq.content(response)
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None
            raise ChannelError(f"{method} {path.split('?')[0]}: network error: {describe(e)}") from None
        return response.code, headers, raw


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None


class _Discard:
    def makeConnection(self, transport: IPushProducer) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass
