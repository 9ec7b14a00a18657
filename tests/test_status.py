"""
health, status, heartbeats and hello-ok features say only what is true:
counts from the session store, heartbeats off (nothing schedules them),
only events something emits, only capabilities implemented.
"""

from __future__ import annotations

import ast

from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw import __version__
from openclaw.gateway.events import EVENTS
from openclaw.protocol.versions import CAPABILITIES, CHALLENGE_CAPABILITIES
from tests import schemas
from tests.helpers import REPO
from tests.wsclient import GatewayMixin, connect_params

KEYS = ["alpha", "beta", "gamma", "delta", "epsilon"]
# Calls whose first argument is an event name the gateway sends to clients.
EMITTERS = {"broadcast", "to_session", "to_members", "send_event", "send_direct", "event", "emit"}
# Client-side code (our CLI, the node host) sends events *to* a gateway; they are not ours to advertise.
CLIENT_SIDE = ("openclaw/client", "openclaw/nodehost", "openclaw/cli")


def emitted_events() -> dict[str, list[str]]:
    """Every literal event name passed to an emitting call in the gateway's code, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "openclaw").rglob("*.py")):
        relative = str(path.relative_to(REPO))
        if relative.startswith(CLIENT_SIDE):
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            first = node.args[0]
            if name in EMITTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, []).append(f"{relative}:{node.lineno}")
    return found


class EventListTests(SynchronousTestCase):
    def test_each_advertised_event_has_an_emitter(self):
        """features.events is exactly the set of events the code emits (each has a call site)."""
        emitted = emitted_events()
        self.assertEqual(sorted(set(EVENTS) - set(emitted)), [], "advertised but never emitted")
        self.assertEqual(sorted(set(emitted) - set(EVENTS)), [], f"emitted but not advertised: { {k: emitted[k] for k in set(emitted) - set(EVENTS)} }")
        self.assertEqual(len(EVENTS), len(set(EVENTS)))

    def test_scanner_sees_emitters(self):
        """The scanner itself finds known call sites (so the test above cannot pass vacuously)."""
        emitted = emitted_events()
        self.assertTrue(any("events.py" in where for where in emitted["tick"]))
        self.assertTrue(any("connection.py" in where for where in emitted["connect.challenge"]))
        self.assertTrue(any("heartbeat.py" in where for where in emitted["heartbeat"]))  # subsystems' emit()
        self.assertTrue(any("channels/service.py" in where for where in emitted["pairing"]))
        self.assertNotIn("talk.mode", emitted)


class StatusTests(GatewayMixin, TestCase):
    async def sessions(self, count=5):
        store = self.service.core.agent.store("main")
        for key in KEYS[:count]:
            store.resolve(f"agent:main:{key}")

    async def test_status_counts_from_store(self):
        """status counts the sessions sessions.list returns; recent rows and paths only for admin."""
        await self.gateway()
        await self.sessions()
        admin, _ = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        listed = (await admin.request("sessions.list"))["payload"]
        status = (await admin.request("status"))["payload"]
        self.assertEqual((listed["count"], status["sessions"]["count"]), (5, 5))
        self.assertEqual(sorted(r["key"] for r in status["sessions"]["recent"]), sorted(f"agent:main:{k}" for k in KEYS))
        [by_agent] = status["sessions"]["byAgent"]
        self.assertEqual((by_agent["agentId"], by_agent["count"], len(by_agent["recent"])), ("main", 5, 5))
        self.assertTrue(by_agent["path"].endswith("sessions.json"))
        reader, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        seen = (await reader.request("status"))["payload"]["sessions"]
        self.assertEqual((seen["count"], seen["recent"], seen["byAgent"][0]["path"], seen["byAgent"][0]["count"]), (5, [], "[redacted]", 5))

    async def test_health_counts_from_store(self):
        """health (probe) counts and lists the store's sessions per agent, in upstream v4's health shape."""
        await self.gateway()
        await self.sessions(3)
        ws, hello = await self.connect(connect_params(protocol=4))
        health = (await ws.request("health", {"probe": True}))["payload"]
        self.assertEqual(health["sessions"]["count"], 3)
        [agent] = health["agents"]
        self.assertEqual((agent["agentId"], agent["isDefault"], agent["sessions"]["count"]), ("main", True, 3))
        self.assertEqual({r["key"] for r in agent["sessions"]["recent"]}, {f"agent:main:{k}" for k in KEYS[:3]})
        schemas.validate(4, "HelloOk", {**hello["payload"], "snapshot": {**hello["payload"]["snapshot"], "health": health}})

    async def test_heartbeat_off_as_configured(self):
        """every 0m: no heartbeat is scheduled, health/status say so in upstream's disabled shape, set-heartbeats cannot make one run, last-heartbeat is null."""
        await self.gateway(agents={"defaults": {"heartbeat": {"every": "0m", "target": "none"}}})
        ws, _ = await self.connect()
        health = (await ws.request("health"))["payload"]
        heartbeat = health["agents"][0]["heartbeat"]
        self.assertEqual((heartbeat["enabled"], heartbeat["every"], heartbeat["everyMs"], heartbeat["target"]), (False, "disabled", None, "none"))
        self.assertEqual(health["heartbeatSeconds"], 0)
        status = (await ws.request("status"))["payload"]
        self.assertEqual(status["heartbeat"]["agents"], [{"agentId": "main", "enabled": False, "every": "disabled", "everyMs": None}])
        self.assertEqual((await ws.request("set-heartbeats", {"enabled": True}))["payload"], {"ok": True, "enabled": True})
        self.assertFalse((await ws.request("status"))["payload"]["heartbeat"]["agents"][0]["enabled"])  # no interval: still off
        self.assertIsNone(self.service.scheduled.heartbeat.next_due_ms)
        self.assertIsNone((await ws.request("last-heartbeat"))["payload"])

    async def test_status_cli_params(self):
        """The v4 CLI's status params are accepted and honoured: channel summary off, CLI projection on."""
        await self.gateway(channels={"nostr": {"relays": ["wss://relay.example"]}, "discord": {"enabled": False}}, agents={"list": [{"id": "main", "name": "Main"}, {"id": "ops"}]})
        ws, _ = await self.connect(connect_params(protocol=4, client_id="gateway-client", mode="backend", scopes=["operator.read"]))
        res = await ws.request("status", {"includeChannelSummary": False, "includeCliProjection": True})
        self.assertTrue(res["ok"], res)
        status = res["payload"]
        self.assertEqual(status["channelSummary"], [])
        self.assertEqual(status["cliProjection"]["agents"], {"defaultId": "main", "selectionRequired": False, "rows": [{"id": "main", "name": "Main"}, {"id": "ops"}]})
        self.assertEqual([a["agentId"] for a in status["sessions"]["byAgent"]], ["main", "ops"])
        default = (await ws.request("status"))["payload"]
        self.assertNotIn("cliProjection", default)
        self.assertEqual(default["channelSummary"], ["Discord: disabled", "nostr: configured, not running (this gateway has no nostr channel yet)"])
        self.assertEqual((default["runtimeVersion"], default["pid"] > 0), (__version__, True))
        self.assertGreater(default["processMemory"]["rssBytes"], 0)


class FeatureTests(GatewayMixin, TestCase):
    async def test_capabilities(self):
        """v4: challenge and hello-ok carry capabilities, exactly those implemented; v3's hello-ok has none."""
        await self.gateway()
        ws = await self.ws()
        self.assertEqual(ws.challenge["payload"]["capabilities"], CHALLENGE_CAPABILITIES)
        hello = (await ws.request("connect", connect_params(protocol=4)))["payload"]
        self.assertEqual(hello["features"]["capabilities"], ["published-model-catalog"])
        self.assertEqual(CAPABILITIES, ["published-model-catalog"])
        self.assertIn("models.list", hello["features"]["methods"])
        self.assertEqual(hello["features"]["events"], EVENTS)
        _, v3 = await self.connect(connect_params(protocol=3))
        self.assertNotIn("capabilities", v3["payload"]["features"])
        schemas.validate(4, "HelloOk", hello)  # last: skipped where the schemas are absent
        schemas.validate(3, "HelloOk", v3["payload"])

    def test_no_unemitted_families(self):
        """The events upstream lists but nothing here emits are not advertised."""
        for name in ("talk.mode", "session.typing", "task"):
            self.assertNotIn(name, EVENTS)

