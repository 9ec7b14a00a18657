"""The Control UI and WebChat over HTTP: shells, assets, headers, confinement, routes kept, base path, origins."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.config import ConfigError, Flags, LoadedConfig, resolve_settings
from openclaw.config.schema import validate
from openclaw.paths import resolve_layout
from openclaw.web.controlui import CONTROL_TABS, bundled_root, connect_source, content_security_policy, index_files
from tests.helpers import base_env, scratch_home
from tests.wsclient import WS, Client, GatewayMixin


def fetch(port, method, path, headers=None):
    """One request with the path sent as written; returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True, skip_host="Host" in (headers or {}))
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def settings_with(home, **gateway):
    env = base_env(home)
    loaded = LoadedConfig(path=home / "openclaw.json", exists=False, raw=None, hash=None, config={"gateway": {"mode": "local", **gateway}}, env=env)
    return resolve_settings(loaded, resolve_layout(env), Flags(port=0))


class ServingTests(GatewayMixin, TestCase):
    async def get(self, path, method="GET", headers=None):
        return await deferToThread(fetch, self.service.port, method, path, headers)

    def assertJson404(self, result, path):
        status, headers, body = result
        self.assertEqual(status, 404, path)
        self.assertEqual(headers["content-type"], "application/json; charset=utf-8", path)
        self.assertEqual(json.loads(body)["error"]["type"], "not_found", path)

    async def test_shells_and_headers(self):
        """/ and every tab route get the Control UI shell, /chat the WebChat shell: strict CSP, nosniff, no-store."""
        await self.gateway()
        port = self.service.port
        for path, script in [("/", b"assets/control.js"), ("/chat", b"assets/chat.js"), ("/chat/", b"assets/chat.js")] + [(f"/{t}", b"assets/control.js") for t in CONTROL_TABS]:
            status, headers, body = await self.get(path)
            self.assertEqual(status, 200, path)
            self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
            self.assertIn(b'<script type="module" src="' + script + b'">', body)
            self.assertIn(b'<base href="/">', body)
            self.assertNotIn(b"{{", body)
            csp = headers["content-security-policy"]
            for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", f"connect-src ws://127.0.0.1:{port} wss://127.0.0.1:{port}", "frame-ancestors 'none'", "base-uri 'self'"):
                self.assertIn(directive, csp)
            self.assertNotIn("unsafe", csp)
            self.assertEqual(headers["x-content-type-options"], "nosniff")
            self.assertEqual(headers["x-frame-options"], "DENY")
            self.assertEqual(headers["cache-control"], "no-store")
        status, headers, body = await self.get("/chat", "HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["content-length"]), 0)
        # no inline script or style anywhere in the shells
        for name in ("index.html", "chat.html"):
            text = (bundled_root() / name).read_text()
            self.assertNotIn("<script>", text)
            self.assertNotIn("<style", text)
            self.assertNotIn(" style=", text)
            self.assertNotIn(" on", text.replace(" one", ""))

    async def test_assets(self):
        """Assets: JavaScript type (modules need it), revalidated with an ETag, 304 when unchanged."""
        await self.gateway()
        status, headers, body = await self.get("/assets/lib/markdown.js")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(headers["cache-control"], "no-cache")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertIn(b"export function renderMarkdown", body)
        status, _, body = await self.get("/assets/lib/markdown.js", headers={"If-None-Match": headers["etag"]})
        self.assertEqual((status, body), (304, b""))
        status, headers, _ = await self.get("/assets/style.css")
        self.assertEqual((status, headers["content-type"]), (200, "text/css; charset=utf-8"))
        status, headers, _ = await self.get("/assets/favicon.svg")
        self.assertEqual((status, headers["content-type"]), (200, "image/svg+xml"))

    async def test_confined(self):
        """Only indexed files: dot-dot, encoded dot-dot, shells under assets/, unknown routes are JSON 404s."""
        await self.gateway()
        for path in (
            "/assets/../index.html",
            "/assets/%2e%2e/index.html",
            "/assets/lib/%2e%2e/%2e%2e/index.html",
            "/assets/..%2f..%2fsetup.cfg",
            "/assets/index.html",
            "/assets/",
            "/assets",
            "/assets/lib",
            "/assets/nope.js",
            "/nope",
            "/chat/x",
            "/logs/x/y",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/assets/%00.js",
        ):
            self.assertJson404(await self.get(path), path)
        status, headers, _ = await self.get("/", "POST")
        self.assertEqual((status, headers["allow"]), (405, "GET, HEAD"))

    def test_index_refuses_escapes(self):
        """The index holds no outward symlink, dotfile or unknown type; an inward symlink is fine."""
        base = Path(self.mktemp()).resolve()
        root = base / "ui"
        (root / "assets").mkdir(parents=True)
        (root / "index.html").write_text("<base href='{{BASE}}'>")
        (root / "assets" / "a.js").write_text("export {}")
        (root / "assets" / ".hidden.js").write_text("x")
        (root / "assets" / "notes.txt").write_text("x")
        (base / "secret.js").write_text("secret")
        os.symlink(base / "secret.js", root / "assets" / "out.js")
        os.symlink(root / "assets" / "a.js", root / "assets" / "in.js")
        os.symlink(base, root / "assets" / "up")
        self.assertEqual(sorted(index_files(root)), ["assets/a.js", "assets/in.js", "index.html"])

    async def test_gateway_routes_kept(self):
        """/health, /v1, /tools, /__openclaw__/ and WebSocket upgrades on any path still reach their owners."""
        await self.gateway()
        status, headers, body = await self.get("/health")
        self.assertEqual((status, json.loads(body)), (200, {"ok": True, "status": "live"}))
        for path in ("/v1/models", "/tools/invoke"):
            status, headers, _ = await self.get(path)
            self.assertTrue(headers["content-type"].startswith("application/json"), path)
            self.assertNotIn("content-security-policy", headers)
        status, _, body = await self.get("/__openclaw__/canvas/")
        self.assertEqual(status, 200)
        self.assertIn(b"OpenClaw Canvas", body)
        for path in ("/", "/chat", "/logs", "/assets/chat.js"):
            ws = await _open_at(self.service.port, path)
            self.addCleanup(self._close_ws, ws)
            self.assertEqual(ws.challenge["event"], "connect.challenge", path)

    async def test_start_names_the_address(self):
        """At start the gateway logs where the Control UI and WebChat are (no token in it)."""
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        await self.gateway(gateway={"controlUi": {"basePath": "/ui"}})
        lines = [formatEvent(e) for e in seen if "Control UI" in (e.get("log_format") or "")]
        self.assertEqual(lines, [f"Control UI on http://127.0.0.1:{self.service.port}/ui/ and WebChat on /ui/chat (`openclaw dashboard` prints a signed-in link)"])

    async def test_own_root(self):
        """gateway.controlUi.root serves that folder's shells and assets instead of the bundled ones."""
        root = Path(self.mktemp()).resolve()
        (root / "assets").mkdir(parents=True)
        (root / "index.html").write_text("<base href='{{BASE}}'>mine")
        (root / "assets" / "app.js").write_text("export const mine = 1;")
        await self.gateway(gateway={"controlUi": {"root": str(root)}})
        status, _, body = await self.get("/logs")
        self.assertEqual((status, body), (200, b"<base href='/'>mine"))
        status, _, body = await self.get("/assets/app.js")
        self.assertEqual((status, body), (200, b"export const mine = 1;"))
        self.assertJson404(await self.get("/chat"), "/chat")  # no chat.html there
        self.assertJson404(await self.get("/assets/chat.js"), "/assets/chat.js")

    async def test_disabled(self):
        """gateway.controlUi.enabled: false leaves / and /chat as JSON 404s."""
        await self.gateway(gateway={"controlUi": {"enabled": False}})
        for path in ("/", "/chat", "/assets/chat.js"):
            self.assertJson404(await self.get(path), path)

    async def test_base_path(self):
        """basePath /openclaw: the UI lives under it (without the slash: 308), nothing at /."""
        await self.gateway(gateway={"controlUi": {"basePath": "/openclaw"}})
        status, headers, _ = await self.get("/openclaw")
        self.assertEqual((status, headers["location"]), (308, "/openclaw/"))
        status, _, body = await self.get("/openclaw/")
        self.assertEqual(status, 200)
        self.assertIn(b'<base href="/openclaw/">', body)
        status, _, body = await self.get("/openclaw/chat")
        self.assertIn(b"assets/chat.js", body)
        status, _, _ = await self.get("/openclaw/assets/style.css")
        self.assertEqual(status, 200)
        for path in ("/", "/chat", "/assets/style.css", "/openclawx/", "/openclaw/nope"):
            self.assertJson404(await self.get(path), path)

    async def test_nested_base_path(self):
        """A base path of two segments works the same; its first segment alone is not the UI."""
        await self.gateway(gateway={"controlUi": {"basePath": "/a/ui/"}})
        status, _, body = await self.get("/a/ui/logs")
        self.assertEqual(status, 200)
        self.assertIn(b'<base href="/a/ui/">', body)
        self.assertJson404(await self.get("/a/"), "/a/")
        self.assertJson404(await self.get("/a/logs"), "/a/logs")

    async def test_page_origin_accepted_foreign_refused(self):
        """The WebSocket takes the page's own origin (no allowedOrigins needed) and refuses any other."""
        await self.gateway()
        port = self.service.port
        ws = await self.ws({"Origin": f"http://127.0.0.1:{port}"})
        self.assertEqual(ws.challenge["event"], "connect.challenge")
        for origin in (f"http://127.0.0.1:{port + 1}", f"http://localhost:{port}", "https://evil.example", "null"):
            with self.assertRaises(ConnectionError, msg=origin):
                await self.ws({"Origin": origin})


async def _open_at(port, path):
    """A WebSocket upgrade on C{path}."""
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}{path}")
    factory.protocol = Client
    factory.opened, factory.closed, factory.frames, factory.close_info = Deferred(), Deferred(), DeferredQueue(), None
    protocol = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    await factory.opened
    ws = WS(factory, protocol)
    ws.challenge = await ws.next()
    return ws


class PolicyTests(SynchronousTestCase):
    def test_connect_source(self):
        """connect-src names the Host's ws/wss origin; a Host that is not a host[:port] falls back to 'self'."""
        self.assertEqual(connect_source(b"127.0.0.1:18789"), "ws://127.0.0.1:18789 wss://127.0.0.1:18789")
        self.assertEqual(connect_source(b"[::1]:18789"), "ws://[::1]:18789 wss://[::1]:18789")
        self.assertEqual(connect_source(b"gw.tail1234.ts.net"), "ws://gw.tail1234.ts.net wss://gw.tail1234.ts.net")
        for bad in (None, b"", b"a b", b"x;script-src *", b"evil.example/path", b"h:99999999", b"'self'"):
            self.assertEqual(connect_source(bad), "'self'", bad)
        self.assertIn("connect-src 'self';", content_security_policy(b"x; default-src *"))


class SettingsTests(SynchronousTestCase):
    def test_defaults_and_normalising(self):
        """Enabled with base / by default; a base path gets its slashes put right."""
        home = scratch_home(self)
        settings = settings_with(home)
        self.assertEqual((settings.control_ui_enabled, settings.control_ui_base_path), (True, "/"))
        for given, wanted in (("/openclaw", "/openclaw/"), ("/openclaw/", "/openclaw/"), ("//a//b/", "/a/b/"), ("/", "/")):
            self.assertEqual(settings_with(home, controlUi={"basePath": given}).control_ui_base_path, wanted)
        self.assertFalse(settings_with(home, controlUi={"enabled": False}).control_ui_enabled)

    def test_bad_base_paths(self):
        """A base path without its slash, with odd segments, or over a gateway route is a config error naming the key."""
        for bad in ("openclaw", "/a/../b", "/a b", "/health", "/v1/ui", "/__openclaw__", "/x?y", 7):
            errors, _ = validate({"gateway": {"controlUi": {"basePath": bad}}})
            self.assertEqual([e.path for e in errors], ["gateway.controlUi.basePath"], bad)
        with self.assertRaises(ConfigError):
            settings_with(scratch_home(self), controlUi={"basePath": "/tools"})
