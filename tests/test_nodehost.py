"""The node host: commands, approval policy, backoff, and both transports end to end."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from openclaw.backoff import Backoff
from openclaw.nodehost.commands import OUTPUT_CAP, ApprovalPolicy, CommandError, NodeCommands
from openclaw.nodehost.runner import NodeHost
from openclaw.store import write_json
from tests.helpers import REPO
from tests.wsclient import TOKEN, GatewayMixin


class BackoffTests(SynchronousTestCase):
    def test_grows_bounded_with_jitter(self):
        """Delays double from 1 s up to 30 s, each within ±20 %; reset starts over."""
        backoff = Backoff(rng=random.Random(7))
        delays = [backoff.next() for _ in range(8)]
        for delay, base in zip(delays, [1, 2, 4, 8, 16, 30, 30, 30]):
            self.assertTrue(base * 0.8 <= delay <= base * 1.2, (delay, base))
        backoff.reset()
        self.assertLessEqual(backoff.next(), 1.2)


def paths(*names):
    """Allowlist entries for programs on this machine (patterns match resolved paths)."""
    return [{"pattern": shutil.which(n)} for n in names]


def approvals(security="allowlist", ask="on-miss", allow=()):
    return {"version": 1, "defaults": {"security": security, "ask": ask}, "agents": {"*": {"allowlist": paths(*allow)}} if allow else {}}


class PolicyTests(SynchronousTestCase):
    def setUp(self):
        self.path = Path(self.mktemp())
        self.policy = ApprovalPolicy(self.path)
        self.echo = shutil.which("echo")
        self.path_env = os.environ["PATH"]

    def decide(self, argv, decision=None, raw=None, agent=None):
        return self.policy.decide(argv, raw, None, self.path_env, agent, decision)

    def test_default_is_ask(self):
        """No file: allowlist + on-miss; allow-once runs once; allow-always stores the resolved path."""
        self.assertEqual(self.decide(["echo"])[0], "SYSTEM_RUN_DENIED")
        self.assertIn("approval required", self.decide(["echo"])[1])
        self.assertEqual(self.decide(["echo"], "allow-once"), ("allow", ""))
        self.assertEqual(self.decide(["echo"])[0], "SYSTEM_RUN_DENIED")
        self.assertEqual(self.decide(["echo"], "allow-always"), ("allow", ""))
        self.assertEqual(self.decide(["echo"]), ("allow", ""))
        stored = json.loads(self.path.read_text())
        self.assertEqual([e["pattern"] for e in stored["agents"]["main"]["allowlist"]], [self.echo])
        self.assertEqual(stored["agents"]["main"]["allowlist"][0]["lastUsedCommand"], "echo")
        self.assertEqual(self.path.stat().st_mode & 0o777, 0o600)

    def test_patterns(self):
        """Resolved paths and globs match; a bare name matches nothing; security deny and ask off refuse."""
        folder = os.path.dirname(self.echo)
        write_json(self.path, {"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {"*": {"allowlist": [{"pattern": "git"}, {"pattern": folder + "/*"}]}}})
        self.assertEqual(self.decide(["echo", "x"]), ("allow", ""))
        self.assertEqual(self.decide(["sh"], raw="echo a | echo b"), ("allow", ""))
        self.assertEqual(self.decide(["sh"], raw="echo a > /tmp/x")[0], "SYSTEM_RUN_DENIED")  # redirections are never allowlisted
        write_json(self.path, {"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {"*": {"allowlist": [{"pattern": "echo"}]}}})
        self.assertEqual(self.decide(["echo"], "allow-once")[0], "allow")  # an operator's approval still counts
        self.assertIn("allowlist miss", self.decide(["echo"])[1])
        write_json(self.path, {"version": 1, "defaults": {"security": "deny"}})
        self.assertEqual(self.decide(["echo"], "allow-once"), ("SYSTEM_RUN_DISABLED", "security=deny"))

    def test_legacy_file(self):
        """An earlier node host's {default, allow} file is read as defaults and a "*" allowlist."""
        write_json(self.path, {"version": 1, "default": "deny", "allow": [self.echo, "ls"]})
        self.assertEqual(self.decide(["echo"]), ("allow", ""))
        self.assertIn("allowlist miss", self.decide(["ls"])[1])  # basename entries match nothing
        write_json(self.path, {"version": 1, "default": "allow"})
        self.assertEqual(self.decide(["ls"]), ("allow", ""))


class CommandTests(TestCase):
    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.state.mkdir()
        write_json(self.state / "exec-approvals.json", approvals(allow=("echo", "sleep", "sh", "head")))
        self.events = []
        self.commands = NodeCommands(reactor, self.state, {"location": {"lat": 52.5, "lon": 13.4}}, lambda e, p: self.events.append((e, p)))

    async def test_run_echo(self):
        """system.run runs argv without a shell and reports output and exit code."""
        result = await self.commands.handle("system.run", {"command": ["echo", "a b", "$HOME"]})
        self.assertEqual((result["stdout"], result["exitCode"], result["success"], result["timedOut"]), ("a b $HOME\n", 0, True, False))
        self.assertEqual([e for e, _ in self.events], ["exec.started", "exec.finished"])

    async def test_run_env_cwd_exit_code(self):
        """env and cwd apply; a failing command reports its exit code."""
        result = await self.commands.handle("system.run", {"command": ["sh", "-c", "echo $X; pwd; exit 3"], "env": {"X": "42"}, "cwd": "/"})
        self.assertEqual((result["stdout"], result["exitCode"], result["success"]), ("42\n/\n", 3, False))

    async def test_timeout(self):
        """A command past timeoutMs is stopped and reported timedOut."""
        result = await self.commands.handle("system.run", {"command": ["sleep", "10"], "timeoutMs": 200})
        self.assertTrue(result["timedOut"])
        self.assertFalse(result["success"])

    async def test_output_truncated(self):
        """Output beyond the cap is cut and flagged."""
        result = await self.commands.handle("system.run", {"command": ["head", "-c", str(OUTPUT_CAP + 5000), "/dev/zero"]})
        self.assertEqual((len(result["stdout"]), result["truncated"]), (OUTPUT_CAP, True))

    async def test_denied_and_bad_params(self):
        """Policy refusals and malformed params are errors, with exec.denied emitted."""
        with self.assertRaises(CommandError) as cm:
            await self.commands.handle("system.run", {"command": ["ls"]})
        self.assertEqual(cm.exception.code, "SYSTEM_RUN_DENIED")
        self.assertEqual(self.events[-1][0], "exec.denied")
        for params in ({}, {"command": "echo hi"}, {"command": []}, {"command": ["echo"], "timeoutMs": -1}, {"command": ["echo"], "cwd": "/nope"}):
            with self.assertRaises(CommandError) as cm:
                await self.commands.handle("system.run", params)
            self.assertEqual(cm.exception.code, "INVALID_REQUEST", params)

    async def test_which_notify_location_unsupported(self):
        """system.which finds binaries; notify needs notify-send; location uses the configured fix."""
        self.assertEqual(set((await self.commands.handle("system.which", {"bins": ["sh", "no-such-bin"]}))["bins"]), {"sh"})
        self.commands.path_env = str(self.state)  # no notify-send here
        with self.assertRaises(CommandError) as cm:
            await self.commands.handle("system.notify", {"body": "hi"})
        self.assertEqual(cm.exception.code, "UNAVAILABLE")
        location = await self.commands.handle("location.get", {})
        self.assertEqual((location["lat"], location["lon"]), (52.5, 13.4))
        for command in ("camera.snap", "screen.record", "canvas.navigate"):
            with self.assertRaises(CommandError) as cm:
                await self.commands.handle(command, {})
            self.assertEqual((cm.exception.code, cm.exception.message), ("UNAVAILABLE", "command not supported"))
        with self.assertRaises(CommandError) as cm:
            await NodeCommands(reactor, self.state, {}).handle("location.get", {})
        self.assertEqual(cm.exception.code, "LOCATION_DISABLED")


class EndToEndTests(GatewayMixin, TestCase):
    timeout = 60

    def node_state(self, name, policy):
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        write_json(state / "exec-approvals.json", approvals(allow=("echo",)))
        return state

    async def start_node(self, bridge):
        port = self.service.bridge[0].port if bridge else self.service.port
        statuses = []
        host = NodeHost(reactor, self.node_state("n", "ask"), "127.0.0.1", port, bridge=bridge, display_name="bridge-node" if bridge else "ws-node", token=TOKEN, on_status=statuses.append)
        done = Deferred.fromCoroutine(host.run())
        self.addCleanup(lambda: (host.stop(), done)[1])
        return host, statuses

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def test_ws_node_system_run(self):
        """Our CLI runs `echo` on a node host connected over the WebSocket and prints its output."""
        await self.gateway()
        host, statuses = await self.start_node(bridge=False)
        await host.connected
        code, out, err = await self.cli("nodes", "invoke", "--node", "ws-node", "--command", "system.run", "--params", '{"command": ["echo", "over ws"]}')
        self.assertEqual((code, out), (0, "over ws\n"), err)
        code, out, err = await self.cli("nodes", "invoke", "--node", "ws-node", "--command", "system.run", "--params", '{"command": ["id"]}')
        self.assertEqual(code, 1)
        self.assertIn("SYSTEM_RUN_DENIED", err)

    async def test_bridge_node_pairs_then_runs(self):
        """A bridge node asks to pair; `nodes approve` lets it in; `nodes invoke` runs echo on it."""
        await self.gateway()
        op, _ = await self.connect()
        host, statuses = await self.start_node(bridge=True)
        request = await op.event("node.pair.requested")
        code, out, err = await self.cli("nodes", "approve", request["payload"]["requestId"])
        self.assertEqual(code, 0, err)
        await host.connected
        code, out, err = await self.cli("nodes", "invoke", "--node", "bridge-node", "--command", "system.run", "--params", '{"command": ["echo", "over the bridge"]}')
        self.assertEqual((code, out), (0, "over the bridge\n"), err)
        code, out, err = await self.cli("nodes", "list", "--json")
        self.assertEqual([n.get("transport") for n in json.loads(out)["nodes"]], ["bridge"])

    async def test_reconnects(self):
        """When the gateway drops the node, the host reconnects (backoff) and is usable again."""
        await self.gateway()
        host, statuses = await self.start_node(bridge=False)
        host.backoff = Backoff(initial=0.05, maximum=0.1)
        await host.connected
        for conn in list(self.service.core.connections):
            conn.close(1012, "service restart")
        from twisted.internet.task import deferLater

        for _ in range(100):
            await deferLater(reactor, 0.05, lambda: None)
            if any(s.startswith("connected") for s in statuses[1:]) and self.service.core.nodes.links:
                break
        self.assertTrue(any("reconnecting" in s for s in statuses), statuses)
        self.assertEqual(len(self.service.core.nodes.links), 1)


class MediaTests(TestCase):
    timeout = 60

    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.state.mkdir()

    def test_offered_only_with_backend(self):
        """Capture commands are declared only where ffmpeg and the device exist."""
        from openclaw.nodehost.media import FfmpegMedia

        none = FfmpegMedia(None, "/nonexistent", env={"DISPLAY": ":0"})
        self.assertEqual(none.commands(), [])
        commands = NodeCommands(reactor, self.state, {})
        commands.media = none
        self.assertNotIn("screen.record", commands.declared())

    async def test_jpeg_size(self):
        """The JPEG header parser reads width and height (checked on an ffmpeg test image)."""
        from openclaw.nodehost.media import _jpeg_size

        commands = NodeCommands(reactor, self.state, {})
        if commands.media.ffmpeg is None:
            raise SkipTest("ffmpeg is not installed here: the capture backend is untested on this machine")
        out = self.state / "t.jpg"
        ran = await commands.run_process([commands.media.ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1", str(out)], 20)
        self.assertEqual(ran.code, 0, ran.stderr)
        self.assertEqual(_jpeg_size(out.read_bytes()), {"width": 64, "height": 48})

    async def test_screen_record_on_xvfb(self):
        """screen.record captures an mp4 from an X display (a private Xvfb)."""
        import base64
        import shutil
        import subprocess

        commands = NodeCommands(reactor, self.state, {})
        xvfb = shutil.which("Xvfb")
        if commands.media.ffmpeg is None or xvfb is None:
            raise SkipTest("ffmpeg and Xvfb are needed for screen.record (not installed here)")
        display = ":%d" % (90 + os.getpid() % 100)
        server = subprocess.Popen([xvfb, display, "-screen", "0", "320x240x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0.5, lambda: None)
        commands.media.env = {"DISPLAY": display}
        self.assertIn("screen.record", commands.declared())
        result = await commands.handle("screen.record", {"durationMs": 500, "fps": 5})
        data = base64.b64decode(result["base64"])
        self.assertEqual((result["format"], data[4:8]), ("mp4", b"ftyp"))

    async def test_camera_snap(self):
        """camera.snap grabs a JPEG from the first /dev/video* camera."""
        commands = NodeCommands(reactor, self.state, {})
        if "camera.snap" not in commands.declared():
            raise SkipTest("no camera (/dev/video*) or no ffmpeg on this machine: camera.snap is untested here")
        result = await commands.handle("camera.snap", {"maxWidth": 320})
        self.assertEqual(result["format"], "jpg")
