"""`openclaw dashboard`: the Control UI's address with the token in its fragment, printed or opened."""

from __future__ import annotations

import io
import json

from twisted.trial.unittest import SynchronousTestCase

from openclaw.cli import dashboard
from openclaw.cli.main import OpenClawOptions
from tests.helpers import base_env, run_cli, scratch_home, write_config


class DashboardTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)
        self.config = self.home / ".openclaw" / "openclaw.json"
        self.opened = []
        self.patch(dashboard.webbrowser, "open", lambda url: self.opened.append(url) or True)

    def run_dashboard(self, *argv, env=None):
        options = OpenClawOptions()
        options.parseOptions(["dashboard", *argv])
        out, err = io.StringIO(), io.StringIO()
        code = options.run(env or self.env, out, err)
        return code, out.getvalue(), err.getvalue()

    def test_prints_tokenised_url(self):
        """The config's port, base path and token (URL-quoted) make the address; nothing is opened."""
        write_config(self.config, {"gateway": {"port": 19999, "auth": {"token": "t/k n+1"}, "controlUi": {"basePath": "/openclaw"}}})
        result = run_cli("dashboard", env=self.env)
        self.assertEqual((result.returncode, result.stdout), (0, "http://127.0.0.1:19999/openclaw/#token=t%2Fk%20n%2B1\n"))
        self.assertEqual(self.opened, [])

    def test_open(self):
        """--open hands the same address to the browser; --json says whether it opened."""
        write_config(self.config, {"gateway": {"auth": {"token": "tok"}}})
        code, out, _ = self.run_dashboard("--open", "--json")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out), {"url": "http://127.0.0.1:18789/#token=tok", "opened": True})
        self.assertEqual(self.opened, ["http://127.0.0.1:18789/#token=tok"])

    def test_no_browser(self):
        """Without a browser the address is still printed, with the SSH tunnel to use."""
        self.patch(dashboard.webbrowser, "open", lambda url: False)
        write_config(self.config, {"gateway": {"auth": {"token": "tok"}}})
        code, out, err = self.run_dashboard("--open")
        self.assertEqual((code, out), (0, "http://127.0.0.1:18789/#token=tok\n"))
        self.assertIn("ssh -N -L 18789:127.0.0.1:18789", err)

    def test_sources(self):
        """Token from the environment; --url/--token win; a remote gateway's wss URL becomes https; password is never put in the link."""
        code, out, _ = self.run_dashboard(env={**self.env, "OPENCLAW_GATEWAY_TOKEN": "envtok"})
        self.assertEqual(out, "http://127.0.0.1:18789/#token=envtok\n")
        code, out, _ = self.run_dashboard("--url", "wss://gw.example.ts.net", "--token", "flag")
        self.assertEqual(out, "https://gw.example.ts.net/#token=flag\n")
        write_config(self.config, {"gateway": {"mode": "remote", "remote": {"url": "ws://10.0.0.5:18789", "token": "remote-tok"}}})
        code, out, _ = self.run_dashboard()
        self.assertEqual(out, "http://10.0.0.5:18789/#token=remote-tok\n")
        write_config(self.config, {"gateway": {"auth": {"mode": "password", "password": "hunter2"}}})
        code, out, err = self.run_dashboard()
        self.assertEqual((code, out), (0, "http://127.0.0.1:18789/\n"))
        self.assertNotIn("hunter2", out + err)
        self.assertIn("password", err)

    def test_refusals(self):
        """A switched-off Control UI, or a URL that is no gateway URL, exits 1 with the reason."""
        write_config(self.config, {"gateway": {"controlUi": {"enabled": False}}})
        code, out, err = self.run_dashboard()
        self.assertEqual((code, out), (1, ""))
        self.assertIn("gateway.controlUi.enabled", err)
        write_config(self.config, {})
        code, _, err = self.run_dashboard("--url", "ftp://x")
        self.assertEqual(code, 1)
        self.assertIn("not a gateway URL", err)
