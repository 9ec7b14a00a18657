"""The canvas host: confinement (fuzzed), HTTP behaviour, live reload, URLs handed to nodes."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.web.canvas import Watcher, ensure_scaffold, resolve
from tests.wsclient import GatewayMixin, connect_params

SEGMENTS = st.lists(
    st.one_of(
        st.sampled_from(["..", ".", "", "%2e%2e", "..%2f", "/", "\\", "..\\..", "\x00", "/etc/passwd", "~", "~root", "a", "index.html", "sub", "link-out", "link-in"]),
        st.text(min_size=1, max_size=12),
    ),
    max_size=8,
)


class ResolveTests(SynchronousTestCase):
    def setUp(self):
        base = Path(self.mktemp()).resolve()
        self.root = base / "root"
        (self.root / "sub").mkdir(parents=True)
        (self.root / "index.html").write_text("hi")
        (base / "secret.txt").write_text("secret")
        os.symlink(base / "secret.txt", self.root / "link-out")
        os.symlink(self.root / "index.html", self.root / "link-in")

    @settings(max_examples=500)
    @given(SEGMENTS)
    def test_no_escape(self, segments):
        """Whatever the segments, a resolved path is inside the real root (0 escapes)."""
        target = resolve(self.root, [s.encode("utf-8", "surrogatepass") for s in segments])
        if target is not None:
            real_root = os.path.realpath(self.root)
            self.assertTrue(str(target) == real_root or str(target).startswith(real_root + os.sep), (segments, target))

    def test_cases(self):
        """Dot-dot, separators, NUL and outward symlinks are refused; inward symlinks are fine."""
        for bad in ([b".."], [b"sub", b"..", b".."], [b"a/b"], [b"a\\b"], [b"x\x00"], [b"link-out"], [b"\xff"]):
            self.assertIsNone(resolve(self.root, bad), bad)
        self.assertEqual(resolve(self.root, [b"link-in"]), self.root / "index.html")
        self.assertEqual(resolve(self.root, [b"sub", b""]), self.root / "sub")

    def test_scaffold(self):
        """An index.html is written only when absent."""
        root = Path(self.mktemp())
        ensure_scaffold(root)
        self.assertIn("OpenClaw Canvas", (root / "index.html").read_text())
        (root / "index.html").write_text("mine")
        ensure_scaffold(root)
        self.assertEqual((root / "index.html").read_text(), "mine")


class WatcherTests(SynchronousTestCase):
    def test_debounced(self):
        """Changes seen by one poll give one callback 75 ms later; dotfiles are ignored."""
        root = Path(self.mktemp())
        root.mkdir()
        clock = Clock()
        fired = []
        watcher = Watcher(root, clock, lambda: fired.append(clock.seconds()))
        watcher.start()
        (root / "a.html").write_text("1")
        (root / "b.html").write_text("2")
        clock.advance(0.25)
        self.assertEqual(fired, [])
        clock.advance(0.075)
        self.assertEqual(fired, [0.325])
        (root / ".hidden").write_text("ignored")
        clock.pump([0.05] * 20)
        self.assertEqual(len(fired), 1)
        watcher.stop()


def raw(port, method, path):
    """One HTTP request with the path sent as written (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class HttpTests(GatewayMixin, TestCase):
    async def request(self, method, path, port=None):
        return await deferToThread(raw, port or self.service.port, method, path)

    async def test_serving(self):
        """Files under /__openclaw__/canvas/ on the gateway port and at / on the canvas port."""
        service = await self.gateway()
        root = service.settings.canvas_root
        (root / "page.html").write_text("<html><body>page</body></html>")
        (root / "data.json").write_text('{"a": 1}')
        status, headers, body = await self.request("GET", "/__openclaw__/canvas/page.html")
        self.assertEqual((status, headers["Cache-Control"]), (200, "no-store"))
        self.assertIn(b"/__openclaw__/ws", body)  # the live-reload script was injected
        self.assertTrue(body.endswith(b"</body></html>"))
        status, headers, body = await self.request("GET", "/data.json", port=service.canvas_listeners[0].port)
        self.assertEqual((status, body), (200, b'{"a": 1}'))
        status, _, body = await self.request("GET", "/__openclaw__/canvas/")
        self.assertIn(b"OpenClaw Canvas", body)
        status, _, body = await self.request("HEAD", "/__openclaw__/canvas/page.html")
        self.assertEqual((status, body), (200, b""))

    async def test_errors(self):
        """405 for other methods, 404 bodies, 400 for NUL, 426 on the reload path, no escapes."""
        service = await self.gateway()
        root = service.settings.canvas_root
        (root / "empty").mkdir()
        (root.parent / "outside.txt").write_text("secret")
        os.symlink(root.parent / "outside.txt", root / "out")
        cases = [
            ("POST", "/__openclaw__/canvas/index.html", 405, b"Method Not Allowed"),
            ("GET", "/__openclaw__/canvas/nope.html", 404, b"not found"),
            ("GET", "/__openclaw__/canvas/empty/", 404, b"Missing file. Create"),
            ("GET", "/__openclaw__/canvas/%00", 400, b"bad request"),
            ("GET", "/__openclaw__/ws", 426, b"upgrade required"),
            ("GET", "/__openclaw__/canvas/../outside.txt", 404, None),
            ("GET", "/__openclaw__/canvas/%2e%2e/outside.txt", 404, None),
            ("GET", "/__openclaw__/canvas/..%2foutside.txt", 404, None),
            ("GET", "/__openclaw__/canvas/%252e%252e%252foutside.txt", 404, None),
            ("GET", "/__openclaw__/canvas/out", 404, None),
            ("GET", "/__openclaw__/canvas//etc/passwd", 404, None),
        ]
        for method, path, code, text in cases:
            status, _, body = await self.request(method, path)
            self.assertEqual(status, code, path)
            self.assertNotIn(b"secret", body, path)
            if text:
                self.assertIn(text, body, path)
        status, _, body = await self.request("GET", "/../outside.txt", port=service.canvas_listeners[0].port)
        self.assertNotIn(b"secret", body)

    async def test_live_reload(self):
        """A socket on /__openclaw__/ws gets "reload" after a file changes."""
        import openclaw.web.canvas as canvas

        self.patch(canvas, "POLL_SECONDS", 0.05)
        service = await self.gateway()
        from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
        from twisted.internet.endpoints import TCP4ClientEndpoint

        got: Deferred = Deferred()

        class Client(WebSocketClientProtocol):
            def onOpen(self):
                self.factory.opened.callback(self)

            def onMessage(self, payload, isBinary):
                if not got.called:
                    got.callback(payload)

        factory = WebSocketClientFactory(f"ws://127.0.0.1:{service.port}/__openclaw__/ws")
        factory.protocol = Client
        factory.opened = Deferred()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", service.port).connect(factory)
        client = await factory.opened
        (service.settings.canvas_root / "index.html").write_text("<html><body>changed</body></html>")
        timer = reactor.callLater(5, got.cancel)
        self.assertEqual(await got, b"reload")
        timer.cancel()
        client.sendClose(1000)
        await deferLater(reactor, 0.1, lambda: None)

    async def test_urls_for_nodes(self):
        """v3 hello-ok carries canvasHostUrl (the gateway origin); v4 does not (schema)."""
        service = await self.gateway()
        _, res = await self.connect(connect_params(protocol=3))
        self.assertEqual(res["payload"]["canvasHostUrl"], f"http://127.0.0.1:{service.port}")
        _, res = await self.connect(connect_params(protocol=4))
        self.assertNotIn("canvasHostUrl", res["payload"])
        self.assertEqual(service.canvas_url(), f"http://127.0.0.1:{service.port}")

    async def test_disabled(self):
        """canvasHost.enabled false: no canvas listener, /__openclaw__/canvas/ is a 404."""
        service = await self.gateway(canvasHost={"enabled": False})
        self.assertEqual(service.canvas_listeners, [])
        status, _, _ = await self.request("GET", "/__openclaw__/canvas/")
        self.assertEqual(status, 404)
