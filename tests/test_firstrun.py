"""First run: `openclaw gateway` with no secret stores a token the local CLI then uses."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
import urllib.request

import json5
from twisted.trial.unittest import SynchronousTestCase

from openclaw.config import ConfigError
from openclaw.config.firstrun import needs_token, store_or_explain, store_token
from openclaw.config.loader import load_config
from openclaw.config.settings import AuthSettings
from tests.helpers import REPO, base_env, free_port, run_cli, scratch_home, sigint_default, write_config


class StoreTokenTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.path = self.home / ".openclaw" / "openclaw.json"

    def loaded(self, env=None):
        return load_config(self.path, env or {"PORT": "18789"})

    def test_needs_token(self):
        """Only token mode with neither a token nor a password needs one."""
        self.assertTrue(needs_token(AuthSettings(mode="token")))
        self.assertFalse(needs_token(AuthSettings(mode="token", token="t")))
        self.assertFalse(needs_token(AuthSettings(mode="token", password="p")))
        self.assertFalse(needs_token(AuthSettings(mode="none")))
        self.assertFalse(needs_token(AuthSettings(mode="password")))

    def test_new_config(self):
        """No file: a minimal local config with the token, 0600 in a 0700 folder."""
        store_token(self.loaded(), "tok-1")
        self.assertEqual(json.loads(self.path.read_text()), {"gateway": {"mode": "local", "auth": {"mode": "token", "token": "tok-1"}}})
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(self.path.parent.stat().st_mode), 0o700)

    def test_existing_config_keeps_its_values(self):
        """The token joins what the file had; ${VAR} references stay as written."""
        write_config(self.path, '{\n  // mine\n  gateway: {port: "${PORT}", auth: {}},\n  logging: {level: "debug"},\n}\n')
        store_token(self.loaded(), "tok-2")
        stored = json5.loads(self.path.read_text())
        self.assertEqual(stored, {"gateway": {"port": "${PORT}", "auth": {"token": "tok-2", "mode": "token"}}, "logging": {"level": "debug"}})

    def test_includes_are_not_rewritten(self):
        """A gateway section from an $include is the user's to change: a config error names the key."""
        write_config(self.home / ".openclaw" / "gateway.json5", "{port: 18789}")
        write_config(self.path, '{gateway: {"$include": "./gateway.json5"}}')
        before = self.path.read_text()
        error = self.assertRaises(ConfigError, store_or_explain, self.loaded(), "tok")
        self.assertIn("gateway.auth.token", error.describe())
        self.assertEqual(self.path.read_text(), before)


class FirstRunTests(SynchronousTestCase):
    def test_first_run_then_cli_just_works(self):
        """A fresh HOME: the gateway stores a token, `openclaw health` connects with it, a restart keeps it."""
        home = scratch_home(self)
        env = base_env(home)
        port = free_port()
        config = home / ".openclaw" / "openclaw.json"

        def start():
            proc = subprocess.Popen(
                [sys.executable, "-m", "openclaw", "gateway", "--allow-unconfigured", "--port", str(port)],
                env={**env, "PYTHONPATH": str(REPO)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=sigint_default,
            )
            self.addCleanup(lambda: proc.poll() is None and proc.kill())
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        return proc
                except OSError:
                    if proc.poll() is not None:
                        self.fail(f"gateway exited: {proc.stderr.read()}")
                    time.sleep(0.1)
            self.fail("gateway did not answer /health")

        def stop(proc):
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err)
            return out

        proc = start()
        token = json.loads(config.read_text())["gateway"]["auth"]["token"]
        self.assertGreaterEqual(len(token), 40)
        self.assertEqual(stat.S_IMODE(config.stat().st_mode), 0o600)
        health = run_cli("health", env={**env, "OPENCLAW_GATEWAY_PORT": str(port)})
        self.assertEqual(health.returncode, 0, health.stderr)
        out = stop(proc)
        self.assertIn(f"stored it in {config}", out)
        self.assertNotIn(token, out)  # the console says where, not what

        proc = start()
        self.assertEqual(json.loads(config.read_text())["gateway"]["auth"]["token"], token)
        self.assertNotIn("Generated a gateway token", stop(proc))
