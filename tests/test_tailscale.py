"""Tailscale Serve/Funnel with a fake `tailscale` on PATH, and Serve identity headers trusted only as they should be."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.service import GatewayService
from openclaw.ops.tailscale import (
    TailscaleRefused,
    TailscaleService,
    TailscaleSettings,
    check_mode,
    identity_verifier,
    serve_claim,
    tailscale_settings,
)
from tests.helpers import REPO, base_env, fake_bin, free_port, run_cli, scratch_home
from tests.wsclient import GatewayMixin, connect_params, gateway_settings

FAKE_TAILSCALE = """
echo "$*" >> "$HOME/tailscale.calls"
case "$1" in
  status) echo '{"Self": {"DNSName": "box.tail1234.ts.net."}}' ;;
  whois) echo '{"UserProfile": {"LoginName": "alice@example.com"}}' ;;
esac
exit 0
"""

SERVE_HEADERS = {"X-Forwarded-For": "100.101.102.103", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "box.tail1234.ts.net", "Tailscale-User-Login": "alice@example.com"}


class RuleTests(SynchronousTestCase):
    def test_funnel_needs_a_password(self):
        """Funnel refuses token auth and an empty password; serve and off are fine."""
        funnel = TailscaleSettings("funnel")
        self.assertRaises(TailscaleRefused, check_mode, funnel, "token", False)
        self.assertRaises(TailscaleRefused, check_mode, funnel, "password", False)
        check_mode(funnel, "password", True)
        check_mode(TailscaleSettings("serve"), "token", False)

    def test_settings(self):
        """The flag beats the config; identity is trusted only with allowTailscale and Serve (never Funnel)."""
        config = {"gateway": {"tailscale": {"mode": "serve", "resetOnExit": True}, "auth": {"allowTailscale": True}}}
        self.assertEqual(tailscale_settings(config), TailscaleSettings("serve", True, True))
        self.assertEqual(tailscale_settings(config, "funnel").allow_identity, False)
        self.assertEqual(tailscale_settings({}), TailscaleSettings("off", False, False))

    def test_serve_claim(self):
        """Only from loopback, with all three forwarding headers and a login; the address is the last hop."""
        headers = {k.lower(): v for k, v in SERVE_HEADERS.items()}
        self.assertEqual(serve_claim("127.0.0.1", headers), ("100.101.102.103", "alice@example.com"))
        self.assertEqual(serve_claim("127.0.0.1", {**headers, "x-forwarded-for": "6.6.6.6, 100.1.2.3"}), ("100.1.2.3", "alice@example.com"))
        self.assertIsNone(serve_claim("192.168.1.5", headers))  # not through the local Serve proxy
        for missing in ("x-forwarded-proto", "x-forwarded-host", "x-forwarded-for", "tailscale-user-login"):
            self.assertIsNone(serve_claim("127.0.0.1", {k: v for k, v in headers.items() if k != missing}), missing)
        self.assertIsNone(serve_claim("127.0.0.1", {**headers, "x-forwarded-for": "not-an-ip"}))

    def test_service_serves_and_resets(self):
        """start runs `serve --bg --yes <port>`; stop undoes it only with resetOnExit; a failure leaves nothing to undo."""
        calls = []

        def run(args):
            calls.append(args)
            return succeed((b'{"Self": {"DNSName": "box.ts.net."}}', b"", 0))

        service = TailscaleService(TailscaleSettings("serve", reset_on_exit=True), lambda: 18789, run)
        service.startService()
        self.assertEqual(calls[0], ["serve", "--bg", "--yes", "18789"])
        self.assertTrue(service.applied)
        self.successResultOf(service.stopService())
        self.assertEqual(calls[-1], ["serve", "--https=443", "off"])
        calls.clear()
        failing = TailscaleService(TailscaleSettings("funnel", reset_on_exit=True), lambda: 1, lambda args: succeed((b"", b"not logged in", 1)))
        failing.startService()
        self.assertFalse(failing.applied)
        self.assertIsNone(failing.stopService())


class CommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        fake_bin(self.home / "bin", "tailscale", FAKE_TAILSCALE)
        self.env = base_env(self.home)
        self.env["PATH"] = f"{self.home / 'bin'}:{self.env['PATH']}"
        self.assertEqual(run_cli("setup", env=self.env).returncode, 0)

    def test_funnel_refused_without_password(self):
        """`gateway --tailscale funnel` with token auth: exit 1 with the reason; tailscale is never run."""
        result = run_cli("gateway", "run", "--tailscale", "funnel", "--port", str(free_port()), env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Refusing to start with Tailscale Funnel", result.stderr)
        self.assertFalse((self.home / "tailscale.calls").exists())
        bad = run_cli("gateway", "run", "--tailscale", "everywhere", env=self.env)
        self.assertEqual(bad.returncode, 2)

    def test_serve_for_the_port_and_reset_on_exit(self):
        """The gateway serves its port through `tailscale serve` once it listens and undoes it when it stops."""
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw", "gateway", "--tailscale", "serve", "--tailscale-reset-on-exit", "--port", str(port)],
            env={**self.env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        calls = self.home / "tailscale.calls"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "status --json" not in (calls.read_text() if calls.exists() else ""):
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            self.assertEqual(r.status, 200)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(calls.read_text().splitlines(), [f"serve --bg --yes {port}", "status --json", "serve --https=443 off"])
        self.assertIn("https://box.tail1234.ts.net/", out)


class IdentityTests(GatewayMixin, TestCase):
    timeout = 60

    async def serve_gateway(self, login="alice@example.com", code=0):
        calls = []

        def run(args):
            calls.append(args)
            return succeed((json.dumps({"UserProfile": {"LoginName": login}}).encode(), b"", code))

        settings = gateway_settings(scratch_home(self), gateway={"auth": {"token": "test-token-0123456789", "allowTailscale": True}, "tailscale": {"mode": "serve"}})
        self.service = GatewayService(settings, reactor, identity=identity_verifier(run))
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self._stop, self.service)
        return calls

    async def test_serve_identity_authenticates(self):
        """Through Serve (loopback + Tailscale's headers) and confirmed by whois: no token needed."""
        calls = await self.serve_gateway()
        ws, res = await self.connect(connect_params(token=None), headers=SERVE_HEADERS)
        self.assertTrue(res["ok"], res)
        self.assertEqual(calls, [["whois", "--json", "100.101.102.103"]])

    async def test_whois_mismatch_is_refused(self):
        """A login whois does not confirm is ignored: without a token the connect fails."""
        await self.serve_gateway(login="mallory@example.com")
        ws, res = await self.connect(connect_params(token=None), headers=SERVE_HEADERS)
        self.assertFalse(res["ok"])
        self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING")

    async def test_headers_without_serve_markers_are_refused(self):
        """A login header without Serve's forwarding headers is not even looked up."""
        calls = await self.serve_gateway()
        headers = {"Tailscale-User-Login": "alice@example.com", "X-Forwarded-For": "100.101.102.103"}
        ws, res = await self.connect(connect_params(token=None), headers=headers)
        self.assertFalse(res["ok"])
        self.assertEqual(calls, [])

    async def test_not_enabled_means_not_trusted(self):
        """Without allowTailscale the headers change nothing."""
        await self.gateway()
        ws, res = await self.connect(connect_params(token=None), headers=SERVE_HEADERS)
        self.assertFalse(res["ok"])
