# -*- test-case-name: tests.test_ws -*-
"""
One client connection, without sockets: the adapter (L{openclaw.web.websocket}) feeds
it messages and carries out its sends and closes through a L{Transport}.

States (L{State}): C{new} → C{challenged} (the nonce is out; the handshake
timer runs) → C{ready} (one C{connect} passed every handshake step; requests
are dispatched) → C{closed}. A refused or timed-out handshake goes straight
from C{challenged} to C{closed}, as does a close from either side.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, Protocol

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.gateway.boot import Boot
from openclaw.gateway.connections import SendStats
from openclaw.gateway.handshake import Handshake, Peer
from openclaw.gateway.handshake.hello import Hello
from openclaw.gateway.roster import Roster
from openclaw.gateway.scopes import RoleError, authorize
from openclaw.nodes.registry import NodeInfo
from openclaw.protocol import frames
from openclaw.protocol.dispatch import Handler, Methods, run
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError, HandshakeFailed, InvalidInput
from openclaw.protocol.versions import CHALLENGE_CAPABILITIES, HANDSHAKE_TIMEOUT, PREAUTH_MAX_PAYLOAD, V3, Version, truncate_reason

__all__ = ["Connection", "Gate", "Peer", "State", "Transport"]

log = Logger(namespace="openclaw.ws")

MAX_ROLE_FAILURES = 10


class State(enum.StrEnum):
    NEW = "new"
    CHALLENGED = "challenged"
    READY = "ready"
    CLOSED = "closed"


class Transport(Protocol):
    def send(self, text: str | bytes) -> bool:
        """Write one text message (bytes: already UTF-8); False (never an exception) once the socket is closing or closed."""
        ...

    def close(self, code: int, reason: str) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the peer."""
        ...

    def set_max_payload(self, size: int) -> None: ...


class _Gone:
    """The transport of a closed connection: drops everything, holds nothing."""

    def send(self, text: str | bytes) -> bool:
        return False

    def close(self, code: int, reason: str) -> None:
        pass

    def buffered(self) -> int:
        return 0

    def set_max_payload(self, size: int) -> None:
        pass


GONE = _Gone()


@attrs.frozen
class Gate:
    """What every connection is wired to (built once by L{openclaw.gateway.core.GatewayCore})."""

    clock: IReactorTime
    boot: Boot
    handshake: Handshake
    hello: Hello
    roster: Roster
    methods: Methods
    stats: SendStats


class Connection:
    """See the module docstring for the states."""

    transport_name = "ws"  # as a NodeLink

    def __init__(self, gate: Gate, transport: Transport, peer: Peer) -> None:
        self.gate = gate
        self.transport: Transport = transport
        self.peer = peer
        self.conn_id = str(uuid.uuid4())
        self.nonce = str(uuid.uuid4())
        self.state = State.NEW
        self.version: Version = V3
        self.role: str | None = None
        self.scopes: list[str] = []
        self.client: dict[str, Any] = {}
        self.device_id: str | None = None
        self.auth_method: str | None = None
        self.presence_key: str | None = None
        self.node_id: str | None = None
        self.node_info: NodeInfo | None = None
        self.subscriptions: set[str] = set()
        self.caps: set[str] = set()
        self.seq = 0
        self.role_failures = 0
        self._timeout: IDelayedCall | None = None

    # -- transport events

    def opened(self) -> None:
        self.state = State.CHALLENGED
        self.transport.set_max_payload(PREAUTH_MAX_PAYLOAD)
        challenge = {"nonce": self.nonce, "ts": self.gate.boot.now_ms(), "capabilities": list(CHALLENGE_CAPABILITIES)}
        self.transport.send(frames.event("connect.challenge", challenge))
        self._timeout = self.gate.clock.callLater(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def closed(self) -> None:
        """The socket is gone: leave the roster and let go of the transport."""
        self._cancel_timeout()
        self.state = State.CLOSED
        self.gate.roster.leave(self)
        # Runs still waiting to answer hold this connection; they must not hold its buffers.
        self.transport = GONE

    def received(self, payload: bytes) -> None:
        if self.state == State.CHALLENGED:
            self._handshake(payload)
        elif self.state == State.READY:
            self._request(payload)

    # -- sending

    def close(self, code: int, reason: str = "") -> None:
        if self.state == State.CLOSED:
            return
        self._cancel_timeout()
        self.state = State.CLOSED
        self.gate.roster.leave(self)
        try:
            self.transport.close(code, truncate_reason(reason))
        except Exception:
            log.failure("closing the socket of {ip} failed", ip=self.peer.ip)

    def respond(self, id: str, payload: Any) -> None:
        self._write(frames.response(id, True, payload))

    def fail(self, id: str, error: GatewayError) -> None:
        self._write(frames.response(id, False, error.payload, error.shape()))

    def send_event(self, name: str, payload: Any, state_version: dict[str, int] | None = None, drop_if_slow: bool = False) -> None:
        """An event for this connection (numbered like a broadcast)."""
        self.send_frame(frames.EventFrame(name, payload, state_version), drop_if_slow)

    def send_frame(self, frame: frames.EventFrame, drop_if_slow: bool = False) -> None:
        """A broadcast (encoded once for all): numbered per connection; a slow consumer is dropped or closed."""
        if self.state != State.READY:
            return
        self.seq += 1
        self._write(frame.data(self.seq), drop_if_slow)

    def send_direct(self, name: str, payload: Any) -> None:
        """An event for this socket only: no C{seq}."""
        if self.state == State.READY:
            self._write(frames.event(name, payload))

    def _write(self, text: str | bytes, drop_if_slow: bool = False) -> None:
        """
        Everything sent to the peer goes through here, and nothing here raises:
        sending is fire-and-forget for every caller (broadcasts, responses,
        runs, invokes), so no caller's outcome depends on another client's
        socket. A closing socket drops the frame (counted); a peer that stopped
        reading is closed 1008 once past the buffer limit, whatever we were sending.
        """
        stats = self.gate.stats
        if self.state == State.CLOSED:
            stats.dropped += 1
            return
        if self.transport.buffered() > self.version.max_buffered:
            if drop_if_slow:
                stats.dropped_slow += 1
                return
            self._slow_consumer()
            stats.dropped += 1
            return
        try:
            sent = self.transport.send(text)
        except Exception:
            log.failure("sending to {ip} failed", ip=self.peer.ip)
            sent = False
        if sent:
            stats.sent += 1
        else:
            stats.dropped += 1

    def _slow_consumer(self) -> None:
        self.gate.stats.slow_consumers += 1
        log.warn(
            "closing slow consumer {ip} ({conn}): {buffered} bytes unread, limit {limit}",
            ip=self.peer.ip,
            conn=self.conn_id,
            buffered=self.transport.buffered(),
            limit=self.version.max_buffered,
        )
        self.close(1008, "slow consumer")

    # -- NodeLink (when this connection is a node)

    def send_invoke(self, invoke_id: str, command: str, params_json: str | None, timeout_ms: int, idempotency_key: str | None) -> None:
        payload: dict[str, Any] = {"id": invoke_id, "nodeId": self.node_id, "command": command, "paramsJSON": params_json, "timeoutMs": timeout_ms}
        if idempotency_key:
            payload["idempotencyKey"] = idempotency_key
        self.send_direct("node.invoke.request", payload)

    def disconnect(self, reason: str) -> None:
        self.close(1000, reason)

    # -- handshake

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _handshake_timeout(self) -> None:
        self._timeout = None
        log.info("handshake timeout from {ip}", ip=self.peer.ip)
        self.close(1000, "")

    def _handshake(self, payload: bytes) -> None:
        if len(payload) > PREAUTH_MAX_PAYLOAD:
            self.close(1009, "preauth payload too large")
            return
        try:
            request = frames.parse(payload)
        except frames.NotJSON:
            self.close(1000, "")
            return
        except frames.FrameError:
            self.close(1008, "invalid request frame")
            return
        if request.method != "connect":
            message = "invalid handshake: first request must be connect"
            self.fail(request.id, GatewayError(INVALID_REQUEST, message))
            self.close(1008, message)
            return
        try:
            admitted = self.gate.handshake.admit(request.params, self.peer, self.nonce, self.conn_id)
        except HandshakeFailed as e:
            log.info("connect refused from {ip}: {message}", ip=self.peer.ip, message=e.message)
            if e.respond:
                self.fail(request.id, e)
            self.close(e.close_code, e.close_reason)
            return
        self.version = admitted.version
        self.role = admitted.role
        self.scopes = admitted.scopes
        self.client = admitted.client
        self.caps = admitted.caps
        self.auth_method = admitted.auth_method
        self.device_id = admitted.device_id
        self.presence_key = admitted.presence_key
        if admitted.node is not None:
            self.node_id, self.node_info = admitted.node.node_id, admitted.node
        hello = self.gate.hello.build(self.conn_id, self.version, admitted.role, self.scopes, admitted.device_token)
        self._cancel_timeout()
        self.state = State.READY
        self.transport.set_max_payload(self.version.max_payload)
        self.respond(request.id, hello)
        self.gate.roster.join(self)

    def presence_entry(self) -> dict[str, Any] | None:
        if self.presence_key is None:
            return None
        c = self.client
        entry = {
            "host": c.get("displayName") or c.get("id"),
            "ip": self.peer.ip,
            "version": c.get("version"),
            "platform": c.get("platform"),
            "deviceFamily": c.get("deviceFamily"),
            "modelIdentifier": c.get("modelIdentifier"),
            "mode": c.get("mode"),
            "reason": "connect",
            "deviceId": self.device_id,
            "instanceId": c.get("instanceId"),
            "roles": [self.role] if self.role else None,
            "scopes": list(self.scopes),
            "ts": self.gate.boot.now_ms(),
        }
        return {k: v for k, v in entry.items() if v not in (None, "")}

    # -- requests

    def _request(self, payload: bytes) -> None:
        try:
            request = frames.parse(payload, allow_traceparent=self.version.number >= 4)
        except frames.NotJSON as e:
            self.fail("invalid", GatewayError(INVALID_REQUEST, f"invalid request frame: {e}"))
            return
        except frames.FrameError as e:
            self.fail(e.id or "invalid", GatewayError(INVALID_REQUEST, f"invalid request frame: {e}"))
            return
        if request.method == "connect":
            self.fail(request.id, GatewayError(INVALID_REQUEST, "connect is only valid as the first request"))
            return
        try:
            authorize(request.method, self.role or "", self.scopes, self.version)
        except RoleError as e:
            self.role_failures += 1
            self.fail(request.id, e)
            if self.role_failures > MAX_ROLE_FAILURES:
                self.close(1008, "repeated unauthorized calls")
            return
        except GatewayError as e:
            self.fail(request.id, e)
            return
        self.role_failures = 0
        handler = self.gate.methods.handler(request.method)  # metered: the dispatch point
        if handler is None:
            self.fail(request.id, GatewayError(INVALID_REQUEST, f"unknown method: {request.method}"))
            return
        params = request.params if request.params is not None else {}
        self._run(request, handler, params)

    def _run(self, request: frames.Request, handler: Handler, params: Any) -> None:
        # e.g. `agent` answers twice under the same id: "accepted" now, the final payload later
        run(handler, self, params, lambda value: self.respond(request.id, value), lambda f: self._failed(request, f))

    def _failed(self, request: frames.Request, failure: Failure) -> None:
        """
        A handler's failure as the client sees it: its own error, bad input as
        INVALID_REQUEST (the client's mistake: debug only), anything else as
        UNAVAILABLE with a traceback in the log (ours).
        """
        error = failure.value
        if isinstance(error, GatewayError):
            self.fail(request.id, error)
        elif isinstance(error, InvalidInput):
            log.debug("method {method}: invalid input: {problem}", method=request.method, problem=str(error))
            self.fail(request.id, GatewayError(INVALID_REQUEST, f"invalid {request.method} params: {error}"))
        else:
            log.failure("method {method} failed", failure, method=request.method)
            self.fail(request.id, GatewayError(UNAVAILABLE, failure.getErrorMessage() or type(error).__name__))
