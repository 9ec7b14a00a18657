# -*- test-case-name: tests.test_ws -*-
"""
The Autobahn adapter: bytes in and out of a L{Connection}.

Upstream's close codes (1008, 1009, 1012, ...) go out through
C{sendCloseFrame}, since C{sendClose} accepts only 1000 and 3000-4999.
Origins are checked before the 101 (C{Origin: null} too: 403, not
autobahn's 400). Sending never raises: a closing socket drops the frame.
On close every link between the socket, the protocol and the L{Connection}
is cut, so a closed connection's buffers are freed at once, not at the
next garbage collection. Outgoing text frames are built here and written
straight to the socket (docs/performance.md says why).
With C{gateway.auth.allowTailscale}, a connect that
came through Tailscale Serve waits (in C{onConnect}) for its L{IdentityCheck}
and carries the confirmed login in its L{Peer}.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, Callable, Mapping, Sequence, cast
from urllib.parse import urlsplit

import attrs
import txaio

txaio.use_twisted()

from autobahn.twisted.resource import WebSocketResource  # noqa: E402
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from autobahn.websocket.types import ConnectionDeny  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from zope.interface import implementer  # noqa: E402
from twisted.internet.defer import Deferred, succeed  # noqa: E402
from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport  # noqa: E402
from twisted.internet.protocol import connectionDone  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.web.server import NOT_DONE_YET  # noqa: E402

from openclaw.gateway.connection import Connection, Gate, Peer, State  # noqa: E402
from openclaw.gateway.connections import Connections  # noqa: E402
from openclaw.protocol.versions import PREAUTH_MAX_PAYLOAD  # noqa: E402

log = Logger(namespace="openclaw.ws")

# Twisted pauses producers once its send buffer passes 64 KiB; past that we count.
_TCP_BUFFER = 65536

# (socket peer address, lower-cased headers) → None when the request makes no
# identity claim, else a Deferred firing with the login it confirmed (or None).
IdentityCheck = Callable[[str, Mapping[str, str]], "Deferred[str | None] | None"]


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _in_networks(ip: str, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for net in networks:
        try:
            if address in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(peer_ip: str, headers: dict[str, str], trusted: list[str]) -> tuple[str, bool]:
    """
    The client's IP and whether it is direct-local. Forwarding headers count
    only from a trusted proxy; from anyone else they make the request remote.
    """
    forwarded = headers.get("x-forwarded-for") or headers.get("x-real-ip")
    if forwarded:
        if not _in_networks(peer_ip, trusted):
            return peer_ip, False
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        client = next((h for h in reversed(hops) if not _in_networks(h, trusted)), hops[0] if hops else peer_ip)
        return client, _is_loopback(client)
    host = (headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
    local_host = host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("127.")
    return peer_ip, _is_loopback(peer_ip) and local_host


def origin_allowed(origin: str, host_header: str | None, allowed: list[str]) -> bool:
    if origin == "null" or not origin:
        return False
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host_header) and parts.netloc.lower() == (host_header or "").lower()


@implementer(IPushProducer)
class GatewayWebSocket(WebSocketServerProtocol):
    """Thin adapter: autobahn callbacks in, L{Connection} decides."""

    maxMessagePayloadSize = PREAUTH_MAX_PAYLOAD
    maxFramePayloadSize = 0
    failByDrop = False
    connection: Connection | None = None
    # autobahn copies the factory's options listed here onto each protocol,
    # and pformats the whole list for a debug line whether or not debug logs
    # are on (a third of a connection's CPU). connectionMade copies them
    # instead, and autobahn gets an empty list.
    CONFIG_ATTRS: list[str] = []
    _OPTIONS = tuple(WebSocketServerProtocol.CONFIG_ATTRS)

    def connectionMade(self) -> None:
        factory = self.factory
        for name in self._OPTIONS:
            if not hasattr(self, name):
                setattr(self, name, getattr(factory, name))
        super().connectionMade()

    def onConnect(self, request: Any) -> Deferred[None] | None:  # type: ignore[override]  # autobahn takes a Deferred too (txaio.as_future)
        try:
            factory = self.factory
            headers = {k.lower(): v for k, v in request.headers.items()}
            assert self.transport is not None
            peer_ip = str(getattr(self.transport.getPeer(), "host", ""))
            ip, local = client_address(peer_ip, headers, factory.trusted_proxies)
            origin = headers.get("origin")
            if origin is not None and not origin_allowed(origin, headers.get("host"), factory.allowed_origins):
                log.info("websocket from {ip} refused: origin {origin} not allowed", ip=ip, origin=origin)
                raise ConnectionDeny(403, "origin not allowed")
            self._peer = Peer(ip=ip, local=local, origin=origin)
            self._paused = False
            self._paused_bytes = 0
            verify: IdentityCheck | None = factory.identity  # gateway.auth.allowTailscale
            claim = verify(peer_ip, headers) if verify is not None else None
            if claim is not None:
                return claim.addCallback(self._identified)
            return None
        except ConnectionDeny:
            raise
        except Exception:
            log.failure("websocket onConnect failed")
            raise ConnectionDeny(500, "internal error")

    def _identified(self, login: str | None) -> None:
        if login:
            self._peer = attrs.evolve(self._peer, tailscale_user=login)

    def onOpen(self) -> None:
        try:
            # autobahn 26.10 (WebSocketResource) leaves the HTTP channel that
            # carried the upgrade registered as the socket's producer, and has
            # no hook that tells a protocol the peer stopped reading. We take
            # the registration over through the transport's public API, so
            # pauseProducing/resumeProducing below count what the peer has not
            # read (the slow-consumer rule needs it).
            socket = cast(IConsumer, self.transport)
            socket.unregisterProducer()
            socket.registerProducer(self, True)
            self.factory.sockets.socket_opened()
            self._counted = True
            self.connection = Connection(self.factory.gate, self, self._peer)
            self.connection.opened()
        except Exception:
            log.failure("websocket onOpen failed")
            self.close(1011, "internal error")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.connection is None:
            return
        try:
            self.connection.received(payload)
        except Exception:
            log.failure("websocket message handling failed")
            self.close(1011, "internal error")

    def onMessageFrameBegin(self, length: int) -> None:
        # A message past the limit before hello gets upstream's reason, not
        # autobahn's text. autobahn 26.10 has no public hook for its size
        # refusal (it calls the private _fail_connection), so we refuse first,
        # from this public callback, the way it would: a 1009 close frame, and
        # failedByMe set so it ignores the rest of the message.
        total = self.message_data_total_length + length
        ready = self.connection is not None and self.connection.state == State.READY
        if not ready and not self.failedByMe and 0 < self.maxMessagePayloadSize < total and self.state == self.STATE_OPEN:
            self.failedByMe = True
            self.wasMaxMessagePayloadSizeExceeded = True
            self.sendCloseFrame(code=1009, reasonUtf8=b"preauth payload too large", isReply=False)
        super().onMessageFrameBegin(length)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.factory.sockets.socket_closed()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.closed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # autobahn resolves is_open/is_closed with the protocol itself: a cycle
        # that would keep this protocol, and through it the socket's buffers,
        # alive until a full GC pass.
        self.is_open = succeed(None)
        self.is_closed = succeed(None)
        # A close we started (e.g. "slow consumer") left a reply timer holding us.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None
        self._cancel_close_deadline()

    # -- a peer's invalid close frame gets our 1002, then a FIN (not a reset)

    _in_close_frame = False
    _close_deadline: Any = None

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        self._in_close_frame = True
        try:
            return super().onCloseFrame(code, reasonRaw)
        finally:
            self._in_close_frame = False

    def dropConnection(self, abort: bool = False) -> None:
        if abort and self._in_close_frame and self.failedByMe and self.state != self.STATE_CLOSED:
            # autobahn takes the peer's bad close frame for the reply to the
            # 1002 it just wrote, and would reset the socket before that 1002
            # leaves: flush it, then FIN; abort only if the peer stops reading.
            abort = False
            # txaio binds call_later at use_twisted(); the option is set per connection from the factory
            self._close_deadline = txaio.call_later(max(self.closeHandshakeTimeout, 1), self._abort)  # type: ignore[attr-defined]
        super().dropConnection(abort)

    def _abort(self) -> None:
        self._close_deadline = None
        if self.transport is not None and getattr(self.transport, "connected", False):
            cast(ITCPTransport, self.transport).abortConnection()

    def _cancel_close_deadline(self) -> None:
        if self._close_deadline is not None:
            self._close_deadline.cancel()
            self._close_deadline = None

    # -- Transport for Connection

    def send(self, text: str | bytes) -> bool:
        """One text message; False once the socket is closing or closed (dropped, never raised)."""
        if self.state != self.STATE_OPEN:
            return False
        data = text.encode("utf-8") if isinstance(text, str) else text
        size = len(data)
        if self._paused:
            self._paused_bytes += size
        # One final, unmasked text frame (RFC 6455 5.2), as sendFrame(opcode=1)
        # would write it but without its per-frame debug formatting; both parts
        # go to the socket's buffer without being joined. Not sendMessage: it
        # applies maxMessagePayloadSize, our limit for what clients send, to what
        # we send (a large chat.history would raise).
        if size < 126:
            head = bytes((0x81, size))
        elif size < 65536:
            head = struct.pack("!BBH", 0x81, 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 127, size)
        assert self.transport is not None
        self.transport.writeSequence((head, data))
        return True

    def close(self, code: int, reason: str) -> None:
        if self.state != self.STATE_OPEN:
            return
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8") if reason else None, isReply=False)

    def buffered(self) -> int:
        return self._paused_bytes + (_TCP_BUFFER if self._paused else 0)

    def set_max_payload(self, size: int) -> None:
        self.maxMessagePayloadSize = size

    # -- IPushProducer: the transport tells us when the peer stops reading

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._paused_bytes = 0

    def stopProducing(self) -> None:
        self._paused = False


class GatewayWebSocketFactory(WebSocketServerFactory):
    protocol = GatewayWebSocket

    def __init__(self, gate: Gate, sockets: Connections, trusted_proxies: Sequence[str] = (), allowed_origins: Sequence[str] = (), identity: IdentityCheck | None = None) -> None:
        super().__init__()
        self.gate = gate  # what each Connection is wired to
        self.sockets = sockets  # counts open sockets (the service waits for them at stop)
        self.trusted_proxies = list(trusted_proxies)
        self.allowed_origins = list(allowed_origins)
        self.identity = identity  # confirms an identity a proxy forwards (ops/tailscale.py)
        # Every setProtocolOptions call resets allowNullOrigin; pass it each time.
        # "Allowed" here only means autobahn lets it through to onConnect, which
        # refuses it with our 403 (autobahn's own refusal is a 400).
        self.setProtocolOptions(failByDrop=False, allowNullOrigin=True, openHandshakeTimeout=10, closeHandshakeTimeout=1)


class GatewayWebSocketResource(WebSocketResource):
    """Upgrades, then lets go of the spent HTTP request."""

    def render(self, request: Any) -> Any:
        result = super().render(request)
        if result is not NOT_DONE_YET:
            return result  # not upgraded (426/500): an ordinary HTTP answer
        # The socket now belongs to the WebSocket protocol. The request and its
        # channel point at each other and at the socket: cut that cycle, or the
        # socket (and whatever it still buffers) outlives its close until a GC pass.
        channel = request.channel
        if channel is not None and request in getattr(channel, "requests", ()):
            channel.requests.remove(request)
        request.channel = None
        return result


def websocket_resource(gate: Gate, sockets: Connections, trusted_proxies: Sequence[str] = (), allowed_origins: Sequence[str] = (), identity: IdentityCheck | None = None) -> WebSocketResource:
    return GatewayWebSocketResource(GatewayWebSocketFactory(gate, sockets, trusted_proxies, allowed_origins, identity))
