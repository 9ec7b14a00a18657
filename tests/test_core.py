# -*- test-case-name: tests.test_core -*-
"""
The collaborators on their own: the agent runner seam, presence, the config
watcher and the secrets it rotates, and cheap constructors (no file IO
before start).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.tools import TOOLS, Tool, tools_for
from openclaw.config.settings import ToolPolicy
from openclaw.gateway.boot import Boot
from openclaw.gateway.core import GatewayCore
from openclaw.gateway.events import StateVersion
from openclaw.gateway.presence import Presence
from openclaw.interfaces import AgentRunner, RunResult
from openclaw.protocol import frames
from openclaw.service import GatewayService
from tests.fakes import openai_text, start_fake
from tests.test_agent import model_config
from tests.wsclient import TOKEN, gateway_settings


class Recorder:
    """L{openclaw.interfaces.EventSink} and L{SessionEvents}, remembering what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def broadcast(self, name: str, payload: Any, drop_if_slow: bool = False) -> None:
        self.sent.append((name, payload))

    def to_session(self, name: str, payload: Any, session_key: str, drop_if_slow: bool = False) -> None:
        self.sent.append((name, payload))

    def tool_event(self, payload: Any, session_key: str, verbose: bool) -> None:
        self.sent.append(("agent", payload))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


def home_of(testcase: SynchronousTestCase) -> Path:
    home = Path(testcase.mktemp()).resolve()
    home.mkdir()
    return home


class RunnerTests(TestCase):
    """L{AgentRuntime} as an L{AgentRunner}: what node events, the HTTP API, schedules and channels use."""

    async def setUp(self):
        self.fake, url = await start_fake(self)
        self.events = Recorder()
        self.runtime = AgentRuntime(gateway_settings(home_of(self), **model_config(url)), reactor, self.events)
        self.addCleanup(self.runtime.stop)
        self.runner: AgentRunner = self.runtime  # the seam is satisfied structurally

    async def test_start_observe_finish(self):
        """start → busy, deltas observed, chat events sent; finished() gives the RunResult; then idle."""
        self.fake.replies.append(openai_text("Hello ", "there"))
        run = self.runner.start("main", "hi", "r-1")
        seen: list[tuple[str, Any]] = []
        run.observe(lambda stream, data: seen.append((stream, dict(data))))
        self.assertTrue(self.runner.busy("agent:main:main"))
        result = await run.finished()
        self.assertEqual(result, RunResult("r-1", "agent:main:main", "ok", "Hello there", None, result.model, result.usage))
        self.assertIn(("assistant", {"text": "Hello there", "delta": "there"}), seen)
        self.assertIn("chat", self.events.names())
        self.assertFalse(self.runner.busy("agent:main:main"))
        self.assertIsNone(await self.runner.idle("agent:main:main"))

    async def test_quiet_and_idle_after_queue(self):
        """A quiet run sends agent events but no chat events; idle() waits for the queued run too."""
        self.fake.replies.extend([openai_text("one"), openai_text("two")])
        first = self.runner.start("main", "a", "q-1", quiet=True)
        second = self.runner.start("main", "b", "q-2", quiet=True)
        await self.runner.idle("agent:main:main")
        self.assertEqual([(await first.finished()).text, (await second.finished()).text], ["one", "two"])
        self.assertIn("agent", self.events.names())
        self.assertNotIn("chat", self.events.names())

    async def test_refused_run_is_an_error_result(self):
        """run() never fails: an unknown agent is an error result naming it."""
        result = await self.runner.run("main", "hi", "r-2", agent_id="nobody")
        self.assertEqual((result.status, result.run_id), ("error", "r-2"))
        self.assertIn("unknown agent: nobody", result.error or "")

    async def test_fresh_starts_a_new_session(self):
        """fresh=True gives the session a new id before the run."""
        self.fake.replies.extend([openai_text("one"), openai_text("two")])
        await self.runner.start("main", "a", "f-1").finished()
        before = self.runtime.store().get("agent:main:main")["sessionId"]
        await self.runner.start("main", "b", "f-2", fresh=True).finished()
        self.assertNotEqual(self.runtime.store().get("agent:main:main")["sessionId"], before)

    def test_added_tools_follow_the_policy(self):
        """add_tool offers a tool to runs; tools.deny still removes it."""
        tool = Tool(TOOLS["sessions_list"].spec.__class__("extra", "An extra tool.", {"type": "object"}), TOOLS["sessions_list"].run)
        self.runtime.add_tool(tool)
        self.assertIn("extra", [t.spec.name for t in tools_for(ToolPolicy(), None, self.runtime.extra_tools)])
        self.assertNotIn("extra", [t.spec.name for t in tools_for(ToolPolicy(deny=frozenset({"extra"})), None, self.runtime.extra_tools)])


class PresenceTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = Recorder()
        self.versions = StateVersion()
        self.presence = Presence(Boot(self.clock, "gw"), self.events, self.versions)

    def test_entry_lasts_while_a_connection_holds_it(self):
        """Two connections under one key: the entry goes with the second to leave; each change is broadcast and versioned."""
        self.presence.join("dev", {"host": "a", "ts": 1})
        self.presence.join("dev", {"host": "a", "ts": 2})
        self.presence.leave("dev")
        self.assertIn("dev", self.presence.entries)
        self.presence.leave("dev")
        self.assertNotIn("dev", self.presence.entries)
        self.assertEqual(self.events.names(), ["presence"] * 3)
        self.assertEqual(self.versions.presence, 4)
        self.assertEqual(self.presence.list()[0]["host"], "gw")

    def test_update_merges(self):
        """update() merges into the entry and stamps it with the clock."""
        self.clock.advance(5)
        self.presence.update("n1", {"host": "node"})
        self.presence.update("n1", {"mode": "node"})
        self.assertEqual(self.presence.entries["n1"], {"host": "node", "mode": "node", "ts": 5000})


class FakeMember:
    def __init__(self, auth_method: str) -> None:
        self.conn_id, self.role, self.scopes, self.caps, self.subscriptions, self.device_id = "c", "operator", [], set(), set(), None
        self.auth_method = auth_method
        self.closes: list[tuple[int, str]] = []

    def send_frame(self, frame: Any, drop_if_slow: bool = False) -> None:
        pass

    def close(self, code: int, reason: str = "") -> None:
        self.closes.append((code, reason))


class SecretsTests(SynchronousTestCase):
    def test_config_watch_rotates_the_token(self):
        """A new token in the file: in force within one poll, known to the redactor, token sessions closed 4001, device ones kept."""
        home = home_of(self)
        settings = gateway_settings(home)
        path = settings.layout.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"gateway": {"mode": "local", "auth": {"token": TOKEN}}}))
        clock = Clock()
        core = GatewayCore(settings, clock)
        core.load()
        core.start()
        self.addCleanup(core.stop)
        token, device = FakeMember("token"), FakeMember("device-token")
        core.connections.add(token)
        core.connections.add(device)
        path.write_text(json.dumps({"gateway": {"mode": "local", "auth": {"token": "a-new-token-value-42"}}}))
        self.assertEqual(core.auth.current.token, TOKEN)
        clock.advance(2)
        self.assertEqual(core.auth.current.token, "a-new-token-value-42")
        self.assertNotIn("a-new-token-value-42", core.redactor.scrub("x a-new-token-value-42 y"))
        self.assertEqual((token.closes, device.closes), ([(4001, "gateway auth changed")], []))

    def test_broken_file_keeps_the_last_good_config(self):
        """A file that does not parse is skipped; the secrets in force stay."""
        home = home_of(self)
        settings = gateway_settings(home)
        settings.layout.config_path.parent.mkdir(parents=True, exist_ok=True)
        clock = Clock()
        core = GatewayCore(settings, clock)
        core.start()
        self.addCleanup(core.stop)
        settings.layout.config_path.write_text("{ not json")
        clock.advance(2)
        self.assertEqual(core.auth.current.token, TOKEN)


def files_under(root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


class CheapConstructorTests(SynchronousTestCase):
    def test_no_file_io_before_start(self):
        """Building the service writes nothing and reads no store: what is on disk at start is what counts."""
        home = home_of(self)
        settings = gateway_settings(home, canvasHost={"enabled": True})
        state = settings.state_dir
        before = files_under(home)
        service = GatewayService(settings, Clock())
        self.assertIsNotNone(service.canvas)
        self.assertEqual(files_under(home), before)  # no scaffold, no lock, no stores
        devices = state / "devices"
        devices.mkdir(parents=True)
        (devices / "paired.json").write_text(json.dumps({"d1": {"deviceId": "d1", "publicKey": "k", "roles": ["operator"], "scopes": []}}))
        service.core.load()
        self.assertEqual(service.core.pairing.paired("d1")["deviceId"], "d1")


class SeamTests(SynchronousTestCase):
    def test_emit_is_a_droppable_broadcast(self):
        """Broadcaster.emit (what schedules and channels call) is broadcast(..., drop_if_slow=True), gated like any event."""
        core = GatewayCore(gateway_settings(home_of(self)), Clock())
        sent: list[tuple[str, Any, bool]] = []

        class Reader(FakeMember):
            def send_frame(self, frame: Any, drop_if_slow: bool = False) -> None:
                sent.append((frame.name, frame.payload, drop_if_slow))

        reader = Reader("token")
        reader.scopes = ["operator.pairing"]
        core.connections.add(reader)
        core.events.emit("pairing", {"channel": "x"})
        core.events.emit("chat", {"hidden": True})  # needs operator.read
        self.assertEqual(sent, [("pairing", {"channel": "x"}, True)])

    def test_broadcast_encodes_once(self):
        """One broadcast to many connections encodes the payload once; each frame still carries that connection's own seq."""
        core = GatewayCore(gateway_settings(home_of(self)), Clock())
        encoded: list[Any] = []
        real = frames.dumps
        self.patch(frames, "dumps", lambda value: (encoded.append(value), real(value))[1])

        class Numbered(FakeMember):
            def __init__(self, seq: int) -> None:
                super().__init__("token")
                self.scopes = ["operator.read"]
                self.seq, self.got = seq, []

            def send_frame(self, frame: Any, drop_if_slow: bool = False) -> None:
                self.seq += 1
                self.got.append(frame.data(self.seq))

        members = [Numbered(seq) for seq in (0, 7, 41)]
        for m in members:
            core.connections.add(m)
        payload = {"runId": "r", "stream": "assistant", "data": {"text": "héllo", "delta": "o"}}
        core.events.to_session("agent", payload, "agent:main:main")
        self.assertEqual([e for e in encoded if e == payload], [payload])  # once, not once per connection
        for m in members:
            whole = {"type": "event", "event": "agent", "payload": payload, "seq": m.seq}
            self.assertEqual(m.got, [json.dumps(whole, separators=(",", ":"), ensure_ascii=False).encode()])

    def test_heartbeat_report_source(self):
        """Health and status report heartbeats as disabled until a scheduler's summary is used."""
        core = GatewayCore(gateway_settings(home_of(self)), Clock())
        self.assertEqual((core.health.refresh()["heartbeatSeconds"], core.heartbeats.summary()["every"]), (0, "disabled"))
        core.heartbeats.use(lambda: {"enabled": True, "every": "30m", "everyMs": 1_800_000, "prompt": "p", "target": "last", "ackMaxChars": 300})
        snapshot = core.health.refresh()
        self.assertEqual((snapshot["heartbeatSeconds"], snapshot["agents"][0]["heartbeat"]["every"]), (1800, "30m"))
