# -*- test-case-name: tests.test_service -*-
"""
Listening services that fail loudly: a port that cannot be bound raises at
start-up (every time, not only the first), naming the port and its owner.
"""

from __future__ import annotations

from typing import Any

from pathlib import Path

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure

from openclaw.portowner import describe_port_owner


log = Logger(namespace="openclaw.listen")

LISTEN_BACKLOG = 511  # Twisted's default of 50 drops SYNs under a burst of connects


class StartupError(Exception):
    """The gateway cannot start as configured (the message says why)."""


class PortInUse(StartupError):
    """The gateway cannot bind its port."""


class ConnectionLimit(WrappingFactory):
    """Refuses connections beyond C{limit} open ones (the new one is closed at once)."""

    noisy = False

    def __init__(self, wrapped: IProtocolFactory, limit: int) -> None:
        super().__init__(wrapped)
        self.limit = limit

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.protocols) >= self.limit:
            log.warn("connection from {peer} refused: {limit} connections open", peer=str(addr), limit=self.limit)
            return None
        return super().buildProtocol(addr)


class ListenService(Service):
    """Listens on one endpoint while running; C{port} is the bound port."""

    def __init__(self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, label: str, port: int) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.label = label
        self.requested_port = port
        self.listening: IListeningPort | None = None

    @property
    def port(self) -> int:
        assert self.listening is not None, "not listening"
        return self.listening.getHost().port

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
