# -*- test-case-name: tests.test_discord -*-
"""
The autobahn adapter for L{GatewaySession}: one WebSocket connection to
Discord's gateway (C{?v=10&encoding=json}, no compression: plain JSON text
frames). The protocol only forwards frames and the close; its factory's
C{ended} fires with the session's L{Ending}.
"""

from __future__ import annotations

from typing import Callable, cast
from urllib.parse import urlsplit

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint, ITCPTransport  # noqa: E402
from twisted.internet.protocol import connectionDone  # noqa: E402
from twisted.internet.ssl import optionsForClientTLS  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from openclaw.channels.discord.gateway import AGAIN, Ending, GatewaySession  # noqa: E402
from openclaw.channels.interfaces import ChannelError  # noqa: E402

MAX_MESSAGE = 32 * 1024 * 1024  # READY and GUILD_CREATE of big servers are large
CONNECT_TIMEOUT = 10.0
CLOSE_REASON_BYTES = 120

_log = Logger(namespace="openclaw.channels.discord")


def gateway_url(url: str) -> str:
    """Discord's gateway URL with our version and encoding; ValueError unless it is ws(s)://host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ws", "wss") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("the gateway URL is not ws:// or wss://")
    return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}?v=10&encoding=json"


def endpoint_for(reactor: IReactorTime, url: str) -> IStreamClientEndpoint:
    parts = urlsplit(url)
    assert parts.hostname is not None
    secure = parts.scheme == "wss"
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, parts.hostname, parts.port or (443 if secure else 80), timeout=CONNECT_TIMEOUT)
    if secure:
        endpoint = wrapClientTLS(optionsForClientTLS(parts.hostname), endpoint)
    return endpoint


def _reason(text: str) -> str:
    return text.encode("utf-8")[:CLOSE_REASON_BYTES].decode("utf-8", "ignore")


class GatewayProtocol(WebSocketClientProtocol):
    session: GatewaySession | None = None

    def onOpen(self) -> None:
        # autobahn runs onOpen in a Deferred chain with no errback: guard it.
        try:
            self.session = self.factory.make_session(self)
            self.session.opened()
        except Exception:
            _log.failure("discord: starting the gateway session failed")
            if self.transport is not None:
                cast(ITCPTransport, self.transport).abortConnection()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.session is None or isBinary:
            return  # binary frames only come with compression, which we never ask for
        try:
            self.session.received(payload)
        except Exception:
            _log.failure("discord: handling a gateway frame failed")
            self.session.end(Ending(AGAIN, ChannelError("internal error while handling a gateway frame")), abort=True)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.session is not None:
            ending = self.session.closed(code, reason)
        else:
            ending = Ending(AGAIN, ChannelError(f"the Discord gateway connection failed before it opened ({code})"))
        self.factory.finished(ending)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            super().connectionLost(reason)
        finally:
            if self.session is not None:
                self.session.stop()
            self.factory.finished(Ending(AGAIN, ChannelError("the Discord gateway connection was lost")))
            self.factory.gone()

    # -- what the session calls

    def write(self, text: str) -> None:
        self.sendMessage(text.encode("utf-8"))

    def shut(self, code: int, reason: str, abort: bool) -> None:
        """Send a close frame; with C{abort} do not wait for Discord's answer (autobahn's close timeout backs that up)."""
        try:
            self.sendClose(code, _reason(reason))
        except Exception:
            if self.transport is not None:
                cast(ITCPTransport, self.transport).abortConnection()
            return
        if abort and self.transport is not None:
            self.transport.loseConnection()  # the close frame still goes out first


class GatewayFactory(WebSocketClientFactory):
    protocol = GatewayProtocol
    noisy = False

    def __init__(self, url: str, make_session: Callable[[GatewayProtocol], GatewaySession]) -> None:
        super().__init__(url)
        self.setProtocolOptions(
            maxMessagePayloadSize=MAX_MESSAGE,
            maxFramePayloadSize=MAX_MESSAGE,
            openHandshakeTimeout=CONNECT_TIMEOUT,
            closeHandshakeTimeout=2,
            autoPingInterval=0,
        )
        self.make_session = make_session
        self.ended: Deferred[Ending] = Deferred()
        self.is_gone = False
        self._gone: list[Deferred[None]] = []

    def finished(self, ending: Ending) -> None:
        if not self.ended.called:
            self.ended.callback(ending)

    def gone(self) -> None:
        self.is_gone = True
        waiting, self._gone = self._gone, []
        for d in waiting:
            d.callback(None)

    def when_gone(self) -> Deferred[None]:
        """Fires once the TCP connection is closed."""
        d: Deferred[None] = Deferred()
        if self.is_gone:
            d.callback(None)
        else:
            self._gone.append(d)
        return d
