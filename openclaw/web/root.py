# -*- test-case-name: tests.test_service -*-
"""
The root of the gateway port: WebSocket upgrades on any path go to the
WebSocket resource; everything else is routed by path.
"""

from __future__ import annotations

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from openclaw.web.controlui import ControlUi
from openclaw.web.health import Health
from openclaw.web.jsonpage import not_found


def wants_websocket(request: Request) -> bool:
    upgrade = request.getHeader(b"upgrade") or b""
    return upgrade.strip().lower() == b"websocket"


class GatewayRoot(Resource):
    """Routes by path; C{websocket} takes upgrades whatever their path."""

    def __init__(self, websocket: IResource | None = None) -> None:
        super().__init__()
        self.websocket = websocket
        self.ui: ControlUi | None = None  # the Control UI when its base path is "/"
        health = Health()
        self.putChild(b"health", health)
        self.putChild(b"healthz", health)

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        # /__openclaw__/ has sockets of its own (canvas live reload)
        if self.websocket is not None and wants_websocket(request) and path != b"__openclaw__":
            return self.websocket
        return super().getChildWithDefault(path, request)

    def mount_ui(self, ui: ControlUi) -> None:
        """The Control UI at its base path; paths the root serves itself keep precedence."""
        if ui.mount:
            self.putChild(ui.mount, ui)
        else:
            self.ui = ui

    def getChild(self, path: bytes, request: Request) -> IResource:
        if self.ui is not None:
            # The UI reads the whole path itself (the segment was moved to prepath).
            assert request.postpath is not None and request.prepath is not None  # set while traversing
            request.postpath.insert(0, request.prepath.pop())
            return self.ui
        return not_found()

    def render(self, request: Request) -> bytes:
        if self.websocket is not None and wants_websocket(request):
            return self.websocket.render(request)
        return not_found().render(request)
