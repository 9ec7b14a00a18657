"""The gateway service on real loopback sockets (port 0)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from openclaw.config import Flags, LoadedConfig, resolve_settings
from openclaw.net.listen import PortInUse
from openclaw.paths import resolve_layout
from openclaw.service import FORCE_KILL_GRACE, GatewayService
from openclaw.store import StateLocked
from tests.helpers import base_env, free_port, scratch_home
from tests.wsclient import GatewayMixin, gateway_settings


def make_settings(home, port=0, **gateway):
    env = base_env(home)
    config = {"gateway": {"mode": "local", **gateway}}
    loaded = LoadedConfig(path=home / "openclaw.json", exists=False, raw=None, hash=None, config=config, env=env)
    return resolve_settings(loaded, resolve_layout(env), Flags(port=port))


class LoopbackTests(TestCase):
    def start(self, settings):
        service = GatewayService(settings, reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def get(self, service, path, method="GET"):
        response = await treq.request(method, f"http://127.0.0.1:{service.port}{path}", persistent=False)
        return response.code, response.headers, await response.content()

    async def test_health(self):
        """GET/HEAD /health and /healthz answer 200 live JSON; POST is 405."""
        service = self.start(make_settings(scratch_home(self)))
        for path in ("/health", "/healthz"):
            code, headers, body = await self.get(service, path)
            self.assertEqual((code, json.loads(body)), (200, {"ok": True, "status": "live"}))
            self.assertEqual(headers.getRawHeaders("content-type"), ["application/json; charset=utf-8"])
        code, _, body = await self.get(service, "/health", "HEAD")
        self.assertEqual((code, body), (200, b""))
        code, headers, _ = await self.get(service, "/health", "POST")
        self.assertEqual((code, headers.getRawHeaders("allow")), (405, ["GET, HEAD"]))

    async def test_unknown_paths(self):
        """Unknown paths are JSON 404s (and / too, with the Control UI switched off)."""
        service = self.start(make_settings(scratch_home(self), controlUi={"enabled": False}))
        for path in ("/nope", "/", "/health/x", "/%2e%2e/etc/passwd"):
            code, _, body = await self.get(service, path)
            self.assertEqual(code, 404, path)
            self.assertEqual(json.loads(body)["error"]["type"], "not_found")

    def test_stray_temps_cleaned_at_start(self):
        """Start-up removes temp files a crashed writer left in the state dir."""
        home = scratch_home(self)
        state = home / ".openclaw" / "devices"
        state.mkdir(parents=True)
        (state / ".paired.json.tmp-99-abcd").write_text("half")
        (state / "paired.json").write_text("{}")
        self.start(make_settings(home))
        self.assertEqual(sorted(p.name for p in state.iterdir()), ["paired.json"])

    def test_second_instance_refused(self):
        """A second gateway on the same state dir is refused; the first keeps serving."""
        home = scratch_home(self)
        first = self.start(make_settings(home))
        second = GatewayService(make_settings(home), reactor)
        error = self.assertRaises(StateLocked, second.privilegedStartService)
        self.assertIn("already running", str(error))
        self.assertTrue(first.running)

    def test_port_in_use(self):
        """A taken port raises PortInUse naming the port; the state lock is released."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            home = scratch_home(self)
            service = GatewayService(make_settings(home, port=port), reactor)
            error = self.assertRaises(PortInUse, service.privilegedStartService)
            self.assertIn(f"port {port}", str(error))
            self.assertFalse(service.lock.held)

    async def test_restart_same_service(self):
        """A stopped service starts again on a fresh port and serves."""
        service = self.start(make_settings(scratch_home(self)))
        await service.stopService()
        service.privilegedStartService()
        service.startService()
        code, _, _ = await self.get(service, "/healthz")
        self.assertEqual(code, 200)


class StartChecksTests(GatewayMixin, TestCase):
    def warnings(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def test_loose_state_dir_warned(self):
        """A 0777 state dir is warned about at start, naming the path and `chmod 700 <dir>`; 0700 is quiet."""
        home = scratch_home(self)
        state = home / ".openclaw"
        state.mkdir(mode=0o700)
        os.chmod(state, 0o777)
        events = self.warnings()
        service = GatewayService(make_settings(home), reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        [warning] = [e for e in events if "chmod 700" in e.get("log_format", "")]
        self.assertEqual((warning["path"], warning["mode"], warning["log_level"].name), (str(state), "777", "warn"))

        quiet = scratch_home(self)
        events = self.warnings()
        service = GatewayService(make_settings(quiet), reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([e for e in events if "chmod 700" in e.get("log_format", "")], [])

    def test_force_kills_an_owner_that_ignores_sigterm(self):
        """--force: an owner that ignores SIGTERM is killed after a grace, within the bound."""
        port = free_port()
        code = (
            "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(60)"
        )
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: holder.poll() is None and holder.kill())
        self.assertEqual(holder.stdout.readline().strip(), "ready")
        service = GatewayService(make_settings(scratch_home(self), port=port), reactor)
        started = time.monotonic()
        self.assertTrue(service._stop_port_owners(started + FORCE_KILL_GRACE + 0.5))
        self.assertEqual(holder.wait(timeout=5), -signal.SIGKILL)
        self.assertLess(time.monotonic() - started, FORCE_KILL_GRACE + 0.5)

    async def test_config_get_refuses_a_device(self):
        """config.get on an openclaw.json that is a device answers an error naming it (a FIFO would block the reactor)."""
        await self.gateway()
        path = self.service.settings.layout.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/dev/null", path)
        ws, _ = await self.connect()
        res = await ws.request("config.get")
        self.assertEqual(res["error"]["code"], "UNAVAILABLE")
        self.assertIn(f"{path} is a character device, not a regular file", res["error"]["message"])

    def test_seed_sandbox_reaches_the_runtime(self):
        """With the seed's sandbox.enabled, non-main sessions are sandboxed and main is not; enabled false sandboxes none."""
        seed = {"mode": "cloud", "sandbox": {"enabled": True, "allowFileSystem": "workspace"}}
        runtime = GatewayService(gateway_settings(scratch_home(self), gateway=seed), reactor).core.agent
        self.assertIsNotNone(runtime.tool_context("agent:main:telegram:group:9").sandbox)
        self.assertIsNone(runtime.tool_context("agent:main:main").sandbox)
        off = {"sandbox": {"enabled": False}}
        runtime = GatewayService(gateway_settings(scratch_home(self), gateway=off), reactor).core.agent
        self.assertIsNone(runtime.tool_context("agent:main:telegram:group:9").sandbox)
