"""The Web UI's page logic under Node (tests/webui_check.mjs), and its connect signature checked by the gateway's verifier."""

from __future__ import annotations

import json
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from openclaw.gateway.devices import verify_device
from openclaw.protocol.errors import HandshakeFailed
from openclaw.web.controlui import bundled_root
from tests.helpers import REPO


class PageLogicTests(SynchronousTestCase):
    def run_check(self):
        node = shutil.which("node")
        if node is None:
            raise SkipTest("node is not installed: the Web UI's JavaScript is untested here")
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip().lstrip("v")
        if tuple(int(x) for x in version.split(".")[:2] if x.isdigit()) < (20, 10):
            raise SkipTest(f"node {version} is too old to load the assets as ES modules (needs 20.10 or later)")
        # The assets are plain .js ES modules (no package.json): tell node so.
        argv = [node, "--no-warnings", "--experimental-default-type=module", str(REPO / "tests" / "webui_check.mjs"), str(bundled_root() / "assets")]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        lines = result.stdout.strip().splitlines()
        self.assertEqual(lines[0], "ok", result.stdout)
        return json.loads(lines[1])

    def test_page_logic(self):
        """Markdown escaping, link filtering, backoff, payload, client states, credentials, records (webui_check.mjs)."""
        self.run_check()

    def test_browser_signature_verifies(self):
        """A connect signed by the page's WebCrypto code passes the gateway's v3 check; tampering fails it."""
        params = self.run_check()
        device = params["device"]
        args = dict(client=params["client"], role="operator", scopes=params["scopes"], token="secret-token", challenge_nonce="the-nonce", now_ms=device["signedAt"] + 1000, skew_ms=120_000, nonce_required=True, is_local=True)
        self.assertEqual(len(verify_device(device, **args)), 32)
        for change in ({"token": "other"}, {"scopes": ["operator.admin"]}, {"client": {**params["client"], "mode": "ui"}}):
            with self.assertRaises(HandshakeFailed):
                verify_device(device, **{**args, **change})
