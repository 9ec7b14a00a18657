"""`openclaw gateway install|uninstall|start|stop|restart|status` with a fake systemctl (and launchctl) on PATH."""

from __future__ import annotations

import json
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import json5
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from openclaw.ops.supervisor import Launchd, SupervisorError, supervisor_for
from openclaw.ops.units import ServiceSpec, launchd_plist, systemd_unit
from tests.helpers import base_env, fake_bin, run_cli, scratch_home

# A systemctl that records its arguments and answers `show` from a state file.
FAKE_SYSTEMCTL = """
echo "$*" >> "$FAKE_LOG"
case " $* " in
  *" show "*) cat "$FAKE_STATE" 2>/dev/null || printf 'ActiveState=inactive\\nSubState=dead\\nMainPID=0\\nNRestarts=0\\nResult=success\\n' ;;
  *" start "*|*" restart "*) printf 'ActiveState=active\\nSubState=running\\nMainPID=4242\\nNRestarts=0\\nResult=success\\n' > "$FAKE_STATE" ;;
  *" stop "*|*" disable "*) printf 'ActiveState=inactive\\nSubState=dead\\nMainPID=0\\nNRestarts=0\\nResult=success\\n' > "$FAKE_STATE" ;;
esac
exit 0
"""
FAKE_LOGINCTL = 'echo "loginctl $*" >> "$FAKE_LOG"; echo "Linger=no"\n'


class UnitTextTests(SynchronousTestCase):
    def spec(self, **kw):
        defaults = dict(argv=("/opt/oc/bin/python", "-m", "openclaw", "--profile", "work", "gateway", "run"), state_dir=Path("/home/u/.openclaw-work"), config_path=Path("/home/u/.openclaw-work/openclaw.json"), profile="work")
        return ServiceSpec(**{**defaults, **kw})

    def test_systemd_unit(self):
        """Type=notify with a watchdog, restart on failure (not on exit 78), hardening with the state dir writable, the .env file."""
        text = systemd_unit(self.spec(writable=(Path("/srv/my workspace"),)))
        lines = text.splitlines()
        for line in (
            "Description=OpenClaw Gateway (profile work)",
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=/opt/oc/bin/python -m openclaw --profile work gateway run",
            "WorkingDirectory=/home/u/.openclaw-work",
            'Environment="OPENCLAW_STATE_DIR=/home/u/.openclaw-work"',
            "EnvironmentFile=-/home/u/.openclaw-work/.env",
            "Restart=on-failure",
            "RestartPreventExitStatus=78",
            "WatchdogSec=60",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            'ReadWritePaths=/home/u/.openclaw-work "-/srv/my workspace"',
            "PrivateTmp=yes",
            "WantedBy=default.target",
        ):
            self.assertIn(line, lines)
        self.assertNotIn("User=", text)
        self.assertEqual(systemd_unit(self.spec()), systemd_unit(self.spec()))  # a pure function

    def test_system_unit_and_quoting(self):
        """A system unit runs as the owner, wants multi-user.target; %, $ and spaces are escaped in ExecStart."""
        text = systemd_unit(self.spec(system=True, user="u", argv=("/p a/python", "100%", "$HOME")))
        self.assertIn("User=u", text.splitlines())
        self.assertIn("WantedBy=multi-user.target", text.splitlines())
        self.assertIn('ExecStart="/p a/python" 100%% $$HOME', text.splitlines())

    def test_systemd_analyze_accepts_it(self):
        """systemd's own checker has nothing to say about the unit (user-style and system)."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze not installed")
        folder = Path(self.mktemp()).resolve()
        (folder / "state").mkdir(parents=True)
        (folder / "my workspace").mkdir()  # and "not yet" does not exist: "-" lets the unit start anyway
        for system in (False, True):
            spec = self.spec(argv=(sys.executable, "-m", "openclaw", "gateway", "run"), state_dir=folder / "state", config_path=folder / "state" / "openclaw.json", writable=(folder / "my workspace", folder / "not yet"), system=system, user="root" if system else None)
            unit = folder / spec.unit_name
            unit.write_text(systemd_unit(spec))
            result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
            self.assertEqual((result.returncode, result.stderr), (0, ""), unit.read_text())

    def test_launchd_plist(self):
        """The LaunchAgent: upstream's label, our argv, restarted only after a failure, logs in the state dir."""
        plist = plistlib.loads(launchd_plist(self.spec()))
        self.assertEqual(plist["Label"], "ai.openclaw.work")
        self.assertEqual(plist["ProgramArguments"][-3:], ["work", "gateway", "run"])
        self.assertEqual(plist["KeepAlive"], {"SuccessfulExit": False})
        self.assertTrue(plist["RunAtLoad"])
        self.assertEqual(plist["EnvironmentVariables"]["OPENCLAW_STATE_DIR"], "/home/u/.openclaw-work")
        self.assertEqual(plist["StandardErrorPath"], "/home/u/.openclaw-work/logs/gateway.err.log")
        self.assertEqual(ServiceSpec(argv=(), state_dir=Path("/s"), config_path=Path("/s/c")).label, "ai.openclaw.gateway")


class SystemdCommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.bin = self.home / "bin"
        fake_bin(self.bin, "systemctl", FAKE_SYSTEMCTL)
        fake_bin(self.bin, "loginctl", FAKE_LOGINCTL)
        self.log = self.home / "calls.log"
        self.env = base_env(self.home, FAKE_LOG=str(self.log), FAKE_STATE=str(self.home / "unit.state"))
        self.env["PATH"] = f"{self.bin}:{self.env['PATH']}"
        self.unit = self.home / ".config" / "systemd" / "user" / "openclaw-gateway.service"

    def cli(self, *args):
        return run_cli(*args, env=self.env)

    def calls(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def test_install_drive_uninstall(self):
        """install writes the user unit (no secrets), reloads, enables and starts it; lifecycle commands drive systemctl; uninstall removes it."""
        self.assertEqual(self.cli("setup").returncode, 0)
        token = json5.loads((self.home / ".openclaw" / "openclaw.json").read_text())["gateway"]["auth"]["token"]
        result = self.cli("gateway", "install")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Installed: {self.unit}", result.stdout)
        self.assertIn("state: active (running), pid 4242", result.stdout)
        self.assertIn("sudo loginctl enable-linger", result.stdout)
        self.assertIn("journalctl --user -u openclaw-gateway.service", result.stdout)
        text = self.unit.read_text()
        self.assertIn("Type=notify", text)
        self.assertIn(f"ReadWritePaths={self.home / '.openclaw'}", text)
        self.assertNotIn(token, text)
        self.assertEqual(
            [c for c in self.calls() if not c.startswith("--user show") and not c.startswith("loginctl")],
            ["--user daemon-reload", "--user enable openclaw-gateway.service", "--user restart openclaw-gateway.service"],
        )

        again = self.cli("gateway", "install")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("Already installed (unchanged)", again.stdout)

        self.unit.write_text(text + "# edited by hand\n")
        refused = self.cli("gateway", "install")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("--force", refused.stderr)
        self.assertEqual(self.cli("gateway", "install", "--force").returncode, 0)
        self.assertEqual(self.unit.read_text(), text)

        self.log.write_text("")
        for command, verb in (("stop", "stop"), ("start", "start"), ("restart", "restart")):
            result = self.cli("gateway", command)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(f"--user {verb} openclaw-gateway.service", self.calls())
        status = self.cli("gateway", "status", "--json", "--no-probe")
        report = json.loads(status.stdout)
        self.assertEqual((report["service"]["manager"], report["service"]["state"], report["service"]["pid"]), ("systemd", "running", 4242))

        removed = self.cli("gateway", "uninstall")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertFalse(self.unit.exists())
        self.assertIn("--user disable --now openclaw-gateway.service", self.calls())
        self.assertIn("No service installed", self.cli("gateway", "uninstall").stdout)

    def test_profile_and_system_units(self):
        """--profile names the unit; --system writes a system unit (here in OPENCLAW_SYSTEMD_DIR) driven without --user."""
        self.env["OPENCLAW_SYSTEMD_DIR"] = str(self.home / "units")
        self.assertEqual(self.cli("--profile", "rescue", "setup").returncode, 0)
        result = self.cli("--profile", "rescue", "gateway", "install", "--system")
        self.assertEqual(result.returncode, 0, result.stderr)
        unit = self.home / "units" / "openclaw-gateway-rescue.service"
        text = unit.read_text()
        self.assertIn("--profile rescue gateway run", text)
        self.assertIn("WantedBy=multi-user.target", text)
        self.assertIn("User=", text)
        self.assertNotIn("enable-linger", result.stdout)
        self.assertIn("enable openclaw-gateway-rescue.service", self.calls())
        self.assertFalse(any(c.startswith("--user") for c in self.calls()))
        self.assertEqual(self.cli("--profile", "rescue", "gateway", "stop").returncode, 0)
        self.assertEqual(self.calls()[-1], "stop openclaw-gateway-rescue.service")

    def test_install_refuses_without_local_mode(self):
        """A config without gateway.mode local: no unit, a hint to run setup."""
        (self.home / ".openclaw").mkdir(mode=0o700)
        (self.home / ".openclaw" / "openclaw.json").write_text("{}")
        result = self.cli("gateway", "install")
        self.assertEqual(result.returncode, 1)
        self.assertIn("openclaw setup", result.stderr)
        self.assertFalse(self.unit.exists())

    def test_no_systemd(self):
        """Without systemctl on PATH: install says so and points at `gateway start`."""
        self.assertEqual(self.cli("setup").returncode, 0)
        self.env["PATH"] = "/nonexistent"
        result = run_cli("gateway", "install", env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("systemctl not found", result.stderr)
        self.assertIn("openclaw gateway start", result.stderr)


class LaunchdTests(SynchronousTestCase):
    def test_launchd_install_and_drive(self):
        """On Darwin the plist goes to LaunchAgents and launchctl bootstraps, kickstarts and boots it out."""
        home = scratch_home(self)
        log = home / "calls.log"
        fake_bin(home / "bin", "launchctl", 'echo "$*" >> "$FAKE_LOG"\ncase "$1" in print) printf "state = running\\npid = 77\\n";; esac\n')
        env = {"HOME": str(home), "PATH": f"{home / 'bin'}:/usr/bin:/bin", "FAKE_LOG": str(log)}
        spec = ServiceSpec(argv=("/py", "-m", "openclaw", "gateway", "run"), state_dir=home / ".openclaw", config_path=home / ".openclaw" / "openclaw.json")
        manager = supervisor_for(spec, env, platform="darwin")
        self.assertIsInstance(manager, Launchd)
        installed = manager.install(force=False)
        self.assertEqual(installed.path, home / "Library" / "LaunchAgents" / "ai.openclaw.gateway.plist")
        self.assertEqual(plistlib.loads(installed.path.read_bytes())["Label"], "ai.openclaw.gateway")
        calls = log.read_text().splitlines()
        self.assertTrue(calls[1].startswith("bootstrap gui/") and calls[1].endswith(str(installed.path)), calls)
        state = manager.state()
        self.assertEqual((state.active, state.pid), ("running", 77))
        installed.path.write_bytes(b"<plist/>")
        self.assertRaises(SupervisorError, manager.install, False)
        self.assertTrue(manager.uninstall())
        self.assertIn("bootout", log.read_text().splitlines()[-1])
        self.assertEqual(shlex.split(log.read_text().splitlines()[-1])[0], "bootout")
