# -*- test-case-name: tests.test_slack_units -*-
"""
Socket Mode: Slack pushes events over a WebSocket whose URL comes from
C{apps.connections.open}. The URL holds a one-time ticket, so every
connection gets a fresh one; it is never kept, reused or logged.

L{Link} is one receive session. It opens a connection and waits for
C{hello}. Each envelope goes to the handler, and its acknowledgement
C{{"envelope_id": …}} goes back on the connection it came on as soon as the
handler returns (the handler keeps the message and schedules the work; it
never waits for it). On C{disconnect} with C{warning} or
C{refresh_requested} a second connection opens at once, and the old one is
closed when the new one said hello (Slack allows the overlap). On
C{link_disabled} the session ends with L{ConfigProblem}; when the last
connection drops it ends with L{ChannelError}, and the framework reconnects
with backoff. Connections ping Slack and are dropped when Slack stops
answering.
"""

from __future__ import annotations

import json
from typing import Any, Callable, cast
from urllib.parse import urlsplit

import attrs
import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet.defer import CancelledError, Deferred, TimeoutError  # noqa: E402
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint, ITCPTransport  # noqa: E402
from twisted.internet.ssl import optionsForClientTLS  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from openclaw.channels.interfaces import ChannelError, ConfigProblem, IChannelReactor  # noqa: E402
from openclaw.channels.slack.api import describe  # noqa: E402

log = Logger(namespace="openclaw.channels.slack")

HELLO_TIMEOUT = 30.0
PING_INTERVAL = 30.0
PING_TIMEOUT = 15.0
MAX_FRAME = 4 * 1024 * 1024
REFRESH = ("warning", "refresh_requested")
LINK_DISABLED = (
    "Slack turned Socket Mode off for this app (disconnect: link_disabled). "
    'Fix: turn Socket Mode on in the app\'s settings (or use channels.slack.mode: "http"), then run `openclaw channels login slack`.'
)

Envelope = dict[str, Any]
OnEnvelope = Callable[[Envelope], "dict[str, Any] | None"]  # the ack, or None to leave it unacknowledged


class _Silent:
    """
    autobahn's logger for these connections: at debug level it prints the
    handshake request, and with it the ticket. What matters (hello, close
    codes, disconnect reasons, failures) is logged by L{Link} instead.
    """

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _ignore


def _ignore(*args: Any, **kwargs: Any) -> None:
    pass


class _Protocol(WebSocketClientProtocol):
    log = _Silent()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary:
            self.factory.link._frame(self.factory.conn, self, payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.link._lost(self.factory.conn, code, reason)


class _Factory(WebSocketClientFactory):
    """One connection's factory: the link it belongs to, and which of its connections it is."""

    protocol = _Protocol

    def __init__(self, url: str, reactor: IReactorTime, link: Link, conn: _Conn) -> None:
        super().__init__(url, reactor=reactor)
        self.log = _Silent()
        self.link = link
        self.conn = conn


@attrs.define(eq=False)
class _Conn:
    number: int
    protocol: _Protocol | None = None
    hello: Deferred[Envelope] = attrs.field(factory=Deferred)
    up: bool = False
    gone: bool = False


class Link:
    """The connections of one receive session (two while one replaces the other)."""

    def __init__(
        self,
        reactor: IChannelReactor,
        open_url: Callable[[], Deferred[str]],
        on_envelope: OnEnvelope,
        on_up: Callable[[Envelope], None],
        hello_timeout: float | None = None,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
    ) -> None:
        self.reactor = reactor
        self._open_url = open_url
        self._on_envelope = on_envelope
        self._on_up = on_up
        self.hello_timeout = hello_timeout or HELLO_TIMEOUT
        self.ping_interval = ping_interval or PING_INTERVAL
        self.ping_timeout = ping_timeout or PING_TIMEOUT
        self.conns: list[_Conn] = []
        self.opened = 0  # connections opened in this session
        self.replacing: Deferred[None] | None = None
        self.done: Deferred[None] = Deferred()
        self.last_disconnect: str | None = None
        self.closing = False

    @property
    def live(self) -> list[_Conn]:
        return [c for c in self.conns if c.up and not c.gone]

    async def run(self) -> None:
        """Until the last connection is gone (L{ChannelError}), Socket Mode is off (L{ConfigProblem}), or cancelled."""
        try:
            await self._open()
            await self.done
        finally:
            self.done.addErrback(lambda f: None)  # an end nobody waits for any more
            self.close()

    async def _open(self) -> None:
        url = await self._open_url()
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ChannelError("apps.connections.open: Slack gave no WebSocket URL")
        secure = parts.scheme == "wss"
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self.reactor, parts.hostname, parts.port or (443 if secure else 80), timeout=self.hello_timeout)
        if secure:
            endpoint = wrapClientTLS(optionsForClientTLS(parts.hostname), endpoint)
        self.opened += 1
        conn = _Conn(self.opened)
        factory = _Factory(url, self.reactor, self, conn)
        factory.setProtocolOptions(
            autoPingInterval=self.ping_interval,
            autoPingTimeout=self.ping_timeout,
            openHandshakeTimeout=self.hello_timeout,
            closeHandshakeTimeout=2.0,
            maxFramePayloadSize=MAX_FRAME,
            maxMessagePayloadSize=MAX_FRAME,
        )
        self.conns.append(conn)
        try:
            conn.protocol = cast(_Protocol, await endpoint.connect(factory))
            await conn.hello.addTimeout(self.hello_timeout, self.reactor)
        except BaseException as e:
            self._forget(conn)
            if isinstance(e, TimeoutError):
                raise ChannelError(f"Slack sent no hello within {self.hello_timeout:g} s") from None
            if isinstance(e, (ChannelError, CancelledError)):
                raise
            raise ChannelError(f"cannot reach Slack's socket: {describe(e)}") from None
        for old in list(self.conns):
            if old is not conn:
                self._forget(old)  # replaced: Slack has moved to the new connection

    def _forget(self, conn: _Conn) -> None:
        conn.gone = True
        if conn in self.conns:
            self.conns.remove(conn)
        protocol = conn.protocol
        if protocol is None:
            return
        if protocol.state == protocol.STATE_OPEN:
            protocol.sendClose(1000)
        elif protocol.state != protocol.STATE_CLOSED and protocol.transport is not None:
            cast(ITCPTransport, protocol.transport).abortConnection()

    def close(self) -> None:
        """Close every connection (the session is over)."""
        self.closing = True
        if self.replacing is not None and not self.replacing.called:
            self.replacing.cancel()
        for conn in list(self.conns):
            self._forget(conn)

    def _end(self, error: ChannelError) -> None:
        if not self.done.called:
            self.done.errback(error)

    # -- what the connections report

    def _frame(self, conn: _Conn, protocol: _Protocol, payload: bytes) -> None:
        if conn.gone or self.closing:
            return  # a replaced connection: Slack sends the envelope again on the new one
        try:
            frame = json.loads(payload)
        except ValueError:
            log.warn("slack: a socket frame that is not JSON was ignored")
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "hello":
            if not conn.hello.called:
                conn.up = True
                conn.hello.callback(frame)
                self._on_up(frame)
            return
        if kind == "disconnect":
            reason = str(frame.get("reason") or "unknown")[:100]
            self.last_disconnect = reason
            if reason == "link_disabled":
                self._end(ConfigProblem(LINK_DISABLED))
            elif reason in REFRESH:
                log.info("slack: Slack asked for a new socket ({reason}); opening one now", reason=reason)
                self._replace()
            else:
                log.warn("slack: Slack closes the socket ({reason})", reason=reason)
                self._forget(conn)
                self._check()
            return
        envelope_id = frame.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            log.debug("slack: socket frame of type {kind} ignored", kind=str(kind)[:40])
            return
        ack = self._on_envelope(frame)
        if ack is not None and protocol.state == protocol.STATE_OPEN:
            protocol.sendMessage(json.dumps(ack).encode())

    def _lost(self, conn: _Conn, code: int | None, reason: str | None) -> None:
        was_gone = conn.gone
        conn.gone = True
        if conn in self.conns:
            self.conns.remove(conn)
        if not conn.hello.called:
            conn.hello.errback(ChannelError(f"Slack closed the socket before hello ({code})"))
        if not was_gone:
            self._check(code, reason)

    def _check(self, code: int | None = None, reason: str | None = None) -> None:
        """The session ends when no connection is up and none is opening."""
        if self.live or self.replacing is not None or self.closing:
            return
        why = f"the Slack socket closed ({code}{': ' + reason[:200] if reason else ''})" if code is not None else "the Slack socket closed"
        if self.last_disconnect:
            why += f" after disconnect: {self.last_disconnect}"
        self._end(ChannelError(why))

    def _replace(self) -> None:
        if self.replacing is not None or self.done.called or self.closing:
            return
        d = Deferred.fromCoroutine(self._open())
        self.replacing = d

        def finished(result: Any) -> None:
            self.replacing = None
            if isinstance(result, Failure):
                if result.check(CancelledError):
                    return None
                error = result.value if isinstance(result.value, ChannelError) else ChannelError(f"internal error: {result.getErrorMessage()}")
                log.warn("slack: opening the new socket failed: {error}", error=str(error))
                if not self.live:
                    self._end(error)
            return None

        d.addBoth(finished)
