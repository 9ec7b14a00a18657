# -*- test-case-name: tests.test_client -*-
"""The autobahn adapter for L{ClientCore}: C{await open_gateway(...)} then C{call}."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.ssl import optionsForClientTLS  # noqa: E402

from openclaw.client.core import ClientCore, GatewayClosed  # noqa: E402
from openclaw.client.identity import DeviceIdentity  # noqa: E402


class _Protocol(WebSocketClientProtocol):
    core: ClientCore | None = None

    def onOpen(self) -> None:
        self.core = ClientCore(lambda text: self.sendMessage(text.encode("utf-8")), self.factory.params, self.factory.identity)
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.core is not None:
            self.core.received(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.core is not None:
            self.core.closed(code, reason)
        elif not self.factory.opened.called:
            self.factory.opened.errback(GatewayClosed(code, reason))


class _Factory(WebSocketClientFactory):
    protocol = _Protocol

    def __init__(self, url: str, params: dict[str, Any], identity: DeviceIdentity | None) -> None:
        super().__init__(url)
        self.params = params
        self.identity = identity
        self.opened: Deferred[_Protocol] = Deferred()


class GatewayConnection:
    def __init__(self, protocol: _Protocol) -> None:
        self.protocol = protocol
        assert protocol.core is not None
        self.core: ClientCore = protocol.core

    @property
    def hello(self) -> dict[str, Any]:
        assert self.core.hello is not None
        return self.core.hello

    def call(self, method: str, params: Any = None, expect_final: bool = False) -> Deferred[Any]:
        return self.core.call(method, params, expect_final)

    def close(self) -> None:
        self.protocol.sendClose(1000)


def endpoint_for(reactor: Any, url: str) -> tuple[Any, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"gateway URL must be ws:// or wss://, got {url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 18789)
    endpoint: Any = HostnameEndpoint(reactor, parts.hostname, port, timeout=10)
    if parts.scheme == "wss":
        endpoint = wrapClientTLS(optionsForClientTLS(parts.hostname), endpoint)
    return endpoint, f"{parts.scheme}://{parts.hostname}:{port}{parts.path or '/'}"


async def open_gateway(reactor: Any, url: str, params: dict[str, Any], identity: DeviceIdentity | None, timeout: float = 10.0) -> GatewayConnection:
    """Connect, answer the challenge, and return once hello-ok arrived."""
    endpoint, full_url = endpoint_for(reactor, url)
    factory = _Factory(full_url, params, identity)
    await endpoint.connect(factory)
    protocol = await factory.opened.addTimeout(timeout, reactor)
    connection = GatewayConnection(protocol)
    await connection.core.ready.addTimeout(timeout, reactor)
    return connection
