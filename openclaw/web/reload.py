# -*- test-case-name: tests.test_canvas -*-
"""The canvas live-reload WebSocket: every open socket gets the text C{reload}."""

from __future__ import annotations

from typing import Any

import txaio

txaio.use_twisted()

from autobahn.twisted.resource import WebSocketResource  # noqa: E402
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Request  # noqa: E402

from openclaw.web.canvas import UpgradeRequired  # noqa: E402
from openclaw.web.root import wants_websocket  # noqa: E402

MAX_RELOAD_SOCKETS = 256


class ReloadProtocol(WebSocketServerProtocol):
    maxMessagePayloadSize = 1024
    failByDrop = False

    def onOpen(self) -> None:
        if len(self.factory.sockets) >= MAX_RELOAD_SOCKETS:
            self.sendClose(4008, "too many live-reload sockets")
            return
        self.factory.sockets.add(self)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.sockets.discard(self)


class ReloadFactory(WebSocketServerFactory):
    protocol = ReloadProtocol

    def __init__(self) -> None:
        super().__init__()
        self.sockets: set[ReloadProtocol] = set()
        self.setProtocolOptions(failByDrop=False, allowNullOrigin=True)

    def reload(self) -> int:
        for socket in list(self.sockets):
            socket.sendMessage(b"reload", isBinary=False)
        return len(self.sockets)

    def close_all(self) -> None:
        for socket in list(self.sockets):
            socket.sendClose(1000)


class ReloadResource(Resource):
    """WebSocket upgrades go to the reload factory; plain HTTP gets 426."""

    isLeaf = True

    def __init__(self, factory: ReloadFactory) -> None:
        super().__init__()
        self.factory = factory
        self._ws = WebSocketResource(factory)

    def render(self, request: Request) -> bytes:
        if wants_websocket(request):
            return self._ws.render(request)
        return UpgradeRequired().render(request)
