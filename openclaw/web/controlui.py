# -*- test-case-name: tests.test_controlui -*-
"""
The Control UI (at C{gateway.controlUi.basePath}, default C{/}) and WebChat
(at C{<base>chat}): static files shipped in C{openclaw/web/ui/}.

The files (the bundled ones, or C{gateway.controlUi.root}) are indexed once, at start: a request can only name a file of that
index (no path is ever joined from request bytes), and the index itself holds
no symlink that leads out of the folder. UI routes get their HTML shell, files
under C{assets/} are served as they are, anything else is the JSON 404.

Every answer carries a strict Content-Security-Policy (scripts and styles
only from this origin, WebSocket connections only to this gateway's own
origin, never framed) and C{nosniff}; the shells are C{no-store}.
"""

from __future__ import annotations

import hashlib
import html
import importlib.resources
import os
import re
from pathlib import Path
from typing import Protocol

import attrs
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from openclaw import __version__
from openclaw.web.jsonpage import JsonError, not_found

log = Logger(namespace="openclaw.controlui")

# Path routes of the two pages (history.pushState in the browser); a reload keeps the tab.
CONTROL_TABS = ("overview", "channels", "sessions", "approvals", "nodes", "cron", "skills", "logs", "config")
SHELLS = {"": "index.html", **{tab: "index.html" for tab in CONTROL_TABS}, "chat": "chat.html"}
ASSETS = "assets"
MAX_FILES = 500
MAX_FILE_BYTES = 4 * 1024 * 1024
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json; charset=utf-8",
    ".woff2": "font/woff2",
}
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
SECURITY_HEADERS = {
    b"X-Content-Type-Options": b"nosniff",
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"no-referrer",
    b"Cross-Origin-Opener-Policy": b"same-origin",
    b"Cross-Origin-Resource-Policy": b"same-origin",
    b"Permissions-Policy": b"camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


class Renders(Protocol):
    def render(self, request: Request) -> bytes: ...


# upstream's v4 UI bootstrap config, at its current and its older name (openclaw/web/uiconfig.py)
CONFIG_NAMES = ((b"control-ui-config.json",), (b"__openclaw", b"control-ui-config.json"))


@attrs.frozen
class Asset:
    data: bytes
    content_type: str
    etag: str


def bundled_root() -> Path:
    """The UI files shipped with the package."""
    return Path(str(importlib.resources.files("openclaw.web") / "ui"))


def index_files(root: Path) -> dict[str, Asset]:
    """
    Every servable file under C{root} by its relative POSIX path: known types
    only, no dotfiles, nothing whose real path leaves the real root, bounded.
    """
    real_root = os.path.realpath(root)
    found: dict[str, Asset] = {}
    for folder, dirs, files in os.walk(real_root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith(".") or suffix not in CONTENT_TYPES:
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if not real.startswith(real_root + os.sep) or not os.path.isfile(real):
                continue  # a symlink out of the folder (or to nothing)
            if os.path.getsize(real) > MAX_FILE_BYTES or len(found) >= MAX_FILES:
                continue
            with open(real, "rb") as f:
                data = f.read()
            relative = os.path.relpath(path, real_root).replace(os.sep, "/")
            found[relative] = Asset(data, CONTENT_TYPES[suffix], '"' + hashlib.sha256(data).hexdigest()[:20] + '"')
    return found


def connect_source(host: bytes | None) -> str:
    """This gateway's own WebSocket origin, from the Host the browser used."""
    text = (host or b"").decode("latin-1").strip()
    if not text or not _HOST.match(text):
        return "'self'"
    return f"ws://{text} wss://{text}"


def content_security_policy(host: bytes | None) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {connect_source(host)}",
            "manifest-src 'self'",
            "base-uri 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class ControlUi(Resource):
    """
    The UI as one leaf. C{prefix} is what remains of the base path below the
    point where the leaf is mounted (for a base of C{/a/b/} mounted at C{a}: C{[b"b"]}).
    """

    isLeaf = True

    def __init__(self, base_path: str = "/", root: Path | None = None, version: str = __version__, ui_config: Renders | None = None) -> None:
        super().__init__()
        self.ui_config = ui_config  # <base>control-ui-config.json (upstream's v4 UI bootstrap), when served
        self.base_path = base_path
        self.mount, self.prefix = mount_point(base_path)
        self.root = root or bundled_root()
        self.version = version
        self.files: dict[str, Asset] = {}

    def load(self) -> "ControlUi":
        """Index the files (once, at start); returns self. Until then every page is a 404."""
        self.files = index_files(self.root)
        missing = sorted(set(SHELLS.values()) - set(self.files))
        if missing:
            log.warn("Control UI: {missing} not found in {root}", missing=", ".join(missing), root=str(self.root))
        fields = {b"{{BASE}}": self.base_path, b"{{VERSION}}": self.version}
        for name in set(SHELLS.values()):
            shell = self.files.get(name)
            if shell is None:
                continue
            data = shell.data
            for field, value in fields.items():
                data = data.replace(field, html.escape(value, quote=True).encode())
            self.files[name] = attrs.evolve(shell, data=data)
        return self

    def render(self, request: Request) -> bytes:
        rest = list(request.postpath or [])
        if rest[: len(self.prefix)] != self.prefix:
            return not_found().render(request)
        rest = rest[len(self.prefix) :]
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return JsonError(405, "method_not_allowed", "Method Not Allowed").render(request)
        if not rest:
            # "/openclaw" without its slash: relative asset URLs need the slash
            request.setResponseCode(308)
            request.setHeader(b"Location", self.base_path.encode())
            request.setHeader(b"Content-Length", b"0")
            return b""
        if self.ui_config is not None and tuple(rest) in CONFIG_NAMES:
            return self.ui_config.render(request)
        if rest[0] == ASSETS.encode() and len(rest) > 1:
            try:
                name = "/".join(s.decode("utf-8") for s in rest)
            except UnicodeDecodeError:
                return not_found().render(request)
            asset = self.files.get(name)
            if asset is None:
                return not_found().render(request)
            return self._send(request, asset, shell=False)
        route = rest[0].decode("latin-1") if len(rest) == 1 or rest[1:] == [b""] else None
        shell_name = SHELLS.get(route) if route is not None else None
        shell = self.files.get(shell_name) if shell_name is not None else None
        if shell is None:
            return not_found().render(request)
        return self._send(request, shell, shell=True)

    def _send(self, request: Request, asset: Asset, shell: bool) -> bytes:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"Content-Security-Policy", content_security_policy(request.getHeader(b"host")).encode())
        request.setHeader(b"Content-Type", asset.content_type.encode())
        if shell:
            request.setHeader(b"Cache-Control", b"no-store")
        else:
            # Revalidated every time: files change with the package, their names do not.
            request.setHeader(b"Cache-Control", b"no-cache")
            request.setHeader(b"ETag", asset.etag.encode())
            if asset.etag.encode() in [t.strip() for t in (request.getHeader(b"if-none-match") or b"").split(b",")]:
                request.setResponseCode(304)
                return b""
        request.setResponseCode(200)
        request.setHeader(b"Content-Length", str(len(asset.data)).encode())
        return b"" if request.method == b"HEAD" else asset.data


def mount_point(base_path: str) -> tuple[bytes, list[bytes]]:
    """Where a base path hangs off the root: its first segment (b"" for C{/}) and the rest."""
    segments = [s.encode() for s in base_path.split("/") if s]
    return (segments[0], segments[1:]) if segments else (b"", [])
