# -*- test-case-name: tests.test_admission,tests.test_service -*-
"""
Listening services that fail loudly: a port that cannot be bound raises at
start-up (every time, not only the first), naming the port and its owner.
And L{Admission}: who gets a connection slot, and for how long without
authenticating.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IProtocol, IProtocolFactory, IReactorTime, IStreamServerEndpoint, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from openclaw.net.portowner import describe_port_owner


log = Logger(namespace="openclaw.listen")

LISTEN_BACKLOG = 511  # Twisted's default of 50 drops SYNs under a burst of connects


class StartupError(Exception):
    """The gateway cannot start as configured (the message says why)."""


class PortInUse(StartupError):
    """The gateway cannot bind its port."""


PENDING = "pending"  # must authenticate (or finish its HTTP request) before its deadline
OPEN = "open"  # unauthenticated but allowed to stay: a live-reload socket, a node awaiting approval
TRUSTED = "trusted"  # authenticated: outside the per-address budget, never evicted
ABORT_GRACE = 2.0  # seconds a closed connection gets to flush before it is aborted


class AdmissionProtocol(ProtocolWrapper):
    """
    One admitted connection. C{since} is when it last became pending (accept,
    or its last HTTP response); its deadline runs from then and no byte
    received moves it.
    """

    def __init__(self, factory: "Admission", wrapped: IProtocol, ip: str) -> None:
        self._wrapped: IProtocol | None = None
        super().__init__(factory, wrapped)  # type: ignore[arg-type]  # Admission is a WrappingFactory of these
        self.admission = factory
        self.ip = ip
        self.since = factory.clock.seconds()
        self._timer: IDelayedCall | None = None

    # autobahn's WebSocketResource swaps in the WebSocket protocol on upgrade.
    @property  # type: ignore[override]
    def wrappedProtocol(self) -> IProtocol | None:
        return self._wrapped

    @wrappedProtocol.setter
    def wrappedProtocol(self, protocol: IProtocol | None) -> None:
        upgraded = self._wrapped is not None and protocol is not None
        self._wrapped = protocol
        if upgraded:
            # One restart, at the upgrade: the WebSocket's own connect deadline
            # runs from here; this one backs it up.
            self.arm(self.admission.upgrade_deadline)

    def kind(self) -> str:
        return PENDING if self._wrapped is None else self.admission.classify(self._wrapped)

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._timer = self.admission.clock.callLater(seconds, self._expired)

    def disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def idle(self) -> None:
        """An HTTP response ended: the next request must arrive within a fresh deadline."""
        if self._wrapped is None or self.disconnecting:
            return
        self.since = self.admission.clock.seconds()
        self.arm(self.admission.deadline)

    def _expired(self) -> None:
        self._timer = None
        kind = self.kind()
        if kind == OPEN:
            # Allowed to stay while open; looked at again in case it falls back
            # to pending (a bridge node after its pairing was answered).
            self.arm(self.admission.deadline)
            return
        if kind == TRUSTED:
            return  # an HTTP response that ends re-arms it
        self.admission.expired += 1
        log.debug("connection from {ip} closed: not authenticated within its deadline", ip=self.ip)
        self.close()

    def close(self) -> None:
        """Close now; abort if the peer does not let the buffers drain."""
        self.loseConnection()
        self._timer = self.admission.clock.callLater(ABORT_GRACE, self._abort)

    def _abort(self) -> None:
        self._timer = None
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.disarm()
        super().connectionLost(reason)


class Admission(WrappingFactory):
    """
    Admits connections so that unauthenticated ones cannot lock anyone out.

    Every connection starts pending and must authenticate (a WebSocket
    C{connect}), or finish its HTTP request, within C{deadline} seconds;
    C{classify(protocol)} says where a connection stands now. Unauthenticated
    connections get C{per_address} slots per client address: a new one over
    that evicts the address's oldest unauthenticated connection. At C{limit}
    connections in all, a new one evicts the oldest unauthenticated connection,
    and is refused only when every connection is authenticated.
    """

    protocol = AdmissionProtocol
    noisy = False

    def __init__(
        self,
        wrapped: IProtocolFactory,
        clock: IReactorTime,
        limit: int,
        per_address: int,
        deadline: float,
        upgrade_deadline: float | None = None,
        classify: Callable[[IProtocol], str] = lambda protocol: PENDING,
        exempt: Callable[[str], bool] = lambda ip: False,
    ) -> None:
        super().__init__(wrapped)
        self.clock = clock
        self.limit = limit
        self.per_address = per_address
        self.deadline = deadline
        self.upgrade_deadline = deadline if upgrade_deadline is None else upgrade_deadline
        self.classify = classify
        self.exempt = exempt  # addresses outside the per-address budget (trusted proxies)
        self.by_address: dict[str, set[AdmissionProtocol]] = {}
        self.evicted = 0
        self.expired = 0

    def _waiting(self, connections: Iterable[AdmissionProtocol]) -> list[AdmissionProtocol]:
        """Unauthenticated connections, oldest first (the one that had longest to finish goes first)."""
        return sorted((p for p in connections if p.kind() != TRUSTED), key=lambda p: p.since)

    def buildProtocol(self, addr: Any) -> AdmissionProtocol | None:  # type: ignore[override]  # None refuses (Twisted allows it)
        ip = str(getattr(addr, "host", addr))
        if not self.exempt(ip):
            waiting = self._waiting(self.by_address.get(ip, ()))
            for victim in waiting[: max(0, len(waiting) - self.per_address + 1)]:
                self._evict(victim, "over its address's budget of unauthenticated connections")
        if len(self.protocols) >= self.limit:
            waiting = self._waiting(self.protocols)
            if not waiting:
                log.warn("connection from {peer} refused: {limit} authenticated connections open", peer=ip, limit=self.limit)
                return None
            self._evict(waiting[0], "the oldest unauthenticated connection at the connection limit")
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped, ip)

    def _evict(self, victim: AdmissionProtocol, why: str) -> None:
        self.evicted += 1
        log.debug("connection from {ip} closed: {why}", ip=victim.ip, why=why)
        self.unregisterProtocol(victim)  # its slot is free now, not when the abort lands
        victim.disarm()
        if victim.transport is not None:
            cast(ITCPTransport, victim.transport).abortConnection()

    def registerProtocol(self, p: AdmissionProtocol) -> None:
        super().registerProtocol(p)
        self.by_address.setdefault(p.ip, set()).add(p)
        p.arm(self.deadline)

    def unregisterProtocol(self, p: AdmissionProtocol) -> None:
        self.protocols.pop(p, None)
        mine = self.by_address.get(p.ip)
        if mine is not None:
            mine.discard(p)
            if not mine:
                del self.by_address[p.ip]


class ListenService(Service):
    """Listens on one endpoint while running; C{port} is the bound port."""

    def __init__(self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, label: str, port: int) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.label = label
        self.requested_port = port
        self.listening: IListeningPort | None = None

    @property
    def address(self) -> IPv4Address:
        """Where it listens (TCP or TLS over TCP)."""
        assert self.listening is not None, "not listening"
        host = self.listening.getHost()
        assert isinstance(host, IPv4Address)
        return host

    @property
    def port(self) -> int:
        return self.address.port

    def _listen(self) -> None:
        if self.listening is not None:
            return
        results: list[Any] = []
        self.endpoint.listen(self.factory).addBoth(results.append)
        if not results:
            raise RuntimeError(f"{self.label}: endpoint did not listen synchronously")
        outcome = results[0]
        if not isinstance(outcome, Failure):
            self.listening = outcome
            return
        if outcome.check(CannotListenError):
            raise PortInUse(f"cannot listen for {self.label} on port {self.requested_port}: {describe_port_owner(self.requested_port)}")
        outcome.raiseException()

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        self._listen()
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        listening, self.listening = self.listening, None
        if listening is None:
            return None
        return listening.stopListening()


def bridge_endpoint(reactor: Any, port: int, host: str, tls: Any, state_dir: Any) -> IStreamServerEndpoint:
    """TCP, or TLS with C{bridge.tls.certPath}/C{keyPath} (PEM) when enabled."""
    if not tls:
        return TCP4ServerEndpoint(reactor, port, backlog=LISTEN_BACKLOG, interface=host)
    folder = Path(state_dir) / "bridge" / "tls"
    cert = Path(tls.get("certPath") or folder / "bridge-cert.pem").expanduser()
    key = Path(tls.get("keyPath") or folder / "bridge-key.pem").expanduser()
    try:
        pem = key.read_bytes() + b"\n" + cert.read_bytes()
    except OSError as e:
        raise StartupError(f"bridge TLS is enabled but its certificate cannot be read: {e.strerror}: {e.filename}")
    options = PrivateCertificate.loadPEM(pem).options()
    return SSL4ServerEndpoint(reactor, port, options, backlog=LISTEN_BACKLOG, interface=host)
