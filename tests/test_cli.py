"""The `openclaw` command, run in a subprocess as a user runs it."""

import json
import os
import resource
import signal
import stat
import socket
import subprocess
import sys
import time
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from openclaw import __version__
from tests.helpers import REPO, base_env, free_port, run_cli, scratch_home, sigint_default, write_config


class ConfigCommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)
        self.config = self.home / ".openclaw" / "openclaw.json"

    def test_version(self):
        """--version prints the version."""
        result = run_cli("--version", env=self.env)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, __version__))

    def test_validate_ok(self):
        """A valid config exits 0 and says so; warnings are listed."""
        write_config(self.config, '{gateway: {mode: "local", bogus: 1}}')
        result = run_cli("config", "validate", env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Config valid: {self.config}", result.stdout)
        self.assertIn("gateway.bogus: unknown key", result.stdout)

    def test_validate_bad(self):
        """An invalid config exits 78 with the key path and what is allowed; --json too."""
        write_config(self.config, '{gateway: {bind: "wan", port: 0}}')
        result = run_cli("config", "validate", env=self.env)
        self.assertEqual(result.returncode, 78)
        self.assertIn(f"Invalid config at {self.config}", result.stderr)
        self.assertIn("gateway.bind: invalid value 'wan'; allowed: loopback, lan, tailnet, auto, custom", result.stderr)
        self.assertIn("gateway.port: expected an integer from 1 to 65535, got 0", result.stderr)
        result = run_cli("config", "validate", "--json", env=self.env)
        self.assertEqual(result.returncode, 78)
        report = json.loads(result.stdout)
        self.assertEqual(report["valid"], False)
        self.assertEqual({i["path"] for i in report["issues"]}, {"gateway.bind", "gateway.port"})

    def test_validate_parse_error(self):
        """A JSON5 syntax error exits 78 naming the file and line."""
        write_config(self.config, "{\n gateway: \n")
        result = run_cli("config", "validate", env=self.env)
        self.assertEqual(result.returncode, 78)
        self.assertIn(f"{self.config}:", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_get(self):
        """config get prints a value by dotted path (strings plain, others JSON); missing is exit 1."""
        write_config(self.config, '{gateway: {mode: "local", port: 1234, auth: {token: "${TOK}"}}, agents: {list: [{id: "main"}]}}')
        env = {**self.env, "TOK": "abc"}
        self.assertEqual(run_cli("config", "get", "gateway.port", env=env).stdout, "1234\n")
        self.assertEqual(run_cli("config", "get", "gateway.auth.token", env=env).stdout, "abc\n")
        self.assertEqual(run_cli("config", "get", "agents.list[0].id", env=env).stdout, "main\n")
        self.assertEqual(json.loads(run_cli("config", "get", "gateway", env=env).stdout)["port"], 1234)
        missing = run_cli("config", "get", "gateway.nope", env=env)
        self.assertEqual((missing.returncode, missing.stderr), (1, "Config path not found: gateway.nope\n"))

    def test_validate_fifo(self):
        """openclaw.json as a FIFO: config validate and gateway exit 78 at once instead of waiting for a writer."""
        self.config.parent.mkdir(parents=True)
        os.mkfifo(self.config)
        for args in (("config", "validate"), ("gateway",)):
            result = run_cli(*args, env=self.env, timeout=20)
            self.assertEqual(result.returncode, 78, result.stderr)
            self.assertIn(f"config file {self.config} is a FIFO, not a regular file", result.stderr)

    def test_config_links_to_dev_zero(self):
        """openclaw.json linked to /dev/zero exits 78 (run under a memory limit: the bug read until MemoryError)."""
        self.config.parent.mkdir(parents=True)
        os.symlink("/dev/zero", self.config)

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

        result = subprocess.run(
            [sys.executable, "-m", "openclaw", "config", "validate"],
            env={**self.env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=limit,
        )
        self.assertEqual(result.returncode, 78, result.stderr[-2000:])
        self.assertIn("is a character device, not a regular file", result.stderr)

    def test_validate_seed_config(self):
        """The seed's own values (mode cloud, sandbox.enabled, allowFileSystem workspace) validate."""
        write_config(self.config, '{gateway: {mode: "cloud", sandbox: {enabled: true, allowFileSystem: "workspace"}}}')
        result = run_cli("config", "validate", env=self.env)
        self.assertEqual((result.returncode, result.stdout), (0, f"Config valid: {self.config}\n"), result.stderr)

    def test_profile_flag(self):
        """The global --profile chooses which config is read."""
        write_config(self.home / ".openclaw-w" / "openclaw.json", "{gateway: {port: 4242}}")
        self.assertEqual(run_cli("--profile", "w", "config", "get", "gateway.port", env=self.env).stdout, "4242\n")

    def test_unknown_command(self):
        """An unknown command is a usage error (exit 2), not a traceback."""
        result = run_cli("frobnicate", env=self.env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("Run `openclaw --help`", result.stderr)


class GatewayCommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)

    def test_invalid_config_exits_78(self):
        """`openclaw gateway` with an invalid config exits 78 with the message."""
        write_config(self.home / ".openclaw" / "openclaw.json", '{gateway: {mode: "local", maxConnections: "many"}}')
        result = run_cli("gateway", env=self.env)
        self.assertEqual(result.returncode, 78)
        self.assertIn("gateway.maxConnections: expected an integer from 1 to 100000", result.stderr)

    def test_unconfigured_refused(self):
        """Without gateway.mode local (and no --allow-unconfigured) the gateway refuses."""
        result = run_cli("gateway", "run", env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("set gateway.mode", result.stderr)

    def test_lan_without_auth_refused(self):
        """--bind lan with no token or password refuses with a clear message."""
        result = run_cli("gateway", "--allow-unconfigured", "--bind", "lan", env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("without auth", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_port_in_use(self):
        """A taken port: a message naming the port and how to find the owner, non-zero, no traceback."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run_cli("gateway", "--allow-unconfigured", "--port", str(port), env=self.env)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"port {port}", result.stderr)
        self.assertIn(f"pid {os.getpid()}", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_force_stops_the_port_owner(self):
        """--force stops whatever listens on the gateway port, then starts."""
        port = free_port()
        holder = subprocess.Popen(
            [sys.executable, "-c", f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_default,
        )
        self.addCleanup(lambda: holder.poll() is None and holder.kill())
        self.assertEqual(holder.stdout.readline().strip(), "ready")
        proc, health = self.start_gateway(port, "--force")
        self.assertEqual(health, {"ok": True, "status": "live"})
        self.assertEqual(holder.wait(timeout=10), -signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)

    def test_force_restart_on_the_same_state_dir(self):
        """--force restarts a gateway on its own state dir: the old one is stopped, then the lock taken."""
        port = free_port()
        first, _ = self.start_gateway(port)
        second = self.spawn_gateway(port, "--force")
        deadline = time.monotonic() + 30
        while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if second.poll() is not None:
            self.fail(f"the --force gateway exited: {second.stderr.read()}")
        self.assertEqual(first.wait(timeout=1), 0)
        self.assertNotIn("another gateway", first.stderr.read())
        health = self.wait_health(second, port)
        self.assertEqual(health, {"ok": True, "status": "live"})
        lock = self.home / ".openclaw" / "gateway.lock"
        self.assertEqual(lock.read_text().strip(), str(second.pid))
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=60)
        self.assertEqual(second.returncode, 0, err)
        self.assertIn(f"--force: stopping pid {first.pid} on port {port}", out)

    def test_loose_state_dir_warned(self):
        """A state dir others can open is named at start, with the fix, on the console and in the log."""
        state = self.home / ".openclaw"
        state.mkdir()
        state.chmod(0o777)
        proc, _ = self.start_gateway(free_port())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        warning = f"state dir {state} is mode 777"
        self.assertIn(warning, out)
        self.assertIn(f"chmod 700 {state}", out)
        records = [json.loads(line) for line in (state / "logs" / "gateway.log").read_text().splitlines()]
        [record] = [r for r in records if r["msg"].startswith(warning)]
        self.assertEqual(record["level"], "warn")
        self.assertEqual(stat.S_IMODE(state.stat().st_mode), 0o777)  # named, not changed behind the user's back

    def spawn_gateway(self, port, *extra):
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw", "gateway", "--allow-unconfigured", "--port", str(port), *extra],
            env={**self.env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_default,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_health(self, proc, port):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    return json.loads(r.read())
            except OSError:
                if proc.poll() is not None:
                    self.fail(f"gateway exited: {proc.stderr.read()}")
                time.sleep(0.1)
        self.fail("gateway did not answer /health")

    def start_gateway(self, port, *extra):
        proc = self.spawn_gateway(port, *extra)
        return proc, self.wait_health(proc, port)

    def test_foreground_run_and_ctrl_c(self):
        """The gateway prints where it listens, answers /health, and stops cleanly on SIGINT."""
        port = free_port()
        proc, health = self.start_gateway(port)
        self.assertEqual(health, {"ok": True, "status": "live"})
        second = run_cli("gateway", "--allow-unconfigured", "--port", str(free_port()), env=self.env)
        self.assertEqual(second.returncode, 1)
        self.assertIn("another gateway is already running", second.stderr)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn(f"listening on ws://127.0.0.1:{port}", out)
        self.assertNotIn("Traceback", out + err)
        log = (self.home / ".openclaw" / "logs" / "gateway.log").read_text().splitlines()
        records = [json.loads(line) for line in log]
        self.assertTrue(any(r["msg"].startswith("listening on") for r in records))
        self.assertTrue(all({"ts", "level", "subsystem", "msg"} <= set(r) for r in records))


class TwistdTests(SynchronousTestCase):
    def test_twistd_runs_the_gateway(self):
        """`twistd -n --pidfile= openclaw` serves /health and stops on SIGTERM."""
        home = scratch_home(self)
        port = free_port()
        twistd = [sys.executable, "-c", "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"]
        proc = subprocess.Popen(
            [*twistd, "-n", "--pidfile=", "openclaw", "--allow-unconfigured", "--port", str(port)],
            env={**base_env(home), "PYTHONPATH": str(REPO)},
            cwd=str(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_default,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    health = json.loads(r.read())
            except OSError:
                if proc.poll() is not None:
                    self.fail(proc.stderr.read())
                time.sleep(0.1)
        self.assertEqual(health, {"ok": True, "status": "live"})
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        # twistd shuts down cleanly, then re-raises the signal so its exit status says SIGTERM
        self.assertEqual(proc.returncode, -signal.SIGTERM, err)
        self.assertIn("Server Shut Down", out)
        self.assertIn("listening on ws://127.0.0.1", out)
        self.assertTrue((home / ".openclaw" / "logs" / "gateway.log").exists())
