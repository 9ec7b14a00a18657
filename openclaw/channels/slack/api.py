# -*- test-case-name: tests.test_slack_units -*-
"""
The Slack Web API over treq: C{POST <apiBase>/<method>} with the token in the
C{Authorization} header (never in a URL or a body), answered HTTP 200 with
C{{"ok": true, ...}} or C{{"ok": false, "error": "<code>"}}, except rate
limits: HTTP 429 with C{Retry-After}.

L{map_error} turns Slack's error codes into the framework's errors
(sans-IO). Error texts name the method and Slack's code, never a token.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from openclaw.channels.interfaces import AuthFailed, ChannelError, IChannelReactor, Rejected, RetryAfter, Unreachable

MAX_RESPONSE = 1024 * 1024
DEFAULT_RETRY_AFTER = 5.0

AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type", "missing_scope", "no_permission"})
UNREACHABLE = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "messages_tab_disabled", "team_access_not_granted", "ekm_access_denied", "access_denied", "cannot_dm_bot", "user_disabled"}
)
REJECTED = frozenset({"msg_too_long", "no_text", "too_many_attachments", "metadata_too_large", "as_user_not_supported", "thread_not_found", "duplicate_message_not_found"})
RATE = frozenset({"ratelimited", "rate_limited", "message_limit_exceeded"})
FIX = {
    "botToken": "check channels.slack.botToken (or SLACK_BOT_TOKEN): the Bot User OAuth Token, xoxb-…",
    "appToken": "check channels.slack.appToken (or SLACK_APP_TOKEN): an app-level token, xapp-…, with the connections:write scope",
}


def map_error(method: str, error: str, token: str = "botToken", needed: str | None = None) -> ChannelError:
    """The framework error for Slack's C{{"ok": false, "error": error}} from C{method}."""
    text = f"{method}: Slack error {error}"
    if error in AUTH:
        scope = f" (needs scope {needed})" if needed and error == "missing_scope" else ""
        return AuthFailed(f"Slack refused the {token} on {method} ({error}{scope}): {FIX.get(token, 'check the token')}")
    if error in RATE:
        return RetryAfter(DEFAULT_RETRY_AFTER, text)
    if error in UNREACHABLE or error.startswith("restricted_action"):
        return Unreachable(text)
    if error in REJECTED or error.startswith("invalid_"):
        return Rejected(text)
    return ChannelError(text)


def retry_after(value: bytes | str | None) -> float:
    """Seconds from a C{Retry-After} header (Slack sends whole seconds)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if 0 <= seconds < 86400 else DEFAULT_RETRY_AFTER


def describe(e: BaseException) -> str:
    """A network error in words, without its URL."""
    reasons = getattr(e, "reasons", None)  # ResponseFailed & co wrap failures
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class WebApi:
    """Calls to one Slack API base; each call names the token it uses."""

    def __init__(self, reactor: IChannelReactor, base: str) -> None:
        self.reactor = reactor
        self.base = base.rstrip("/")
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._flying: set[Deferred[Any]] = set()
        self.closed = False

    def close(self) -> Deferred[None]:
        """Cancel what is in flight and close kept connections."""
        self.closed = True
        for d in list(self._flying):
            d.cancel()
        return self._pool.closeCachedConnections()

    async def call(self, method: str, token: str, params: dict[str, Any] | None = None, timeout: float = 30.0, token_name: str = "botToken") -> dict[str, Any]:
        """The answer of a method that said C{ok}; errors per L{map_error}, L{ChannelError} for network trouble."""
        if self.closed:
            raise ChannelError(f"{method}: the Slack client is closed")
        timed_out: list[bool] = []
        d = Deferred.fromCoroutine(self._post(method, token, params))
        self._flying.add(d)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(timeout, expire)
        try:
            status, wait, body = await d
        except CancelledError:
            if timed_out:
                raise ChannelError(f"{method}: no answer from Slack within {timeout:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()
        if status == 429:
            raise RetryAfter(wait, f"{method}: Slack rate limit")
        if status != 200:
            raise ChannelError(f"{method}: Slack answered HTTP {status}")
        try:
            value = json.loads(body)
        except ValueError:
            raise ChannelError(f"{method}: Slack answered with a body that is not JSON") from None
        if not isinstance(value, dict):
            raise ChannelError(f"{method}: Slack answered with an unexpected body")
        if value.get("ok") is True:
            return value
        error = value["error"] if isinstance(value.get("error"), str) else "unknown_error"
        needed = value["needed"] if isinstance(value.get("needed"), str) else None
        raise map_error(method, error[:100], token_name, needed)

    async def _post(self, method: str, token: str, params: dict[str, Any] | None) -> tuple[int, float, bytes]:
        headers = Headers({"Authorization": [f"Bearer {token}"]})
        try:
            if params is None:
                headers.setRawHeaders("Content-Type", ["application/x-www-form-urlencoded"])
                response = await self._http.post(f"{self.base}/{method}", data=b"", headers=headers)
            else:
                headers.setRawHeaders("Content-Type", ["application/json; charset=utf-8"])
                response = await self._http.post(f"{self.base}/{method}", data=json.dumps(params).encode(), headers=headers)
            length = response.length if isinstance(response.length, int) else 0
            if length > MAX_RESPONSE:
                response.deliverBody(_Discard())
                raise ChannelError(f"{method}: Slack's answer is too large ({length} bytes)")
            wait = retry_after(response.headers.getRawHeaders(b"retry-after", [None])[0])
            chunks: list[bytes] = []
            size = [0]

            def take(data: bytes) -> None:
                chunks.append(data)
                size[0] += len(data)
                if size[0] > MAX_RESPONSE:
                    raise ChannelError(f"{method}: Slack's answer is too large")

            await treq.collect(response, take)
            body = b"".join(chunks)
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None  # treq wraps a cancelled request
            raise ChannelError(f"{method}: network error: {describe(e)}") from None
        return response.code, wait, body


class _Discard:
    def makeConnection(self, transport: IPushProducer) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass
