"""Nodes over WebSocket: registry, invoke round trips, policy, events, node pairing."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.nodes.policy import DANGEROUS, allowed_commands, platform_family
from openclaw.nodes.registry import NodeInfo, NodeRegistry
from openclaw.protocol.errors import GatewayError
from tests import schemas
from tests.wsclient import Device, GatewayMixin, connect_params


class FakeLink:
    transport_name = "fake"

    def __init__(self):
        self.invokes = []
        self.disconnected = []

    def send_invoke(self, invoke_id, command, params_json, timeout_ms, key):
        self.invokes.append((invoke_id, command, params_json, timeout_ms, key))

    def disconnect(self, reason):
        self.disconnected.append(reason)


class PolicyTests(SynchronousTestCase):
    def test_platform_defaults_and_config(self):
        """Declared ∩ (platform defaults + allow) − deny; dangerous commands need allow."""
        declared = ["system.run", "camera.snap", "canvas.navigate", "weird.thing"]
        self.assertEqual(allowed_commands(declared, "linux"), {"system.run", "canvas.navigate"})
        self.assertEqual(allowed_commands(declared, "linux", {"camera.snap"}, {"system.run"}), {"camera.snap", "canvas.navigate"})
        self.assertEqual(allowed_commands(["system.run"], "ios 18.4"), set())
        self.assertIn("screen.record", DANGEROUS)
        self.assertEqual([platform_family(p) for p in ("darwin", "macos 15.4", "Linux", "android 14", None)], ["macos", "macos", "linux", "android", "linux"])


class RegistryTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.registry = NodeRegistry(self.clock, Path(self.mktemp()))
        self.link = FakeLink()
        self.registry.attach(NodeInfo("n1", platform="linux", commands=["system.run", "system.which"]), self.link)

    def test_round_trip(self):
        """An invoke goes to the link; the node's result fires it with payload and payloadJSON."""
        d = self.registry.invoke("n1", "system.which", {"bins": ["sh"]}, None, "k1")
        [(invoke_id, command, params_json, timeout, key)] = self.link.invokes
        self.assertEqual((command, json.loads(params_json), timeout, key), ("system.which", {"bins": ["sh"]}, 15000, "k1"))
        self.assertTrue(self.registry.result(invoke_id, "n1", True, None, '{"x":1}', None))
        self.assertEqual(self.successResultOf(d), {"ok": True, "nodeId": "n1", "command": "system.which", "payload": {"x": 1}, "payloadJSON": '{"x":1}'})

    def test_timeout(self):
        """No answer within timeoutMs: UNAVAILABLE "invoke timeout"; a late result is ignored."""
        d = self.registry.invoke("n1", "system.run", {"command": ["true"]}, 500, "k2")
        self.clock.advance(0.5)
        error = self.failureResultOf(d, GatewayError).value
        self.assertEqual((error.code, error.message), ("UNAVAILABLE", "invoke timeout"))
        self.assertFalse(self.registry.result(self.link.invokes[0][0], "n1", True, {}, None, None))

    def test_idempotent(self):
        """The same idempotencyKey sends once; both callers get the one result."""
        first = self.registry.invoke("n1", "system.run", {}, None, "same")
        second = self.registry.invoke("n1", "system.run", {}, None, "same")
        self.assertEqual(len(self.link.invokes), 1)
        self.registry.result(self.link.invokes[0][0], "n1", True, {"exitCode": 0}, None, None)
        self.assertEqual(self.successResultOf(first), self.successResultOf(second))
        third = self.registry.invoke("n1", "system.run", {}, None, "same")
        self.assertEqual(self.successResultOf(third)["payload"], {"exitCode": 0})
        self.clock.advance(301)
        self.registry.invoke("n1", "system.run", {}, None, "same")
        self.assertEqual(len(self.link.invokes), 2)

    def test_node_error_and_disconnect(self):
        """A node error surfaces with details.nodeError; a disconnect fails pending invokes."""
        d = self.registry.invoke("n1", "system.run", {}, None, None)
        self.registry.result(self.link.invokes[-1][0], "n1", False, None, None, {"code": "SYSTEM_RUN_DENIED", "message": "denied by policy"})
        error = self.failureResultOf(d, GatewayError).value
        self.assertEqual((error.code, error.details["nodeError"]["code"]), ("UNAVAILABLE", "SYSTEM_RUN_DENIED"))
        d = self.registry.invoke("n1", "system.run", {}, None, None)
        self.registry.detach("n1", self.link)
        self.assertEqual(self.failureResultOf(d, GatewayError).value.details["code"], "NOT_CONNECTED")
        self.assertRaises(GatewayError, self.registry.invoke, "n1", "system.run", {}, None, None)

    def test_replacement(self):
        """A second link for the same node replaces (and disconnects) the first."""
        other = FakeLink()
        self.registry.attach(NodeInfo("n1", platform="linux", commands=["system.run"]), other)
        self.assertEqual(self.link.disconnected, ["replaced by a new connection"])
        self.registry.detach("n1", self.link)  # the old link's close must not drop the new one
        self.assertTrue(self.registry.connected("n1"))

    def test_not_allowed(self):
        """A command the node did not declare, or the policy refuses, is INVALID_REQUEST with details."""
        error = self.assertRaises(GatewayError, self.registry.invoke, "n1", "camera.snap", {}, None, None)
        self.assertEqual((error.code, error.details["command"]), ("INVALID_REQUEST", "camera.snap"))


def node_params(protocol=3, commands=("system.run", "system.which"), **extra):
    params = {**connect_params(protocol=protocol, client_id="node-host", mode="node", scopes=[]), "role": "node", "commands": list(commands), "caps": ["system"]}
    params.update(extra)
    return params


class WebSocketNodeTests(GatewayMixin, TestCase):
    async def node(self, protocol=3, device=None, **extra):
        ws = await self.ws()
        device = device or Device()
        params = node_params(protocol, **extra)
        params["device"] = device.block(params, ws.challenge["payload"]["nonce"], ws.challenge["payload"]["ts"], "v3", params["auth"]["token"])
        res = await ws.request("connect", params)
        self.assertTrue(res["ok"], res)
        return ws, device

    async def test_offline_node(self):
        """35. node.invoke to an unknown node: UNAVAILABLE "node not connected", NOT_CONNECTED."""
        await self.gateway()
        op, _ = await self.connect()
        error = (await op.request("node.invoke", {"nodeId": "ghost", "command": "system.run", "idempotencyKey": "a"}))["error"]
        self.assertEqual((error["code"], error["message"], error["details"]["code"]), ("UNAVAILABLE", "node not connected", "NOT_CONNECTED"))

    async def test_invoke_round_trip(self):
        """36. The node gets node.invoke.request (no seq); its result reaches the operator."""
        await self.gateway()
        node, device = await self.node()
        wake = await node.event("voicewake.changed")
        self.assertNotIn("seq", wake)
        op, _ = await self.connect()
        op.protocol.send_json({"type": "req", "id": "inv", "method": "node.invoke", "params": {"nodeId": device.id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "i1"}})
        request = await node.event("node.invoke.request")
        self.assertNotIn("seq", request)
        payload = request["payload"]
        schemas.validate(3, "NodeInvokeRequestEvent", payload)
        self.assertEqual((payload["nodeId"], payload["command"], json.loads(payload["paramsJSON"])), (device.id, "system.which", {"bins": ["sh"]}))
        done = await node.request("node.invoke.result", {"id": payload["id"], "nodeId": device.id, "ok": True, "payloadJSON": '{"x":1}'})
        self.assertEqual(done["payload"], {"ok": True})
        res = await op.response("inv")
        self.assertEqual(res["payload"], {"ok": True, "nodeId": device.id, "command": "system.which", "payload": {"x": 1}, "payloadJSON": '{"x":1}'})

    async def test_list_describe_rename(self):
        """node.list and node.describe show the connected node with its allowed commands; rename sticks."""
        await self.gateway()
        node, device = await self.node(commands=("system.run", "camera.snap"), client={"id": "node-host", "version": "1", "platform": "linux", "mode": "node", "displayName": "box"})
        op, _ = await self.connect()
        nodes = (await op.request("node.list"))["payload"]["nodes"]
        [entry] = nodes
        self.assertEqual((entry["nodeId"], entry["connected"], entry["commands"], entry["displayName"]), (device.id, True, ["system.run"], "box"))
        await op.request("node.rename", {"nodeId": device.id, "displayName": "renamed"})
        self.assertEqual((await op.request("node.describe", {"nodeId": device.id}))["payload"]["displayName"], "renamed")
        self.assertEqual((await op.request("node.describe", {"nodeId": "nope"}))["error"]["code"], "INVALID_REQUEST")
        node.close()
        await node.closed
        listing = (await op.request("node.list"))["payload"]["nodes"]
        self.assertEqual([(n["nodeId"], n["connected"], n["paired"]) for n in listing], [(device.id, False, True)])

    async def test_duplicate_node_replaced(self):
        """A second connection of the same node replaces the first."""
        await self.gateway()
        first, device = await self.node()
        second, _ = await self.node(device=device)
        code, reason = await first.closed
        self.assertEqual(reason, "replaced by a new connection")
        op, _ = await self.connect()
        self.assertEqual([n["connected"] for n in (await op.request("node.list"))["payload"]["nodes"]], [True])

    async def test_result_from_wrong_node(self):
        """A node may only answer as itself."""
        await self.gateway()
        node, _ = await self.node()
        res = await node.request("node.invoke.result", {"id": "x", "nodeId": "someone-else", "ok": True})
        self.assertEqual(res["error"]["message"], "nodeId does not match this connection")

    async def test_node_events(self):
        """node.event: chat.subscribe is handled; agent.request starts a run; bad JSON refused."""
        await self.gateway()
        node, _ = await self.node()
        res = await node.request("node.event", {"event": "chat.subscribe", "payloadJSON": '{"sessionKey": "main"}'})
        self.assertEqual(res["payload"], {"ok": True, "event": "chat.subscribe", "handled": True})
        res = await node.request("node.event", {"event": "agent.request", "payload": {"message": "hi"}})
        self.assertTrue(res["payload"]["handled"])
        run = self.service.core.agent.lookup(res["payload"]["runId"])
        self.assertTrue(run.session_key.startswith("agent:main:node-"))
        res = await node.request("node.event", {"event": "voice.transcript", "payload": {}})
        self.assertEqual(res["payload"]["reason"], "text required")
        res = await node.request("node.event", {"event": "x", "payloadJSON": "{bad"})
        self.assertEqual(res["payload"]["reason"], "payloadJSON is not JSON")

    async def test_node_pairing_methods(self):
        """node.pair.request → requested event → approve → resolved event; verify checks the token."""
        await self.gateway()
        op, _ = await self.connect()
        created = (await op.request("node.pair.request", {"nodeId": "phone-1", "displayName": "Phone", "commands": ["camera.snap"]}))["payload"]
        self.assertEqual((created["status"], created["created"]), ("pending", True))
        self.assertEqual((await op.event("node.pair.requested"))["payload"]["nodeId"], "phone-1")
        listing = (await op.request("node.pair.list"))["payload"]
        self.assertEqual([p["nodeId"] for p in listing["pending"]], ["phone-1"])
        approved = (await op.request("node.pair.approve", {"requestId": created["request"]["requestId"]}))["payload"]
        self.assertNotIn("token", approved["node"])
        resolved = await op.event("node.pair.resolved")
        self.assertEqual(resolved["payload"]["decision"], "approved")
        token = self.service.core.node_pairing.paired_record("phone-1")["token"]
        self.assertEqual((await op.request("node.pair.verify", {"nodeId": "phone-1", "token": token}))["payload"]["ok"], True)
        self.assertEqual((await op.request("node.pair.verify", {"nodeId": "phone-1", "token": "nope"}))["payload"]["ok"], False)
        self.assertIn("phone-1", [n["nodeId"] for n in (await op.request("node.list"))["payload"]["nodes"]])

    async def test_one_truth_for_paired(self):
        """node.pair.list and node.list agree: device-paired WS nodes and bridge nodes are paired; a device-less node is not."""
        await self.gateway()
        node, device = await self.node()
        anonymous = await self.ws()
        self.assertTrue((await anonymous.request("connect", node_params(client={"id": "node-host", "version": "1", "platform": "linux", "mode": "node", "instanceId": "anon"})))["ok"])
        core = self.service.core
        request, _ = core.node_pairing.request("bridge-1", {"displayName": "Bridge"}, core.boot.now_ms())
        core.node_pairing.approve(request["requestId"], core.boot.now_ms())
        op, _ = await self.connect()
        paired = (await op.request("node.pair.list"))["payload"]["paired"]
        self.assertEqual(sorted((p["nodeId"], p["connected"]) for p in paired), sorted([(device.id, True), ("bridge-1", False)]))
        self.assertFalse(any("token" in p or "tokens" in p or "publicKey" in p for p in paired))
        listing = {n["nodeId"]: n["paired"] for n in (await op.request("node.list"))["payload"]["nodes"]}
        self.assertEqual(listing, {device.id: True, "bridge-1": True, "anon": False})
        await op.request("device.pair.remove", {"deviceId": device.id})
        self.assertEqual([p["nodeId"] for p in (await op.request("node.pair.list"))["payload"]["paired"]], ["bridge-1"])

    async def test_rename_bounded(self):
        """node.rename refuses ids never paired and over-long names; a paired node's name sticks and is listed."""
        await self.gateway()
        op, _ = await self.connect()
        for i in range(3):
            refused = await op.request("node.rename", {"nodeId": f"ghost-{i}", "displayName": "x" * 100})
            self.assertEqual(refused["error"]["code"], "INVALID_REQUEST")
            self.assertIn("unknown nodeId", refused["error"]["message"])
        self.assertEqual((await op.request("node.rename", {"nodeId": "ghost", "displayName": "x" * 121}))["error"]["code"], "INVALID_REQUEST")
        node, device = await self.node()
        self.assertEqual((await op.request("node.rename", {"nodeId": device.id, "displayName": " Kitchen "}))["payload"]["displayName"], "Kitchen")
        [entry] = (await op.request("node.pair.list"))["payload"]["paired"]
        self.assertEqual(entry["displayName"], "Kitchen")
        self.service.core.nodes.flush()
        names = json.loads((self.service.settings.state_dir / "nodes" / "names.json").read_text())
        self.assertEqual(names, {device.id: "Kitchen"})


class NamesFileTests(SynchronousTestCase):
    def test_names_coalesced_and_pruned(self):
        """Renames are written once per second at most, and only names of paired nodes are kept."""
        clock = Clock()
        state = Path(self.mktemp())
        registry = NodeRegistry(clock, state)
        path = state / "nodes" / "names.json"
        for i in range(50):
            registry.rename("n1", f"name {i}", {"n1", "n2"})
        registry.rename("n2", "two", {"n1", "n2"})
        self.assertFalse(path.exists())
        clock.advance(1)
        self.assertEqual(json.loads(path.read_text()), {"n1": "name 49", "n2": "two"})
        registry.rename("n2", "still two", {"n2"})
        clock.advance(1)
        self.assertEqual(json.loads(path.read_text()), {"n2": "still two"})
        self.assertRaises(ValueError, registry.rename, "n3", "never paired", {"n2"})
        self.assertEqual(NodeRegistry(clock, state).load().name("n2"), "still two")
