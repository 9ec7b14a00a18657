"""Our A2UI v0.8 host page: the renderer under Node, and its assets over HTTP."""

from __future__ import annotations

import shutil
import subprocess

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from openclaw.web.canvas import a2ui_assets
from tests.helpers import REPO
from tests.test_canvas import raw
from tests.wsclient import GatewayMixin


class RendererTests(SynchronousTestCase):
    def test_renderer(self):
        """Store, data binding, templates, painter, inputs, actions and native bridges (tests/a2ui_check.js)."""
        node = shutil.which("node")
        if node is None:
            raise SkipTest("node is not installed: the A2UI renderer's JavaScript is untested here")
        result = subprocess.run([node, str(REPO / "tests" / "a2ui_check.js"), str(a2ui_assets() / "a2ui.js")], capture_output=True, text=True, timeout=60)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "ok"), result.stderr)


class ServingTests(GatewayMixin, TestCase):
    async def test_assets(self):
        """/__openclaw__/a2ui/ serves the host page and the renderer, without the reload script."""
        service = await self.gateway()
        status, headers, body = await deferToThread(raw, service.port, "GET", "/__openclaw__/a2ui/")
        self.assertEqual(status, 200)
        self.assertIn(b'<script src="a2ui.js">', body)
        self.assertNotIn(b"/__openclaw__/ws", body)
        status, headers, body = await deferToThread(raw, service.port, "GET", "/__openclaw__/a2ui/a2ui.js")
        self.assertEqual(status, 200)
        self.assertIn("javascript", headers["Content-Type"])
        self.assertIn(b"openclawA2UI", body)
        status, _, _ = await deferToThread(raw, service.canvas_listeners[0].port, "GET", "/__openclaw__/a2ui/../a2ui/index.html")
        self.assertEqual(status, 404)
