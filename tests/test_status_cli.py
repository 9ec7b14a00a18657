"""`openclaw status --all` (pasteable, secrets masked), `gateway status --deep` and `gateway probe` against a real background gateway."""

from __future__ import annotations

import json

import json5
from twisted.trial.unittest import SynchronousTestCase

from openclaw.config.edit import set_value, write_raw
from tests.helpers import free_port
from tests.test_daemon import Profile
from openclaw.paths import resolve_layout


class StatusAllTests(SynchronousTestCase):
    def setUp(self):
        from tests.helpers import scratch_home

        self.home = scratch_home(self)
        self.gw = Profile(self, self.home, port=free_port())
        config = self.gw.state / "openclaw.json"
        raw = json5.loads(config.read_text())
        self.token = raw["gateway"]["auth"]["token"]
        raw = set_value(raw, "models.providers.acme", {"api": "openai-completions", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-live-abcdefghijklmnop"}, config)
        write_raw(config, raw)
        (self.gw.state / ".env").write_text("TELEGRAM_BOT_TOKEN=123456789:AAbbccddeeffgghhiijjkkllmmnnooppqq\n")
        result = self.gw.cli("gateway", "start")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.addCleanup(self.gw.cli, "gateway", "stop")

    def test_status_all_is_pasteable(self):
        """Every section, the gateway reachable, and no secret anywhere: token, provider key, .env token."""
        result = self.gw.cli("status", "--all")
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        for section in ("== system ==", "== status ==", "== doctor ==", "== config (", "== log tail ("):
            self.assertIn(section, out)
        self.assertIn("reachable in", out)
        self.assertIn('"apiKey": "***"', out)
        for secret in (self.token, "sk-live-abcdefghijklmnop", "AAbbccddeeffgghhiijjkkllmmnnooppqq"):
            self.assertNotIn(secret, out)
        as_json = json.loads(self.gw.cli("status", "--all", "--json").stdout)
        self.assertEqual(as_json["config"]["gateway"]["auth"]["token"], "***")
        self.assertTrue(as_json["status"]["probe"]["ok"])

    def test_deep_status_and_probe(self):
        """--deep finds a stale-looking leftover and names the port owner; probe times a remote and the local gateway."""
        (self.gw.state / ".stray.json.tmp-1-ab").write_text("")
        deep = json.loads(self.gw.cli("gateway", "status", "--deep", "--json").stdout)
        pid = deep["pid"]
        self.assertEqual([o["pid"] for o in deep["deep"]["portOwners"]["gateway"]], [pid])
        self.assertEqual(deep["deep"]["problems"], [])  # temp files only count when no gateway runs
        layout = resolve_layout(self.gw.env)
        raw = json5.loads(layout.config_path.read_text())
        raw = set_value(raw, "gateway.remote", {"url": "ws://127.0.0.1:9", "token": "remote-token-123456"}, layout.config_path)
        raw = set_value(raw, "gateway.mode", "remote", layout.config_path)
        write_raw(layout.config_path, raw)
        probe = self.gw.cli("gateway", "probe", "--timeout", "3000")
        self.assertEqual(probe.returncode, 0, probe.stdout + probe.stderr)  # the local one answers
        lines = probe.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ws://127.0.0.1:9: FAILED"), lines)
        self.assertTrue(lines[1].startswith(f"ws://127.0.0.1:{self.gw.port}: OK connect"), lines)
        self.assertIn("health", lines[1])
        gone = self.gw.cli("gateway", "probe", "--url", "ws://127.0.0.1:9", "--timeout", "2000")
        self.assertEqual(gone.returncode, 1)
        self.assertIn("No gateway answered", gone.stderr)
