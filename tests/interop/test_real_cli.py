"""
The real upstream CLI (Node, from the npm registry) against our gateway on
loopback: protocol v3 (2026.1.30) and v4 (2026.9.6).

The CLI is installed by ../shared/tools/install-openclaw-cli.sh (cached in
~/.cache/openclaw-cli). Where it cannot be installed (no npm, registry
unreachable) the suite is skipped with the reason, never silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from tests.helpers import REPO
from tests.wsclient import TOKEN, GatewayMixin

INSTALLER = Path(os.environ.get("OPENCLAW_SHARED_DIR") or REPO.parent / "shared") / "tools" / "install-openclaw-cli.sh"
VERSIONS = {"v3": "2026.1.30", "v4": "2026.9.6"}
_installed: dict[str, str | Exception] = {}


def install(version: str) -> str:
    """Path of the CLI wrapper, or SkipTest saying why there is none."""
    if version not in _installed:
        try:
            if not INSTALLER.exists():
                raise SkipTest(f"interop skipped: installer not found at {INSTALLER}")
            if shutil.which("npm") is None:
                raise SkipTest("interop skipped: npm is not installed")
            result = subprocess.run(["bash", str(INSTALLER), version], capture_output=True, text=True, timeout=1200)
            if result.returncode != 0:
                raise SkipTest(f"interop skipped: could not install openclaw@{version}: {result.stderr.strip()[-400:]}")
            _installed[version] = result.stdout.strip().splitlines()[-1]
        except SkipTest as e:
            print(f"\n*** {e}")  # visible in the trial output, not only in the skip count
            _installed[version] = e
        except subprocess.TimeoutExpired:
            _installed[version] = SkipTest(f"interop skipped: installing openclaw@{version} timed out")
    found = _installed[version]
    if isinstance(found, Exception):
        raise found
    return found


def cli_env(state: Path, **extra: str) -> dict[str, str]:
    """A scratch client environment: its own state dir, our token, no colours."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(state), "OPENCLAW_STATE_DIR": str(state), "OPENCLAW_GATEWAY_TOKEN": TOKEN, "NO_COLOR": "1", **extra}


class RealCLIMixin(GatewayMixin):
    version: str
    timeout = 300

    async def run_cli(self, *args: str, as_json: bool = True) -> tuple[int, str, str]:
        cli = install(self.version)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        env = cli_env(state)  # 2026.1.30 ignores --token with --url: the env token counts
        url = f"ws://127.0.0.1:{self.service.port}"
        out, err, code = await getProcessOutputAndValue(cli, [*args, "--url", url, "--token", TOKEN, *(["--json"] if as_json else [])], env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def check_json(self, *args: str):
        code, out, err = await self.run_cli(*args)
        self.assertEqual(code, 0, f"{args}: exit {code}\n{err[-2000:]}")
        return json.loads(out)

    async def test_gateway_call_health(self):
        """`gateway call health` exits 0 with the health snapshot."""
        await self.gateway()
        self.assertTrue((await self.check_json("gateway", "call", "health"))["ok"])

    async def test_gateway_call_status(self):
        """`gateway call status` exits 0 with a status object."""
        await self.gateway()
        self.assertIn("runtimeVersion", await self.check_json("gateway", "call", "status"))

    async def test_gateway_call_presence(self):
        """`gateway call system-presence` exits 0 with a list that holds the gateway itself."""
        await self.gateway()
        presence = await self.check_json("gateway", "call", "system-presence")
        self.assertIn("self", [e.get("reason") for e in presence])

    async def test_gateway_call_config_get(self):
        """`gateway call config.get` exits 0 with a hash-bearing snapshot."""
        await self.gateway()
        self.assertIn("hash", await self.check_json("gateway", "call", "config.get"))

    async def test_devices_list(self):
        """`devices list` exits 0 with pending and paired lists."""
        await self.gateway()
        listing = await self.check_json("devices", "list")
        self.assertEqual(set(listing) >= {"pending", "paired"}, True, listing)

    async def test_logs(self):
        """`logs` exits 0 and prints JSON lines."""
        await self.gateway()
        code, out, err = await self.run_cli("logs", "--limit", "5")
        self.assertEqual(code, 0, err[-2000:])
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.assertTrue(lines)
        messages = [entry.get("message", "") for entry in lines if entry.get("type") == "log"]
        self.assertTrue(any(m.startswith("listening on ws://") for m in messages), messages)

    async def test_bad_token(self):
        """A wrong token makes the CLI exit non-zero."""
        await self.gateway()
        cli = install(self.version)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        env = cli_env(state, OPENCLAW_GATEWAY_TOKEN="wrong-token")
        url = f"ws://127.0.0.1:{self.service.port}"
        _, _, code = await getProcessOutputAndValue(cli, ["gateway", "call", "health", "--url", url, "--token", "wrong-token", "--json"], env=env, reactor=reactor)
        self.assertNotEqual(code, 0)


    async def test_agent(self):
        """`openclaw agent --message` gets the reply through the two-phase `agent` method."""
        from tests.fakes import openai_text, start_fake
        from tests.test_agent import model_config

        fake, url = await start_fake(self)
        fake.replies.append(openai_text("Hello from the fake model"))
        await self.gateway(**model_config(url))
        cli = install(self.version)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        # 2026.1.30 reads the port, 2026.9.6 the URL
        env = cli_env(state, OPENCLAW_GATEWAY_URL=f"ws://127.0.0.1:{self.service.port}", OPENCLAW_GATEWAY_PORT=str(self.service.port))
        out, err, code = await getProcessOutputAndValue(cli, ["agent", "--agent", "main", "--message", "hi", "--json", "--timeout", "60"], env=env, reactor=reactor)
        self.assertEqual(code, 0, f"{out.decode()[-1500:]}\n{err.decode()[-1500:]}")
        self.assertIn("Hello from the fake model", out.decode())


    def client_env(self, remote_config: bool = False, **extra: str) -> dict[str, str]:
        """
        A scratch client for commands without --url: 2026.1.30 reads the port,
        2026.9.6 the URL; `status` reads the gateway from its config file.
        """
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        url = f"ws://127.0.0.1:{self.service.port}"
        if remote_config:
            config = {"gateway": {"mode": "remote", "remote": {"url": url, "token": TOKEN}}}
            (state / "openclaw.json").write_text(json.dumps(config))
        return cli_env(state, OPENCLAW_GATEWAY_URL=url, OPENCLAW_GATEWAY_PORT=str(self.service.port), **extra)

    async def run_plain(self, env: dict[str, str], *args: str) -> tuple[int, str, str]:
        out, err, code = await getProcessOutputAndValue(install(self.version), list(args), env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def test_agent_failure_exits_nonzero(self):
        """A run that fails (the provider refuses) makes `openclaw agent` exit non-zero with the reason."""
        from tests.fakes import Reply, start_fake
        from tests.test_agent import model_config

        fake, url = await start_fake(self)
        fake.replies.append(Reply([b'{"error":{"message":"model exploded"}}'], status=400))
        await self.gateway(**model_config(url))
        cli = install(self.version)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        env = cli_env(state, OPENCLAW_GATEWAY_URL=f"ws://127.0.0.1:{self.service.port}", OPENCLAW_GATEWAY_PORT=str(self.service.port))
        out, err, code = await getProcessOutputAndValue(cli, ["agent", "--agent", "main", "--message", "hi", "--json", "--timeout", "60"], env=env, reactor=reactor)
        self.assertNotEqual(code, 0, out.decode()[-1500:])
        self.assertIn("model exploded", out.decode() + err.decode())

    async def cli_json(self, *args: str, as_json: bool = True):
        """Run a command; its JSON output (the CLI may print warnings before it)."""
        code, out, err = await self.run_cli(*args, as_json=as_json)
        self.assertEqual(code, 0, f"{args}: exit {code}\n{out[-1000:]}\n{err[-2000:]}")
        return json.loads(out[out.index("{") :] if "{" in out else out)

    async def test_cron(self):
        """`cron status|add|list|get|runs|rm` work against this gateway: jobs added by the CLI are listed, run history read, removal."""
        await self.gateway()
        status = await self.cli_json("cron", "status")
        self.assertEqual((status["enabled"], status["jobs"]), (True, 0))
        every = await self.cli_json("cron", "add", "--name", "hourly ping", "--every", "1h", "--system-event", "ping")
        once = await self.cli_json("cron", "add", "--name", "in a while", "--at", "20m", "--session", "isolated", "--message", "hello")
        self.assertEqual(every["schedule"], {"kind": "every", "everyMs": 3_600_000})
        self.assertEqual(once["schedule"]["kind"], "at")
        listing = await self.cli_json("cron", "list")
        self.assertEqual(sorted(j["name"] for j in listing["jobs"]), ["hourly ping", "in a while"])
        code, out, err = await self.run_cli("cron", "list", as_json=False)  # the human table
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn("hourly ping", out)
        runs = await self.cli_json("cron", "runs", "--id", every["id"], as_json=self.version != VERSIONS["v3"])  # v3's prints JSON without the flag
        self.assertEqual(runs["entries"], [])
        status = await self.cli_json("cron", "status")
        self.assertEqual((status["jobs"], status["nextWakeAtMs"]), (2, once["state"]["nextRunAtMs"]))
        self.assertEqual(await self.cli_json("cron", "rm", once["id"]), {"ok": True, "removed": True})
        self.assertEqual([j["id"] for j in (await self.cli_json("cron", "list"))["jobs"]], [every["id"]])
        self.assertIsNone(json.loads((await self.run_cli("system", "heartbeat", "last", as_json=False))[1]))


    async def test_approvals_get_gateway(self):
        """`approvals get --gateway --json` exits 0 with the gateway's file, allowlist included, and the effective policy."""
        await self.gateway(tools={"exec": {"host": "gateway", "security": "allowlist", "ask": "always"}})
        from openclaw.store import write_json

        write_json(self.service.settings.state_dir / "exec-approvals.json", {"version": 1, "defaults": {"askFallback": "deny"}, "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/uptime"}]}}})
        snapshot = await self.check_json("approvals", "get", "--gateway")
        self.assertTrue(snapshot["exists"])
        self.assertEqual(snapshot["path"], str(self.service.settings.state_dir / "exec-approvals.json"))
        self.assertEqual(snapshot["file"]["agents"]["main"]["allowlist"][0]["pattern"], "/usr/bin/uptime")
        if self.version == VERSIONS["v4"]:
            self.assertEqual(snapshot["resolvedDefaults"]["askFallback"], "deny")
            self.assertIn("effectivePolicy", snapshot)
        await self.check_json("approvals", "allowlist", "add", "/opt/tools/*", "--gateway", "--agent", "main")
        stored = json.loads((self.service.settings.state_dir / "exec-approvals.json").read_text())
        self.assertEqual([e["pattern"] for e in stored["agents"]["main"]["allowlist"]], ["/usr/bin/uptime", "/opt/tools/*"])

    async def test_gateway_usage_cost(self):
        """`gateway usage-cost` exits 0 with the day's tokens and cost from a priced run (JSON and text)."""
        from tests.fakes import openai_text, start_fake
        from tests.test_usage import priced, usd

        fake, url = await start_fake(self)
        fake.replies.append(openai_text("priced reply"))
        await self.gateway(**priced(url))
        ws, _ = await self.connect()
        await ws.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "u1"})
        await self.service.core.agent.lookup("u1").finished()
        summary = await self.check_json("gateway", "usage-cost", "--days", "7")
        self.assertEqual((summary["days"], summary["totals"]["totalTokens"]), (7, 18))
        self.assertAlmostEqual(summary["totals"]["totalCost"], usd({"input": 11, "output": 7}))
        self.assertEqual(len(summary["daily"]), 1)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        url = f"ws://127.0.0.1:{self.service.port}"
        out, err, code = await getProcessOutputAndValue(install(self.version), ["gateway", "usage-cost", "--url", url, "--token", TOKEN], env=cli_env(state), reactor=reactor)
        self.assertEqual(code, 0, err.decode()[-1500:])
        self.assertIn("Usage cost (30 days)", out.decode())
        self.assertIn("18 tokens", out.decode())


class V3CLITests(RealCLIMixin, TestCase):
    version = VERSIONS["v3"]

    async def test_nodes_list_counts_paired_node(self):
        """`nodes list` (node.pair.list) counts a paired, connected WebSocket node, as node.list does."""
        from tests.test_nodes import node_params
        from tests.wsclient import Device

        await self.gateway()
        install(self.version)
        ws = await self.ws()
        device = Device()
        params = node_params()
        params["device"] = device.block(params, ws.challenge["payload"]["nonce"], ws.challenge["payload"]["ts"], "v3", params["auth"]["token"])
        self.assertTrue((await ws.request("connect", params))["ok"])
        code, out, err = await self.run_cli("nodes", "list")
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn("Paired: 1", out)
        listing = json.loads(out[out.index("{") :])
        self.assertEqual([p["nodeId"] for p in listing["paired"]], [device.id])


class V4CLITests(RealCLIMixin, TestCase):
    version = VERSIONS["v4"]

    async def test_models_list(self):
        """`models list` (needs capability published-model-catalog) exits 0 and lists the configured models."""
        from tests.test_agent import model_config

        await self.gateway(**model_config("http://127.0.0.1:9/v1"))
        install(self.version)
        code, out, err = await self.run_plain(self.client_env(), "models", "list", "--json")
        self.assertEqual(code, 0, f"{out[-1500:]}\n{err[-1500:]}")
        listing = json.loads(out)
        self.assertEqual(listing["count"], len(listing["models"]))
        self.assertGreaterEqual(listing["count"], 1)
        self.assertTrue(all(row["available"] for row in listing["models"]))

    async def test_gateway_stability(self):
        """`gateway stability` (diagnostics.stability) exits 0 with the record and live figures."""
        await self.gateway()
        snapshot = await self.check_json("gateway", "stability")
        self.assertGreaterEqual(snapshot["count"], 1)
        self.assertGreater(snapshot["live"]["memory"]["rssBytes"], 0)
        code, out, err = await self.run_plain(self.client_env(), "gateway", "stability", "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN)
        self.assertEqual(code, 0, err[-1500:])
        self.assertIn("Gateway Stability", out)

    async def test_status_shows_gateway(self):
        """`status --json` gets the gateway's status (its runtime version, session count), not "unexpected property"."""
        from openclaw import __version__

        await self.gateway()
        store = self.service.core.agent.store("main")
        for key in ("one", "two"):
            store.resolve(f"agent:main:{key}")
        install(self.version)
        code, out, err = await self.run_plain(self.client_env(remote_config=True), "status", "--json")
        self.assertEqual(code, 0, err[-1500:])
        status = json.loads(out)
        self.assertEqual((status["runtimeVersion"], status["sessions"]["count"]), (__version__, 2))
        self.assertTrue(status["gateway"]["reachable"])
        heartbeat = status["heartbeat"]["agents"][0]
        self.assertEqual((heartbeat["enabled"], heartbeat["every"], heartbeat["everyMs"]), (True, "30m", 1_800_000))  # the default schedule, running

    async def test_status_all_logs_no_error(self):
        """`status --all` opens and closes several connections together: no "Unhandled Error" (presence broadcast) is logged."""
        from tests.helpers import capture_log

        log = capture_log(self)
        await self.gateway()
        cli = install(self.version)
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        env = cli_env(state, OPENCLAW_GATEWAY_URL=f"ws://127.0.0.1:{self.service.port}", OPENCLAW_GATEWAY_PORT=str(self.service.port))
        for _ in range(3):
            out, err, code = await getProcessOutputAndValue(cli, ["status", "--all"], env=env, reactor=reactor)
            self.assertEqual(code, 0, err.decode()[-2000:])
        for _ in range(100):
            if not self.service.core.connections.open_sockets():
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(log.failures(), [])

