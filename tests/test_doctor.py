"""`openclaw doctor` on state dirs broken on purpose: it finds each problem and fixes what it says it fixes."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys

import json5
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.ops.doctor import Doctor, migrate
from openclaw.paths import resolve_layout
from tests.fakes import openai_text, start_fake
from tests.helpers import REPO, base_env, run_cli, scratch_home, write_config


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class BrokenStateTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)
        self.state = self.home / ".openclaw"
        self.config = self.state / "openclaw.json"

    def doctor(self, *args, **extra):
        return run_cli("doctor", *args, env={**self.env, **extra})

    def break_it(self):
        """The broken-state matrix: loose modes, a crash's leftovers, legacy keys and variables."""
        self.assertEqual(run_cli("setup", env=self.env).returncode, 0)
        raw = json5.loads(self.config.read_text())
        token = raw["gateway"]["auth"].pop("token")
        raw["gateway"]["mode"] = "cloud"  # the seed's name for local
        raw["gateway"]["token"] = token  # an old release's key
        raw["gateway"]["sandbox"] = {"enabled": False, "allowFileSystem": "workspace"}
        write_config(self.config, raw)
        (self.state / ".env").write_text("# mine\nCLAWDBOT_GATEWAY_PASSWORD=pw-123456\nOTHER=1\n")
        for path, bits in ((self.state, 0o755), (self.config, 0o644), (self.state / ".env", 0o644)):
            os.chmod(path, bits)
        (self.state / "identity").mkdir(mode=0o755)
        (self.state / "identity" / "device.json").write_text("{}")
        os.chmod(self.state / "identity" / "device.json", 0o644)
        (self.state / "gateway.lock").write_text("999999\n")  # a crashed gateway's lock
        (self.state / "gateway.pid").write_text("999999\n")
        (self.state / ".openclaw.json.tmp-999999-abcd").write_text("half")
        return token

    def test_finds_and_fixes_the_matrix(self):
        """Each problem is named with its fix; --fix repairs them all after a backup; a second run is clean (exit 0)."""
        token = self.break_it()
        before = self.config.read_text()
        found = self.doctor()
        self.assertEqual(found.returncode, 0, found.stdout + found.stderr)  # warnings only: the gateway would still start
        out = found.stdout
        for text in (
            f"{self.state} is mode 755",
            f"{self.config} is mode 644; it should be 600",
            f"{self.state / 'identity' / 'device.json'} is mode 644",
            "gateway.mode 'cloud' → 'local'",
            "gateway.token → gateway.auth.token",
            "gateway.sandbox.enabled False → gateway.sandbox.mode 'off'",
            "CLAWDBOT_GATEWAY_PASSWORD",
            "names pid 999999 but no process holds the lock",
            "gateway.pid names pid 999999, which is not running",
            "1 temp file(s)",
        ):
            self.assertIn(text, out)
        self.assertIn("can be repaired: `openclaw doctor --fix`", out)
        self.assertEqual(self.config.read_text(), before)  # without --fix nothing changes

        fixed = self.doctor("--fix")
        self.assertEqual(fixed.returncode, 0, fixed.stdout)
        self.assertIn("Repaired (config backed up to openclaw.json.bak)", fixed.stdout)
        self.assertEqual((self.state / "openclaw.json.bak").read_text(), before)
        self.assertEqual(mode(self.state / "openclaw.json.bak"), 0o600)
        self.assertEqual(mode(self.state), 0o700)
        self.assertEqual(mode(self.config), 0o600)
        self.assertEqual(mode(self.state / ".env"), 0o600)
        self.assertEqual(mode(self.state / "identity"), 0o700)
        self.assertEqual(mode(self.state / "identity" / "device.json"), 0o600)
        raw = json5.loads(self.config.read_text())
        self.assertEqual(raw["gateway"]["mode"], "local")
        self.assertEqual(raw["gateway"]["auth"]["token"], token)
        self.assertNotIn("token", raw["gateway"])
        self.assertEqual(raw["gateway"]["sandbox"], {"mode": "off", "allowFileSystem": False})
        self.assertEqual((self.state / ".env").read_text(), "# mine\nOPENCLAW_GATEWAY_PASSWORD=pw-123456\nOTHER=1\n")
        self.assertEqual((self.state / "gateway.lock").read_text(), "")
        self.assertFalse((self.state / "gateway.pid").exists())
        self.assertFalse((self.state / ".openclaw.json.tmp-999999-abcd").exists())
        self.assertNotIn(token, fixed.stdout)

        again = self.doctor("--json")
        self.assertEqual(again.returncode, 0)
        report = json.loads(again.stdout)
        self.assertEqual([f for f in report["findings"] if f["fixable"]], [])
        self.assertEqual([f["title"] for f in report["findings"] if f["level"] in ("warn", "error") and f["check"] != "providers"], [])
        self.assertEqual(run_cli("config", "validate", env=self.env).returncode, 0)

    def test_non_interactive_applies_migrations_only(self):
        """--non-interactive asks nothing and rewrites legacy keys, but leaves permissions to --fix."""
        self.break_it()
        result = self.doctor("--non-interactive")
        self.assertIn("rewrote", result.stdout)
        self.assertEqual(json5.loads(self.config.read_text())["gateway"]["mode"], "local")
        self.assertEqual(mode(self.state), 0o755)

    def test_cron_store(self):
        """A jobs file that is not JSON, a loose run log, a bad cron setting: named; --fix sets the file aside (kept) and tightens the log."""
        self.assertEqual(run_cli("setup", env=self.env).returncode, 0)
        raw = json5.loads(self.config.read_text())
        raw["cron"] = {"maxConcurrentRuns": 99}
        write_config(self.config, raw)
        jobs = self.state / "cron" / "jobs.json"
        (self.state / "cron" / "runs").mkdir(parents=True, mode=0o700)
        os.chmod(self.state / "cron", 0o700)
        jobs.write_text('{"version": 1, "jobs": [')
        os.chmod(jobs, 0o600)
        log = self.state / "cron" / "runs" / "j1.jsonl"
        log.write_text("{}\n")
        os.chmod(log, 0o644)
        out = self.doctor().stdout
        self.assertIn("cron.maxConcurrentRuns: expected 1 to 32", out)
        self.assertIn(f"{jobs}: Expecting value", out)
        self.assertIn("the gateway will move it aside", out)
        self.assertIn(f"{log} is mode 644", out)
        fixed = self.doctor("--fix")
        self.assertIn(f"moved {jobs} to {jobs}.corrupt-", fixed.stdout)
        self.assertFalse(jobs.exists())
        [aside] = (self.state / "cron").glob("jobs.json.corrupt-*")
        self.assertEqual(aside.read_text(), '{"version": 1, "jobs": [')
        self.assertEqual(mode(log), 0o600)
        again = self.doctor("--json")
        findings = {f["title"]: f for f in json.loads(again.stdout)["findings"] if f["check"] == "cron"}
        self.assertEqual(findings["cron store"]["level"], "ok")
        self.assertIn(str(aside), findings["old cron store set aside"]["detail"])

    def test_cron_jobs_unreadable(self):
        """A job this gateway cannot read is named (the rest counted); nothing to --fix: the gateway keeps it as it is."""
        write_config(self.config, {"gateway": {"mode": "local", "auth": {"token": "t" * 32}}})
        (self.state / "cron").mkdir(mode=0o700)
        good = {"id": "j1", "name": "daily", "enabled": True, "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "hi"}, "createdAtMs": 1, "updatedAtMs": 1, "state": {}}
        (self.state / "cron" / "jobs.json").write_text(json.dumps({"version": 1, "jobs": [good, {"id": "j2", "name": "broken", "schedule": {"kind": "sometimes"}}]}))
        report = json.loads(self.doctor("--json").stdout)
        cron = {f["title"]: f for f in report["findings"] if f["check"] == "cron"}
        self.assertIn("1 job(s)", cron["cron jobs unreadable"]["detail"])
        self.assertIn("broken:", cron["cron jobs unreadable"]["detail"])
        self.assertFalse(cron["cron jobs unreadable"]["fixable"])
        self.assertIn("1 job(s), 1 enabled", cron["cron store"]["detail"])

    def test_bad_config(self):
        """An invalid value: exit 78, the key, what is allowed and the command that fixes it; --fix does not guess."""
        write_config(self.config, {"gateway": {"mode": "local", "bind": "everywhere", "auth": {"token": "t" * 20}}})
        result = self.doctor("--fix")
        self.assertEqual(result.returncode, 78)
        self.assertIn("gateway.bind: invalid value 'everywhere'", result.stdout)
        self.assertIn("fix: openclaw config set gateway.bind loopback", result.stdout)
        self.assertIn('"everywhere"', self.config.read_text())
        write_config(self.config, "{gateway: {mode: 'local',")
        broken = self.doctor()
        self.assertEqual(broken.returncode, 78)
        self.assertIn("JSON5 parse error", broken.stdout)

    def test_errors_that_stop_the_gateway(self):
        """Port held by a stranger, a missing sandbox backend, a provider without a key, a public bind without auth: exit 1, each explained."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        write_config(
            self.config,
            {
                "gateway": {"mode": "local", "port": port, "bind": "lan", "sandbox": {"mode": "non-main", "backend": "bubblewrap"}},
                "models": {"providers": {"acme": {"api": "openai-completions", "baseUrl": "http://127.0.0.1:1/v1"}}},
                "channels": {"telegram": {"enabled": True}},
            },
        )
        result = run_cli("doctor", env={**self.env, "PATH": "/nonexistent"})
        self.assertEqual(result.returncode, 1, result.stdout)
        out = result.stdout
        self.assertIn(f"gateway port {port} in use", out)
        self.assertIn(f"pid {os.getpid()}", out)
        self.assertIn("bwrap is not on PATH", out)
        self.assertIn("apt-get install bubblewrap", out)
        self.assertIn("models.providers.acme.apiKey is not set", out)
        self.assertIn("channels.telegram.botToken not set", out)
        self.assertIn("without a token or password", out)

    def test_generate_gateway_token(self):
        """No token anywhere: a warning; --generate-gateway-token stores a strong one (and says where, not what)."""
        write_config(self.config, {"gateway": {"mode": "local"}})
        self.assertIn("no gateway token", self.doctor().stdout)
        result = self.doctor("--generate-gateway-token")
        token = json5.loads(self.config.read_text())["gateway"]["auth"]["token"]
        self.assertGreaterEqual(len(token), 40)
        self.assertIn("stored a new gateway token", result.stdout)
        self.assertNotIn(token, result.stdout)

    def test_migrate_is_pure(self):
        """migrate returns a new config and notes; the input is untouched; a current config has no notes."""
        raw = {"gateway": {"mode": "cloud", "auth": {"token": "${T}"}}}
        out, notes = migrate(raw)
        self.assertEqual(out["gateway"], {"mode": "local", "auth": {"token": "${T}"}})
        self.assertEqual(raw["gateway"]["mode"], "cloud")
        self.assertEqual(migrate(out)[1], [])

    def test_disk_and_memory(self):
        """Little disk is an error, little memory a warning (injected probes)."""
        meminfo = self.home / "meminfo"
        meminfo.write_text("MemTotal: 1000 kB\nMemAvailable: 1024 kB\n")

        class Usage:
            free = 10 * 1024 * 1024

        findings = Doctor(resolve_layout(self.env), self.env, disk=lambda p: Usage, meminfo=meminfo).run()
        levels = {f.title: f.level for f in findings}
        self.assertEqual((levels["disk space"], levels["memory"]), ("error", "warn"))


class DeepTests(TestCase):
    timeout = 60

    async def test_deep_makes_one_live_call(self):
        """--deep asks the configured model for one token: a working fake provider passes, a refusing one is an error."""
        fake, base = await start_fake(self)
        fake.replies.append(openai_text("pong"))
        home = scratch_home(self)
        write_config(
            home / ".openclaw" / "openclaw.json",
            {
                "gateway": {"mode": "local", "auth": {"token": "t" * 32}},
                "models": {"providers": {"fake": {"api": "openai-completions", "baseUrl": base, "apiKey": "sk-test-key-123456"}}},
                "agents": {"defaults": {"model": "fake/m1"}},
            },
        )
        env = {**base_env(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "doctor", "--deep", "--verbose"], env=env, reactor=reactor)
        self.assertIn(b"model fake/m1: a one-token live call answered", out, err)
        self.assertEqual(len(fake.requests), 1)
        self.assertEqual(fake.requests[0]["body"]["model"], "m1")
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "doctor", "--deep"], env=env, reactor=reactor)
        self.assertEqual(code, 1, out)
        self.assertIn(b"model fake/m1: live call failed", out)
