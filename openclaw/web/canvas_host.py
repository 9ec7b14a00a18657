# -*- test-case-name: tests.test_canvas -*-
"""
The canvas host service: scaffold, watcher, live reload, the C{/__openclaw__/}
tree for the gateway port, and a standalone site for C{canvasHost.port}.
"""

from __future__ import annotations

from pathlib import Path
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from openclaw.web.canvas import CanvasFiles, Watcher, canvas_tree, ensure_scaffold
from openclaw.web.reload import ReloadFactory, ReloadResource

log = Logger(namespace="openclaw.canvas")


class CanvasRoot(Resource):
    """The standalone site: C{/__openclaw__/...} as on the gateway, files at C{/}."""

    def __init__(self, tree: Resource, files: CanvasFiles) -> None:
        super().__init__()
        self.tree = tree
        self.files = files

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        if path == b"__openclaw__":
            return self.tree
        # Hand the whole path to the files leaf (it was already moved to prepath).
        assert request.postpath is not None and request.prepath is not None  # set while traversing
        request.postpath.insert(0, request.prepath.pop())
        return self.files


class CanvasHost(Service):
    name = "canvas"

    def __init__(self, root: Path, live_reload: bool, clock: IReactorTime) -> None:
        self.root = Path(root)
        self.live_reload = live_reload
        self.clock = clock
        self.reload_factory = ReloadFactory()
        self.tree = canvas_tree(self.root, live_reload, ReloadResource(self.reload_factory))
        self.site_root = CanvasRoot(self.tree, CanvasFiles(self.root, live_reload))
        self.watcher = Watcher(self.root, clock, self._changed) if live_reload else None

    def _changed(self) -> None:
        count = self.reload_factory.reload()
        log.debug("canvas changed; reload sent to {count} sockets", count=count)

    def startService(self) -> None:
        super().startService()
        ensure_scaffold(self.root)  # at start, with the state dir locked (the root is in it by default)
        if self.watcher is not None:
            self.watcher.start()

    def stopService(self) -> None:
        super().stopService()
        if self.watcher is not None:
            self.watcher.stop()
        self.reload_factory.close_all()
