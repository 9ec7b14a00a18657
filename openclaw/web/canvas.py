# -*- test-case-name: tests.test_canvas -*-
"""
The canvas host: files under C{canvasHost.root} for nodes to show, with a
live-reload WebSocket.

No request leaves the root: segments are checked (no C{..}, no separators,
no NUL), then the resolved real path must stay inside the real root, so
symlinks pointing out are refused too. Only GET and HEAD; C{no-store}.
"""

from __future__ import annotations

import html
import mimetypes
import os
import importlib.resources
from pathlib import Path
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from openclaw.store import atomic_write, ensure_dir

log = Logger(namespace="openclaw.canvas")

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_WATCHED_FILES = 20_000
POLL_SECONDS = 0.25
DEBOUNCE_SECONDS = 0.075
RELOAD_PATH = "/__openclaw__/ws"

SCAFFOLD = """<!doctype html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>OpenClaw Canvas</title>
    <style>body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }</style>
  </head>
  <body>
    <h1>OpenClaw Canvas</h1>
    <p>Edit <code>index.html</code> in the canvas folder; this page reloads itself.</p>
  </body>
</html>
"""

# Reconnects with backoff so a gateway restart does not need a manual reload.
RELOAD_SCRIPT = """<script>(function(){var d=1000;function c(){var p=location.protocol==="https:"?"wss:":"ws:";
var s=new WebSocket(p+"//"+location.host+"%s");s.onmessage=function(e){if(e.data==="reload")location.reload();};
s.onopen=function(){d=1000;};s.onclose=function(){setTimeout(c,d);d=Math.min(d*2,30000);};}c();})();</script>""" % RELOAD_PATH


def ensure_scaffold(root: Path) -> None:
    """Create the root (0700) with a starter index.html if it has none."""
    ensure_dir(root)
    index = root / "index.html"
    if not index.exists():
        atomic_write(index, SCAFFOLD.encode("utf-8"), mode=0o644)


def resolve(root: Path, segments: list[bytes]) -> Path | None:
    """The real path a request names inside C{root}, or None if it may not be served."""
    parts = []
    for raw in segments:
        try:
            part = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if part in ("", "."):
            continue
        if part == ".." or "/" in part or "\\" in part or "\x00" in part or part.startswith("~"):
            return None
        parts.append(part)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, *parts))
    if target != real_root and not target.startswith(real_root + os.sep):
        return None  # a symlink that points out of the root
    return Path(target)


def _text(request: Request, code: int, body: str, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    data = body.encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", str(len(data)).encode())
    return b"" if request.method == b"HEAD" else data


class CanvasFiles(Resource):
    """Serves C{root}; a leaf that reads the rest of the path itself."""

    isLeaf = True

    def __init__(self, root: Path, live_reload: bool = True) -> None:
        super().__init__()
        self.root = Path(root)
        self.live_reload = live_reload

    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return _text(request, 405, "Method Not Allowed")
        postpath = request.postpath or []
        if any(b"\x00" in s for s in postpath):
            return _text(request, 400, "bad request")
        target = resolve(self.root, postpath)
        if target is None:
            return _text(request, 404, "not found")
        if target.is_dir():
            index = target / "index.html"
            if not index.is_file():
                where = html.escape(str(self.root / "index.html"))
                return _text(request, 404, f"<!doctype html><p>Missing file. Create {where}</p>", b"text/html; charset=utf-8")
            target = index
        if not target.is_file():
            return _text(request, 404, "not found")
        try:
            size = target.stat().st_size
            if size > MAX_FILE_BYTES:
                return _text(request, 413, "file too large")
            data = target.read_bytes()
        except OSError:
            return _text(request, 404, "not found")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type == "text/html" and self.live_reload:
            data = inject_reload(data)
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", content_type.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", str(len(data)).encode())
        return b"" if request.method == b"HEAD" else data


def inject_reload(data: bytes) -> bytes:
    script = RELOAD_SCRIPT.encode()
    lower = data.lower()
    at = lower.rfind(b"</body>")
    return data[:at] + script + data[at:] if at >= 0 else data + script


class UpgradeRequired(Resource):
    """The live-reload path answered over plain HTTP: 426."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setHeader(b"Upgrade", b"websocket")
        return _text(request, 426, "upgrade required")


class Watcher:
    """
    Polls the root's files (bounded) and calls C{changed()} once per burst of
    changes, C{DEBOUNCE_SECONDS} after the last one. Dotfiles and
    C{node_modules} are ignored.
    """

    def __init__(self, root: Path, clock: IReactorTime, changed: Callable[[], object]) -> None:
        self.root = Path(root)
        self.clock = clock
        self.changed = changed
        self._snapshot: dict[str, tuple[int, int]] = {}
        self._loop = LoopingCall(self.poll)
        self._loop.clock = clock
        self._pending: Any = None

    def _scan(self) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
            for name in files:
                if name.startswith("."):
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                seen[path] = (st.st_mtime_ns, st.st_size)
                if len(seen) >= MAX_WATCHED_FILES:
                    return seen
        return seen

    def start(self) -> None:
        self._snapshot = self._scan()
        self._loop.start(POLL_SECONDS, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()

    def poll(self) -> None:
        snapshot = self._scan()
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        if self._pending is not None and self._pending.active():
            self._pending.reset(DEBOUNCE_SECONDS)
        else:
            self._pending = self.clock.callLater(DEBOUNCE_SECONDS, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self.changed()


def a2ui_assets() -> Path:
    """Our A2UI v0.8 host page and renderer, shipped in the package."""
    return Path(str(importlib.resources.files("openclaw.web") / "a2ui"))


def canvas_tree(root: Path, live_reload: bool, reload_resource: Resource | None) -> Resource:
    """The C{/__openclaw__/} tree: C{canvas/} files, C{a2ui/} assets, the C{ws} live-reload socket."""
    tree = Resource()
    tree.putChild(b"canvas", CanvasFiles(root, live_reload))
    tree.putChild(b"a2ui", CanvasFiles(a2ui_assets(), live_reload=False))
    tree.putChild(b"ws", reload_resource if reload_resource is not None else UpgradeRequired())
    return tree
