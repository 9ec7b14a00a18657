# -*- test-case-name: tests.test_signal -*-
"""
The signal-cli daemon's HTTP interface (C{signal-cli -a +NUM daemon --http
HOST:PORT}), on treq:

* C{POST /api/v1/rpc}: one JSON-RPC 2.0 request, answered 200 with the
  response (errors included), or 201 with no body;
* C{GET /api/v1/events}: Server-Sent Events, C{event: receive} with
  C{{"envelope": ..., "account": ...}} as data, an C{id} per event (the
  daemon keeps the last 1000: a client that comes back with
  C{Last-Event-ID} gets what it missed), a keepalive comment every 15 s;
* C{GET /api/v1/check}: 200 while the daemon runs.

L{map_error} turns JSON-RPC errors (and the per-recipient C{results} of a
failed send) into the framework's errors (sans-IO).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote
from typing import Any, Callable, Coroutine, TypeVar

import treq
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from openclaw.agent.sse import Event, SSEError, SSEParser
from openclaw.channels.interfaces import ChannelError, ConfigProblem, IChannelReactor, Rejected, RetryAfter, Unreachable

T = TypeVar("T")

MAX_RESPONSE = 4 * 1024 * 1024
DEFAULT_RETRY = 60.0  # a rate limit without a hint
USER_ERROR, IO_ERROR, UNTRUSTED_KEY_ERROR, RATE_LIMIT_ERROR = -1, -3, -4, -5
NO_ACCOUNT = ("specified account does not exist", "requires valid account")


class Conflict(ConfigProblem):
    """The daemon refused the event stream for this account (HTTP 400: it does not have it)."""


def describe(e: BaseException) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _results(data: Any) -> list[dict[str, Any]]:
    response = data.get("response") if isinstance(data, dict) else None
    results = response.get("results") if isinstance(response, dict) else None
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _who(result: dict[str, Any]) -> str:
    address = result["recipientAddress"] if isinstance(result.get("recipientAddress"), dict) else {}
    return str(address.get("number") or address.get("uuid") or "the recipient")


def map_error(method: str, code: Any, message: str, data: Any, account: str | None = None) -> ChannelError:
    """The framework error for a JSON-RPC error from signal-cli."""
    text = f"{method}: signal-cli {message or 'error'} ({code})"
    results = _results(data)
    kinds = {str(r.get("type")) for r in results}
    if "RATE_LIMIT_FAILURE" in kinds or code == RATE_LIMIT_ERROR:
        hints = [float(r["retryAfterSeconds"]) for r in results if isinstance(r.get("retryAfterSeconds"), (int, float))]
        wait = float(max(hints)) if hints else DEFAULT_RETRY
        if any(r.get("token") for r in results):
            text += "; Signal wants a captcha: see `signal-cli submitRateLimitChallenge`"
        return RetryAfter(wait, text)
    if code == UNTRUSTED_KEY_ERROR or (results and kinds <= {"IDENTITY_FAILURE"}):
        who = ", ".join(_who(r) for r in results) or "the recipient"
        trust = f"signal-cli{' -a ' + account if account else ''} trust -a {who}"
        return Unreachable(f"{text}: the safety number of {who} changed; after checking it, run `{trust}`")
    if results and kinds <= {"UNREGISTERED_FAILURE"}:
        return Unreachable(f"{text}: {', '.join(_who(r) for r in results)} is not on Signal")
    if results and kinds & {"NETWORK_FAILURE", "INVALID_PRE_KEY_FAILURE"}:
        return ChannelError(text)
    lowered = (message or "").lower()
    if code in (-32602, -32600) and any(p in lowered for p in NO_ACCOUNT):
        return ConfigProblem(f"signal-cli has no account {account or '(none given)'}: check channels.signal.account, or start the daemon with -a {account or '+NUMBER'}")
    if code in (-32600, -32601, -32602, USER_ERROR):
        return Rejected(text)
    return ChannelError(text)


class TooLarge(Rejected):
    """A body past its limit (the connection is dropped)."""


async def read_bounded(response: Any, limit: int, what: str) -> bytes:
    """The response body, or L{TooLarge} as soon as it passes C{limit} bytes."""
    if isinstance(response.length, int) and response.length > limit:
        response.deliverBody(Discard())
        raise TooLarge(f"{what} is larger than {limit} bytes")
    parts: list[bytes] = []
    size = [0]

    def collect(data: bytes) -> None:
        size[0] += len(data)
        if size[0] > limit:
            raise TooLarge(f"{what} is larger than {limit} bytes")
        parts.append(data)

    await treq.collect(response, collect)
    return b"".join(parts)


def _fail(error: BaseException) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d


class EventStream(Protocol):
    """The body of C{/api/v1/events}: SSE parsed as it arrives; L{done} fires when it ends."""

    def __init__(self, on_event: Callable[[Event], None], on_data: Callable[[], None]) -> None:
        self.parser = SSEParser()
        self.on_event = on_event
        self.on_data = on_data
        self.done: Deferred[None] = Deferred(lambda d: self.abort(CancelledError()))  # cancelling closes the connection
        self.error: BaseException | None = None

    def dataReceived(self, data: bytes) -> None:
        self.on_data()
        try:
            events = self.parser.feed(data)
        except SSEError as e:
            self.abort(ChannelError(f"signal-cli's event stream broke: {e}"))
            return
        for event in events:
            if self.error is not None:
                return
            try:
                self.on_event(event)
            except Exception as e:
                self.abort(e if isinstance(e, ChannelError) else ChannelError(f"could not keep an event: {type(e).__name__}: {e}"))
                return

    def abort(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            IPushProducer(self.transport).stopProducing()
        elif not self.done.called and not isinstance(error, CancelledError):
            self.done.errback(error)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.done.called:
            return
        if self.error is not None:
            self.done.errback(self.error)
        elif reason is not None and reason.check(ResponseDone, PotentialDataLoss):
            self.done.errback(ChannelError("signal-cli closed the event stream"))
        else:
            self.done.errback(ChannelError(f"signal-cli's event stream dropped: {describe(reason.value) if reason is not None and reason.value is not None else 'closed'}"))


class SignalApi:
    def __init__(self, reactor: IChannelReactor, base_url: str, account: str | None) -> None:
        self.reactor = reactor
        self.base = base_url.rstrip("/")
        self.account = account
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._stream_pool = HTTPConnectionPool(reactor, persistent=False)
        self._stream_agent = Agent(reactor, pool=self._stream_pool)
        self._flying: set[Deferred[Any]] = set()
        self._streams: set[EventStream] = set()
        self.closed = False

    def close(self) -> Deferred[None]:
        self.closed = True
        for d in list(self._flying):
            d.cancel()
        for stream in list(self._streams):
            stream.abort(ChannelError("the Signal client is closed"))
        return self._pool.closeCachedConnections()

    async def _timed(self, what: str, work: Coroutine[Any, Any, T], timeout: float) -> T:
        """Await C{work} (a coroutine), cancelled after C{timeout} with a ChannelError naming C{what}."""
        if self.closed:
            raise ChannelError(f"{what}: the Signal client is closed")
        d = Deferred.fromCoroutine(work)
        self._flying.add(d)
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self.reactor.callLater(timeout, expire)
        try:
            return await d
        except CancelledError:
            if expired:
                raise ChannelError(f"{what}: no answer from signal-cli within {timeout:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()

    # -- JSON-RPC

    async def rpc(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """The method's result; errors per L{map_error}, L{ChannelError} for HTTP and network trouble."""
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": str(uuid.uuid4())}
        body["params"] = {**(params or {}), **({"account": self.account} if self.account else {})}
        status, headers, raw = await self._timed(method, self._post(method, body), timeout)
        if status == 201:
            return None
        if status == 429:
            retry = headers.getRawHeaders(b"retry-after") or [b""]
            try:
                wait = float(retry[0])
            except ValueError:
                wait = 5.0
            raise RetryAfter(wait, f"{method}: signal-cli answered HTTP 429")
        if status == 404:
            raise ConfigProblem(f"{method}: {self.base}/api/v1/rpc does not exist: is channels.signal.httpUrl a signal-cli daemon started with --http?")
        if status != 200:
            raise ChannelError(f"{method}: signal-cli answered HTTP {status}")
        try:
            value = json.loads(raw)
        except ValueError:
            raise ChannelError(f"{method}: signal-cli answered with a body that is not JSON") from None
        if not isinstance(value, dict) or ("result" not in value and "error" not in value):
            raise ChannelError(f"{method}: signal-cli answered with something that is not a JSON-RPC response")
        error = value.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            raise map_error(method, error.get("code"), str(message)[:300] if message else "", error.get("data"), self.account)
        return value.get("result")

    async def _post(self, method: str, body: dict[str, Any]) -> tuple[int, Headers, bytes]:
        try:
            response = await self._http.post(f"{self.base}/api/v1/rpc", data=json.dumps(body).encode(), headers=Headers({b"Content-Type": [b"application/json"]}))
            raw = await read_bounded(response, MAX_RESPONSE, f"{method}: signal-cli's answer")
        except TooLarge as e:
            raise ChannelError(str(e)) from None
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None
            raise ChannelError(f"{method}: cannot reach signal-cli at {self.base}: {describe(e)}") from None
        return response.code, response.headers, raw

    # -- health

    async def check(self, timeout: float) -> None:
        """Raise L{ChannelError} unless C{/api/v1/check} answers 200."""
        await self._timed("check", self._check(), timeout)

    async def _check(self) -> None:
        try:
            response = await self._http.get(f"{self.base}/api/v1/check")
            await read_bounded(response, 64 * 1024, "signal-cli's health answer")
        except CancelledError:
            raise
        except Exception as e:
            raise ChannelError(f"cannot reach signal-cli at {self.base}: {describe(e)}") from None
        if response.code == 404:
            raise ConfigProblem(f"{self.base}/api/v1/check does not exist: is channels.signal.httpUrl a signal-cli daemon started with --http?")
        if response.code != 200:
            raise ChannelError(f"signal-cli's health check answered HTTP {response.code}")

    # -- events

    async def events(self, last_id: str | None, on_event: Callable[[Event], None], connect_timeout: float, idle_timeout: float) -> Deferred[None]:
        """
        Open the event stream (after C{last_id} when given); returns a
        Deferred that fails when the stream ends, drops, or stays silent for
        C{idle_timeout}. Raises for a refused stream.
        """
        url = f"{self.base}/api/v1/events"
        if self.account:
            url += "?account=" + quote(self.account, safe="")
        headers = Headers({b"Accept": [b"text/event-stream"], b"Cache-Control": [b"no-cache"]})
        if last_id:
            headers.addRawHeader(b"Last-Event-ID", last_id.encode("utf-8", "replace")[:200])

        async def connect() -> IResponse:
            try:
                return await self._stream_agent.request(b"GET", url.encode(), headers)
            except CancelledError:
                raise
            except Exception as e:
                raise ChannelError(f"cannot reach signal-cli at {self.base}: {describe(e)}") from None

        response = await self._timed("events", connect(), connect_timeout)
        if response.code != 200:
            response.deliverBody(Discard())
            if response.code == 400:
                raise Conflict(f"signal-cli refused the event stream for {self.account}: the daemon does not have this account (check channels.signal.account)")
            if response.code == 404:
                raise ConfigProblem(f"{self.base}/api/v1/events does not exist: is channels.signal.httpUrl a signal-cli daemon started with --http?")
            raise ChannelError(f"signal-cli's event stream answered HTTP {response.code}")
        timer: list[IDelayedCall | None] = [None]

        def silent() -> None:
            stream.abort(ChannelError(f"signal-cli's event stream was silent for {idle_timeout:g} s (keepalives stopped)"))

        def poke() -> None:
            if timer[0] is not None and timer[0].active():
                timer[0].reset(idle_timeout)

        stream = EventStream(on_event, poke)
        self._streams.add(stream)
        timer[0] = self.reactor.callLater(idle_timeout, silent)

        def finished(result: T) -> T:
            self._streams.discard(stream)
            if timer[0] is not None and timer[0].active():
                timer[0].cancel()
            return result

        stream.done.addBoth(finished)
        response.deliverBody(stream)
        return stream.done


class Discard(Protocol):
    def connectionMade(self) -> None:
        if self.transport is not None:
            IPushProducer(self.transport).stopProducing()

    def connectionLost(self, reason: Failure | None = None) -> None:
        pass
