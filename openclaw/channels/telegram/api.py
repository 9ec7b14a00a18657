# -*- test-case-name: tests.test_telegram -*-
"""
The Telegram Bot API over treq: C{POST <apiRoot>/bot<token>/<method>} with a
JSON (or multipart) body, answered C{{"ok": true, "result": ...}} or
C{{"ok": false, "error_code", "description", "parameters"}}.

The token is part of every URL, so no URL is ever logged or put in an
error: errors name the method and what Telegram said. L{map_error} turns
Telegram's answers into the framework's errors (sans-IO).
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool

import treq
from treq.client import HTTPClient

from openclaw.channels.interfaces import AuthFailed, ChannelError, IChannelReactor, Moved, Rejected, RetryAfter, Unreachable

MAX_RESPONSE = 8 * 1024 * 1024


class Conflict(ChannelError):
    """409: a webhook is set, or another poller uses this token."""


class ParseError(Rejected):
    """400 can't parse entities: the same text goes again as plain text."""


class TooLong(Rejected):
    """400 message is too long."""


WEBHOOK_CONFLICT = (
    "Telegram refuses getUpdates (409 Conflict) because a webhook is set for this bot. "
    "Fix: set channels.telegram.deleteWebhookOnStart: true (or call deleteWebhook), or use webhook mode (channels.telegram.webhookUrl)."
)
POLLER_CONFLICT = (
    "Telegram refuses getUpdates (409 Conflict): another program polls with this bot token (another gateway?). "
    "Fix: stop the other instance; each bot token needs its own single poller."
)


def map_error(method: str, code: int, description: str, parameters: Any) -> ChannelError:
    """The framework error for a Telegram failure."""
    params = parameters if isinstance(parameters, dict) else {}
    text = f"{method}: Telegram {code} {description}".strip()
    lowered = description.lower()
    if code == 401 or (code == 404 and method in ("getMe", "getUpdates", "deleteWebhook", "setWebhook")):
        return AuthFailed(f"Telegram refused the bot token ({code} {description or 'Unauthorized'}): check channels.telegram.botToken (or tokenFile / TELEGRAM_BOT_TOKEN)")
    if code == 429:
        retry = params.get("retry_after")
        return RetryAfter(float(retry) if isinstance(retry, (int, float)) else 5.0, text)
    if code == 409:
        return Conflict(WEBHOOK_CONFLICT if "webhook" in lowered else POLLER_CONFLICT)
    if isinstance(params.get("migrate_to_chat_id"), int):
        return Moved(str(params["migrate_to_chat_id"]), text)
    if code == 400 and "can't parse entities" in lowered:
        return ParseError(text)
    if code == 400 and "message is too long" in lowered:
        return TooLong(text)
    if code == 403:
        return Unreachable(text)
    if code == 400:
        return Rejected(text)
    return ChannelError(text)


def describe(e: BaseException) -> str:
    """A network error in words, without the URL (it holds the token)."""
    reasons = getattr(e, "reasons", None)  # ResponseFailed & co wrap failures
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class BotApi:
    def __init__(self, reactor: IChannelReactor, root: str, token: str) -> None:
        self.reactor = reactor
        self._root = root.rstrip("/")
        self._token = token
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._flying: set[Deferred[tuple[int, bytes]]] = set()
        self.closed = False

    def _url(self, method: str) -> str:
        return f"{self._root}/bot{self._token}/{method}"

    def fresh(self) -> Deferred[None]:
        """Drop kept-alive connections (after a 409, the next request builds a new transport)."""
        return self._pool.closeCachedConnections()

    def close(self) -> Deferred[None]:
        """Cancel what is in flight (its connection would be kept otherwise) and close kept connections."""
        self.closed = True
        for d in list(self._flying):
            d.cancel()
        return self._pool.closeCachedConnections()

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0, files: dict[str, tuple[str, str, bytes]] | None = None) -> Any:
        """The method's C{result}; errors per L{map_error}, or L{ChannelError} for network trouble."""
        if self.closed:
            raise ChannelError(f"{method}: the Telegram client is closed")
        timed_out: list[bool] = []
        d = Deferred.fromCoroutine(self._post(method, params or {}, files))
        self._flying.add(d)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(timeout, expire)
        try:
            status, body = await d
        except CancelledError:
            if timed_out:
                raise ChannelError(f"{method}: no answer from Telegram within {timeout:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()
        try:
            value = json.loads(body)
        except ValueError:
            raise ChannelError(f"{method}: Telegram answered HTTP {status} with a body that is not JSON") from None
        if not isinstance(value, dict):
            raise ChannelError(f"{method}: Telegram answered HTTP {status} with an unexpected body")
        if value.get("ok") is True:
            return value.get("result")
        code = value["error_code"] if isinstance(value.get("error_code"), int) else status
        description = value["description"] if isinstance(value.get("description"), str) else ""
        raise map_error(method, code, description[:300], value.get("parameters"))

    async def _post(self, method: str, params: dict[str, Any], files: dict[str, tuple[str, str, bytes]] | None) -> tuple[int, bytes]:
        try:
            if files:
                fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
                uploads = {name: (filename, ctype, FileBodyProducer(io.BytesIO(data))) for name, (filename, ctype, data) in files.items()}
                response = await self._http.post(self._url(method), data=fields, files=uploads)
            else:
                response = await self._http.post(self._url(method), json=params)
            length = response.length if isinstance(response.length, int) else 0
            if length > MAX_RESPONSE:
                response.deliverBody(_Discard())
                raise ChannelError(f"{method}: Telegram's answer is too large ({length} bytes)")
            body = await treq.content(response)
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None  # treq wraps a cancelled request
            raise ChannelError(f"{method}: network error: {describe(e)}") from None
        return response.code, body


class _Discard:
    def makeConnection(self, transport: IPushProducer) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass
