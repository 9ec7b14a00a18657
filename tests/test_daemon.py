"""`openclaw gateway start|status|restart|stop|reset` with real background gateways, as a person types them."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

import json5
from twisted.trial.unittest import SynchronousTestCase

from openclaw.ops import daemon
from openclaw.ops.procinfo import alive, is_gateway
from tests.helpers import REPO, base_env, free_port, run_cli, scratch_home


def health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Profile:
    """One profile in a scratch HOME, set up with `openclaw setup`."""

    def __init__(self, testcase: SynchronousTestCase, home: Path, name: str | None = None, port: int | None = None) -> None:
        self.testcase = testcase
        self.env = base_env(home)
        self.flags = ["--profile", name] if name else []
        self.state = home / (f".openclaw-{name}" if name else ".openclaw")
        args = ["setup", "--json"] + (["--port", str(port)] if port else [])
        result = self.cli(*args)
        testcase.assertEqual(result.returncode, 0, result.stderr)
        self.port = json.loads(result.stdout)["port"]
        testcase.addCleanup(self.cleanup)

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return run_cli(*self.flags, *args, env=self.env, timeout=timeout)

    def cleanup(self) -> None:
        pid = daemon.running_pid(self.state)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


class LifecycleTests(SynchronousTestCase):
    def test_start_status_restart_stop(self):
        """start (background, pidfile, ready) → status → second start refused → restart (new pid) → stop (clean) → status says stopped."""
        home = scratch_home(self)
        gw = Profile(self, home, port=free_port())
        start = gw.cli("gateway", "start")
        self.assertEqual(start.returncode, 0, start.stderr)
        pid = int((gw.state / "gateway.pid").read_text())
        self.assertIn(f"pid {pid}", start.stdout)
        self.assertTrue(health(gw.port))
        self.assertTrue(is_gateway(open(f"/proc/{pid}/cmdline").read().split("\0")))
        self.assertEqual(os.getsid(pid), pid)  # a session of its own: the terminal's hangup does not reach it

        status = gw.cli("gateway", "status", "--json")
        self.assertEqual(status.returncode, 0, status.stderr)
        report = json.loads(status.stdout)
        self.assertEqual((report["service"]["manager"], report["pid"], report["ports"]["gateway"]["owners"]), ("background", pid, [pid]))
        self.assertTrue(report["probe"]["ok"])
        self.assertEqual(report["auth"], "token")
        self.assertGreater(report["memory"]["rssBytes"], 1 << 20)
        text = gw.cli("gateway", "status").stdout
        self.assertIn(f"background process: started by `openclaw gateway start`, pid {pid}", text)
        self.assertIn(f"ws://127.0.0.1:{gw.port} reachable", text)

        again = gw.cli("gateway", "start")
        self.assertEqual(again.returncode, 1)
        self.assertIn(f"already running on {gw.state} (pid {pid})", again.stderr)

        restart = gw.cli("gateway", "restart")
        self.assertEqual(restart.returncode, 0, restart.stderr)
        new_pid = int((gw.state / "gateway.pid").read_text())
        self.assertNotEqual(new_pid, pid)
        self.assertFalse(alive(pid))
        self.assertTrue(health(gw.port))

        stop = gw.cli("gateway", "stop")
        self.assertEqual(stop.returncode, 0, stop.stderr)
        self.assertIn(f"Gateway pid {new_pid} stopped cleanly", stop.stdout)
        self.assertFalse(alive(new_pid))
        self.assertFalse((gw.state / "gateway.pid").exists())
        self.assertFalse(health(gw.port))
        log = (gw.state / "logs" / "gateway.log").read_text()
        self.assertIn('"msg": "gateway stopping"', log)  # SIGTERM took the clean path

        stopped = gw.cli("gateway", "status")
        self.assertEqual(stopped.returncode, 3)
        self.assertIn("not running", stopped.stdout)
        self.assertEqual(gw.cli("gateway", "stop").returncode, 0)  # stopping a stopped gateway is fine

    def test_start_failure_shows_why(self):
        """A port in use: start exits 1 with the gateway's own words, and leaves no pidfile."""
        home = scratch_home(self)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        self.addCleanup(blocker.close)
        gw = Profile(self, home, port=blocker.getsockname()[1])
        result = gw.cli("gateway", "start", "--timeout", "30")
        self.assertEqual(result.returncode, 1)
        self.assertIn("exited with status 1 before it was ready", result.stderr)
        self.assertIn(f"cannot listen for the gateway on port {gw.port}", result.stderr)
        self.assertFalse((gw.state / "gateway.pid").exists())

    def test_start_refuses_an_invalid_config(self):
        """An invalid config: exit 78 before anything is spawned."""
        home = scratch_home(self)
        gw = Profile(self, home, port=free_port())
        (gw.state / "openclaw.json").write_text('{gateway: {mode: "local", bind: "nowhere"}}')
        result = gw.cli("gateway", "start")
        self.assertEqual(result.returncode, 78)
        self.assertIn("gateway.bind", result.stderr)
        self.assertFalse((gw.state / "gateway.pid").exists())

    def test_stop_kills_after_the_bound(self):
        """A gateway that ignores SIGTERM is SIGKILLed once the timeout passes."""
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        stubborn = subprocess.Popen(
            [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(120)", "openclaw", "gateway", "run"],
            stdout=subprocess.PIPE,
        )
        self.addCleanup(lambda: stubborn.poll() is None and stubborn.kill())
        stubborn.stdout.readline()
        (state / "gateway.pid").write_text(f"{stubborn.pid}\n")
        started = time.monotonic()
        stopped = daemon.stop(state, timeout=0.5)
        self.assertEqual((stopped.pid, stopped.killed), (stubborn.pid, True))
        self.assertLess(time.monotonic() - started, 10)
        stubborn.wait(5)  # stop() reaped it already (it is our child here)
        self.assertFalse(alive(stubborn.pid))
        self.assertFalse((state / "gateway.pid").exists())

    def test_stale_pidfile_is_not_a_gateway(self):
        """A pidfile naming a dead pid, or a process that is no gateway, is not 'running'."""
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        (state / "gateway.pid").write_text(f"{os.getpid()}\n")  # this test runner: not a gateway
        self.assertIsNone(daemon.running_pid(state))
        self.assertEqual(daemon.stale_pidfile(state), os.getpid())


class ProfilesTests(SynchronousTestCase):
    def test_two_profiles_side_by_side(self):
        """Two profiles set up without ports run at once, each with its own state, gateway, bridge and canvas ports."""
        home = scratch_home(self)
        a = Profile(self, home, "alpha")
        b = Profile(self, home, "beta")
        self.assertGreaterEqual(abs(a.port - b.port), 5)
        for gw in (a, b):
            result = gw.cli("gateway", "start")
            self.assertEqual(result.returncode, 0, result.stderr)
        reports = {}
        for gw in (a, b):
            status = gw.cli("gateway", "status", "--json")
            self.assertEqual(status.returncode, 0, status.stderr)
            reports[gw.state.name] = json.loads(status.stdout)
        ra, rb = reports[".openclaw-alpha"], reports[".openclaw-beta"]
        self.assertNotEqual(ra["pid"], rb["pid"])
        for report, gw in ((ra, a), (rb, b)):
            ports = report["ports"]
            self.assertEqual([ports[k]["port"] for k in ("gateway", "bridge", "canvas")], [gw.port, gw.port + 1, gw.port + 4])
            for name in ("gateway", "bridge", "canvas"):
                self.assertEqual(ports[name]["owners"], [report["pid"]], name)
            self.assertEqual(report["stateDir"], str(gw.state))
            self.assertTrue(health(gw.port))
        for gw in (a, b):
            self.assertEqual(gw.cli("gateway", "stop").returncode, 0)


class ResetTests(SynchronousTestCase):
    def test_reset_state_keeps_what_matters(self):
        """reset --state refuses while running; once stopped it clears runtime files, keeps config and transcripts; the gateway starts clean."""
        home = scratch_home(self)
        gw = Profile(self, home, port=free_port())
        sessions = gw.state / "agents" / "main" / "sessions"
        sessions.mkdir(parents=True)
        header = {"type": "session", "version": 3, "id": "s-1", "sessionKey": "agent:main:main", "timestamp": "2026-01-01T00:00:00Z", "cwd": "/"}
        (sessions / "s-1.jsonl").write_text(json.dumps(header) + "\n")
        (sessions / "sessions.json").write_text("{broken")
        (gw.state / "devices").mkdir(mode=0o700)
        (gw.state / "devices" / "pending.json").write_text("{}")
        (gw.state / "devices" / "paired.json").write_text("{}")
        (gw.state / "gateway-state").mkdir()
        (gw.state / "gateway-state" / "x").write_text("1")
        (gw.state / "cron" / "runs").mkdir(parents=True, mode=0o700)
        (gw.state / "cron" / "jobs.json").write_text('{"version": 1, "jobs": []}')
        (gw.state / "cron" / "runs" / "j1.jsonl").write_text("{}\n")
        config = (gw.state / "openclaw.json").read_text()

        started = gw.cli("gateway", "start")
        self.assertEqual(started.returncode, 0, started.stdout + started.stderr)
        refused = gw.cli("gateway", "reset", "--state")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("stop it first", refused.stderr)
        self.assertEqual(gw.cli("gateway", "stop").returncode, 0)
        (gw.state / ".openclaw.json.tmp-1-aa").write_text("")  # a crash mid-write

        result = gw.cli("gateway", "reset", "--state", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        removed = set(json.loads(result.stdout)["removed"])
        for path in ("devices/pending.json", "gateway-state", "agents/main/sessions/sessions.json", ".openclaw.json.tmp-1-aa", "gateway.lock"):
            self.assertIn(str(gw.state / path), removed)
        self.assertEqual((gw.state / "openclaw.json").read_text(), config)
        self.assertTrue((sessions / "s-1.jsonl").exists())
        self.assertTrue((gw.state / "devices" / "paired.json").exists())
        self.assertTrue((gw.state / "cron" / "jobs.json").exists())
        self.assertTrue((gw.state / "cron" / "runs" / "j1.jsonl").exists())
        self.assertEqual(gw.cli("gateway", "reset").returncode, 2)

        self.assertEqual(gw.cli("gateway", "start").returncode, 0)
        token = json5.loads(config)["gateway"]["auth"]["token"]
        listing = gw.cli("gateway", "call", "sessions.list", "--token", token, "--url", f"ws://127.0.0.1:{gw.port}")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("agent:main:main", listing.stdout)  # the index was rebuilt from the transcript
        self.assertEqual(gw.cli("gateway", "stop").returncode, 0)


class LogsTests(SynchronousTestCase):
    def test_logs_tail_and_follow(self):
        """gateway logs --tail N prints the last lines; -f follows new ones across a rotation."""
        home = scratch_home(self)
        gw = Profile(self, home, port=free_port())
        logs = gw.state / "logs"
        logs.mkdir(mode=0o700)
        lines = [json.dumps({"ts": f"t{i}", "level": "info", "subsystem": "gateway", "msg": f"line {i}"}) for i in range(10)]
        (logs / "gateway.log").write_text("\n".join(lines) + "\n")
        result = gw.cli("gateway", "logs", "--tail", "3")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([l.split()[-1] for l in result.stdout.splitlines()], ["7", "8", "9"])
        self.assertIn("[gateway] line 9", result.stdout)

        follow = subprocess.Popen(
            [sys.executable, "-m", "openclaw", "gateway", "logs", "-f", "--tail", "0", "--interval", "100", "--json"],
            env={**gw.env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: follow.poll() is None and follow.kill())
        got: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [got.put(line) for line in follow.stdout], daemon=True).start()

        def next_line(write: Callable[[], None] | None = None) -> dict:
            """The follower's next line; C{write} is repeated until one comes (it may start late: --tail 0 skips what came before)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if write is not None:
                    write()
                try:
                    return json.loads(got.get(timeout=0.5))
                except queue.Empty:
                    continue
            self.fail("the follower printed nothing within 60 s")

        def append() -> None:
            with open(logs / "gateway.log", "a") as f:
                f.write(json.dumps({"level": "warn", "subsystem": "x", "msg": "appended"}) + "\n")

        self.assertEqual(next_line(append)["msg"], "appended")
        os.replace(logs / "gateway.log", logs / "gateway.log.1")
        (logs / "gateway.log").write_text(json.dumps({"level": "info", "msg": "after rotation"}) + "\n")
        line = next_line()
        while line["msg"] == "appended":  # appended more than once while it started
            line = next_line()
        self.assertEqual(line["msg"], "after rotation")
        follow.send_signal(signal.SIGINT)
        self.assertEqual(follow.wait(10), 0)
