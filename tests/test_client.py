"""Our own client: the sans-IO core, device identity, and the CLI commands against a live gateway."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.client.core import ClientCore, GatewayClosed, RequestFailed, cli_params
from openclaw.client.identity import DeviceIdentity, DeviceTokens
from openclaw.gateway.devices import verify_device
from tests.helpers import REPO
from tests.wsclient import TOKEN, Device, GatewayMixin, connect_params


class CoreTests(SynchronousTestCase):
    def setUp(self):
        self.sent = []
        self.identity = DeviceIdentity.load_or_create(Path(self.mktemp()))
        self.core = ClientCore(self.sent.append, cli_params("tok", None, None, ["operator.read"]), self.identity)

    def test_signed_connect(self):
        """The challenge is answered with a connect whose v3 signature the gateway accepts."""
        self.core.received(json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n-1", "ts": 1000}}))
        [connect] = [json.loads(t) for t in self.sent]
        params = connect["params"]
        self.assertEqual((connect["method"], params["minProtocol"], params["maxProtocol"]), ("connect", 3, 4))
        verify_device(params["device"], params["client"], "operator", params["scopes"], "tok", "n-1", 1000, 1000, True, True)

    def test_expect_final(self):
        """With expect_final an "accepted" response is skipped and the final one resolves."""
        self.core.received(json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 1}}))
        connect_id = json.loads(self.sent[0])["id"]
        self.core.received(json.dumps({"type": "res", "id": connect_id, "ok": True, "payload": {"type": "hello-ok"}}))
        self.assertEqual(self.successResultOf(self.core.ready), {"type": "hello-ok"})
        d = self.core.call("agent", {"message": "hi"}, expect_final=True)
        request_id = json.loads(self.sent[-1])["id"]
        self.core.received(json.dumps({"type": "res", "id": request_id, "ok": True, "payload": {"status": "accepted"}}))
        self.assertNoResult(d)
        self.core.received(json.dumps({"type": "res", "id": request_id, "ok": True, "payload": {"status": "ok"}}))
        self.assertEqual(self.successResultOf(d), {"status": "ok"})

    def test_errors_and_close(self):
        """An error response fails its call; a close fails the rest and later calls."""
        self.core.received(json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 1}}))
        self.core.received(json.dumps({"type": "res", "id": json.loads(self.sent[0])["id"], "ok": True, "payload": {}}))
        failing = self.core.call("x")
        waiting = self.core.call("y")
        self.core.received(json.dumps({"type": "res", "id": json.loads(self.sent[-2])["id"], "ok": False, "error": {"code": "INVALID_REQUEST", "message": "no"}}))
        self.assertEqual(self.failureResultOf(failing, RequestFailed).value.error["message"], "no")
        self.core.closed(1012, "service restart")
        self.assertEqual(self.failureResultOf(waiting, GatewayClosed).value.code, 1012)
        self.assertRaises(GatewayClosed, self.core.call, "z")
        self.core.received(b"\xff not json")  # ignored, never raises

    def test_identity_files(self):
        """The identity persists (same id on reload) in 0600 files; tokens are kept per device and role."""
        state = Path(self.mktemp())
        first = DeviceIdentity.load_or_create(state)
        self.assertEqual(DeviceIdentity.load_or_create(state).id, first.id)
        self.assertEqual(stat.S_IMODE(os.stat(state / "identity" / "device.json").st_mode), 0o600)
        tokens = DeviceTokens(state)
        tokens.put(first.id, "operator", "t1", ["operator.read"])
        self.assertEqual(tokens.get(first.id, "operator"), "t1")
        tokens.clear(first.id, "operator")
        self.assertIsNone(tokens.get(first.id, "operator"))


class CommandTests(GatewayMixin, TestCase):
    timeout = 120

    async def cli(self, *args, env=None, home=None):
        home = home or Path(self.mktemp()).resolve()
        home.mkdir(exist_ok=True)
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO), **(env or {})}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args], env=full_env, reactor=reactor)
        return code, out.decode(), err.decode()

    def target(self, token=TOKEN):
        return ["--url", f"ws://127.0.0.1:{self.service.port}", "--token", token]

    async def test_gateway_call(self):
        """`gateway call` prints the payload as JSON; errors exit 1 with the code and message."""
        await self.gateway()
        code, out, err = await self.cli("gateway", "call", "health", *self.target())
        self.assertEqual(code, 0, err)
        self.assertTrue(json.loads(out)["ok"])
        code, out, err = await self.cli("gateway", "call", "set-heartbeats", "--params", '{"enabled": false}', *self.target())
        self.assertEqual(json.loads(out), {"ok": True, "enabled": False})
        code, _, err = await self.cli("gateway", "call", "no.such.method", *self.target())
        self.assertEqual((code, err.strip()), (1, "Gateway call failed: INVALID_REQUEST: unknown method: no.such.method"))

    async def test_bad_token_and_unreachable(self):
        """A wrong token and a closed port both exit 1 with a clear message and no traceback."""
        await self.gateway()
        code, _, err = await self.cli("gateway", "call", "health", *self.target("wrong"))
        self.assertEqual(code, 1)
        self.assertIn("gateway token mismatch", err)
        self.assertNotIn("wrong", err.replace("wrong-", ""))
        code, _, err = await self.cli("gateway", "health", "--url", "ws://127.0.0.1:9", "--timeout", "2000")
        self.assertEqual(code, 1)
        self.assertIn("Gateway not reachable at ws://127.0.0.1:9", err)
        self.assertNotIn("Traceback", err)

    async def test_env_target_and_stored_device_token(self):
        """Without --url the port and token come from the environment; later the stored device token suffices."""
        await self.gateway()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"OPENCLAW_GATEWAY_PORT": str(self.service.port), "OPENCLAW_GATEWAY_TOKEN": TOKEN}
        code, out, err = await self.cli("health", env=env, home=home)
        self.assertEqual(code, 0, err)
        self.assertIn(f"Gateway OK (ws://127.0.0.1:{self.service.port})", out)
        code, out, err = await self.cli("health", "--json", env={"OPENCLAW_GATEWAY_PORT": str(self.service.port)}, home=home)
        self.assertEqual(code, 0, err)
        self.assertTrue(json.loads(out)["ok"])

    async def test_status_deep_and_probe(self):
        """gateway status --deep: local report, deep checks and a probe of --url; probe --json reports protocol and timings."""
        await self.gateway()
        code, out, err = await self.cli("gateway", "status", "--deep", "--json", *self.target())
        self.assertEqual(code, 0, err)
        report = json.loads(out)
        self.assertTrue({"service", "ports", "config", "probe", "deep"} <= set(report))
        self.assertEqual(set(report["deep"]), {"otherGateways", "units", "portOwners", "problems"})
        self.assertTrue(report["probe"]["ok"])
        code, out, err = await self.cli("gateway", "probe", "--json", *self.target())
        self.assertEqual(code, 0, err)
        [probe] = json.loads(out)["targets"]
        self.assertEqual((probe["ok"], probe["protocol"]), (True, 4))
        self.assertGreaterEqual(probe["connectMs"], 0)
        self.assertIn("statusMs", probe)

    async def test_logs(self):
        """logs prints the gateway's lines; --level filters; --json prints JSON lines."""
        await self.gateway()
        code, out, err = await self.cli("logs", "--limit", "50", *self.target())
        self.assertEqual(code, 0, err)
        self.assertIn("listening on", out)
        code, out, _ = await self.cli("logs", "--json", "--level", "error", *self.target())
        self.assertEqual([json.loads(line)["level"] for line in out.splitlines()], [])
        code, out, _ = await self.cli("logs", "--json", "--channel", "gateway", *self.target())
        self.assertTrue(all(json.loads(line)["subsystem"] == "gateway" for line in out.splitlines()))

    async def test_logs_follow(self):
        """logs -f --channel follows over the WebSocket: a line logged after it started shows up; other subsystems do not."""
        await self.gateway()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        seen = []
        ended = Deferred()

        class Collect(ProcessProtocol):
            def outReceived(self, data):
                seen.append(data.decode())

            def processEnded(self, reason):
                ended.callback(None)

        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "openclaw", "logs", "-f", "--interval", "100", "--channel", "follow-test", *self.target()]
        proc = reactor.spawnProcess(Collect(), sys.executable, argv, env=env)
        self.addCleanup(lambda: ended)
        self.addCleanup(lambda: proc.signalProcess("KILL") if proc.pid else None)

        async def until(text):
            for _ in range(200):
                if text in "".join(seen):
                    return
                await deferLater(reactor, 0.05, lambda: None)
            self.fail(f"{text!r} not followed; got {''.join(seen)!r}")

        Logger(namespace="openclaw.follow-test").info("follow-marker-one")
        await until("follow-marker-one")
        Logger(namespace="openclaw.other").info("follow-marker-other")
        Logger(namespace="openclaw.follow-test").info("follow-marker-two")
        await until("follow-marker-two")
        self.assertNotIn("follow-marker-other", "".join(seen))

    async def test_devices_approve_latest(self):
        """A remote device waits for pairing; `devices approve --latest` lets it in."""
        await self.gateway()
        ws = await self.ws({"X-Forwarded-For": "198.51.100.20"})
        device = Device()
        params = connect_params(protocol=4, scopes=["operator.read"])
        params["device"] = device.block(params, ws.challenge["payload"]["nonce"], ws.challenge["payload"]["ts"], "v3", TOKEN)
        self.assertEqual((await ws.request("connect", params))["error"]["code"], "NOT_PAIRED")
        code, out, err = await self.cli("devices", "list", "--json", *self.target())
        self.assertEqual([p["deviceId"] for p in json.loads(out)["pending"]], [device.id])
        code, out, err = await self.cli("devices", "approve", "--latest", *self.target())
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["device"]["deviceId"], device.id)
        code, out, err = await self.cli("devices", "revoke", "--device", device.id, "--role", "operator", *self.target())
        self.assertEqual(code, 1)  # the device never connected, so it holds no token yet
        self.assertIn("unknown device token", err)

    def scratch_state(self, config=None, dotenv=None):
        home = Path(self.mktemp()).resolve()
        state = home / ".openclaw"
        state.mkdir(parents=True)
        if config is not None:
            (state / "openclaw.json").write_text(config)
        if dotenv is not None:
            (state / ".env").write_text(dotenv)
        return home

    async def test_config_read_as_the_gateway_reads_it(self):
        """Client commands resolve ${VAR} from ~/.openclaw/.env, as the gateway does, for the port and token."""
        await self.gateway()
        config = json.dumps({"gateway": {"mode": "local", "port": self.service.port, "auth": {"token": "${GW_SECRET}"}}})
        home = self.scratch_state(config, f"GW_SECRET={TOKEN}\n")
        for args in (["health"], ["status", "--json"], ["gateway", "call", "health"], ["nodes", "list", "--json"], ["devices", "list", "--json"], ["logs", "--limit", "1"]):
            code, out, err = await self.cli(*args, home=home)
            self.assertEqual(code, 0, f"{args}: {err}")
        # The .env alone (no config file) names port and token too.
        home = self.scratch_state(dotenv=f"OPENCLAW_GATEWAY_PORT={self.service.port}\nOPENCLAW_GATEWAY_TOKEN={TOKEN}\n")
        code, out, err = await self.cli("health", home=home)
        self.assertEqual(code, 0, err)
        self.assertIn(f"Gateway OK (ws://127.0.0.1:{self.service.port})", out)

    async def test_broken_config_is_an_error(self):
        """A config that cannot be used ends a client command with exit 78 and the reason, never a quiet fallback."""
        cases = {
            "{gateway: {port: }": "JSON5 parse error",
            '{gateway: {auth: {token: "${NOT_SET_ANYWHERE}"}}}': "environment variable NOT_SET_ANYWHERE is missing or empty",
            '{gateway: {port: "high"}}': "gateway.port: expected an integer",
        }
        for config, reason in cases.items():
            home = self.scratch_state(config)
            for args in (["health"], ["nodes", "list"], ["agent", "-m", "hi"], ["node", "run"]):
                code, out, err = await self.cli(*args, home=home)
                self.assertEqual(code, 78, f"{args} {config}: {err}")
                self.assertIn(f"Invalid config at {home / '.openclaw' / 'openclaw.json'}", err)
                self.assertIn(reason, err)
                self.assertNotIn("Traceback", err)

    async def test_url_needs_no_config(self):
        """With --url (and its own credentials) the local config is not consulted, broken or not."""
        await self.gateway()
        home = self.scratch_state("{gateway: {port: }")
        code, out, err = await self.cli("health", *self.target(), home=home)
        self.assertEqual(code, 0, err)
