# -*- test-case-name: tests.test_service -*-
"""
Listening services that fail loudly: a port that cannot be bound raises at
start-up (every time, not only the first), naming the port and its owner.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure

from openclaw.portowner import describe_port_owner


log = Logger(namespace="openclaw.listen")


class PortInUse(Exception):
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
