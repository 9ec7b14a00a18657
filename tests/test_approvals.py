"""
Exec approvals: the policy file and decisions (sans-IO), the pending queue
on a Clock, and end to end: an `exec` with ask on pauses the run until a
second client resolves it (allow-once, allow-always, deny, timeout), on the
gateway host and on a node; the methods against upstream's schemas; the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.approvals import WITHDRAWN_BY, ApprovalQueue, exec_settings
from openclaw.agent.execpolicy import ApprovalsFile, PolicyFileError, analyze_argv, analyze_shell, check, matches, needs_approval, normalize, resolve, safe_bin_use, view
from openclaw.protocol.errors import GatewayError
from openclaw.store import write_json
from tests import schemas
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params

PATH = os.environ.get("PATH", "/usr/bin:/bin")
ECHO = shutil.which("echo", path=PATH)


class PolicyTests(SynchronousTestCase):
    def test_shell_analysis(self):
        """Pipelines and chains split outside quotes; redirections, subshells, backgrounding and $() are refused."""
        ok = analyze_shell("echo 'a|b' | tr a b && echo \"x;y\"; wc -l", None, PATH)
        self.assertTrue(ok.ok)
        self.assertEqual([s.argv for s in ok.segments], [("echo", "a|b"), ("tr", "a", "b"), ("echo", "x;y"), ("wc", "-l")])
        self.assertEqual(ok.segments[0].resolved, ECHO)
        for bad in ("cat < /etc/passwd", "echo hi > x", "sleep 1 &", "echo $(id)", 'echo "$(id)"', "echo `id`", "(echo)", "echo 'open", "a |& b", "a &&", "echo \\"):
            self.assertFalse(analyze_shell(bad, None, PATH).ok, bad)
        self.assertEqual(analyze_argv(["echo", "a > b"], None, PATH).segments[0].argv, ("echo", "a > b"))

    def test_patterns(self):
        """Globs over resolved paths, case-insensitive; * stays in a folder, ** crosses; bare names match nothing."""
        self.assertTrue(matches("/usr/bin/*", "/usr/bin/ls"))
        self.assertFalse(matches("/usr/*", "/usr/bin/ls"))
        self.assertTrue(matches("/usr/**/ls", "/usr/local/bin/ls"))
        self.assertTrue(matches("/USR/BIN/LS", "/usr/bin/ls"))
        self.assertTrue(matches("/usr/bin/l?", "/usr/bin/ls"))
        self.assertFalse(matches("ls", "/usr/bin/ls"))
        self.assertFalse(matches("/usr/bin/ls", "/usr/bin/lsof"))
        self.assertTrue(matches("~/bin/*", os.path.expanduser("~/bin/x")))

    def test_allowlist_and_safe_bins(self):
        """Every segment must be allowlisted or a stdin-only safe bin; a safe bin naming a file is not safe."""
        allow = [{"pattern": ECHO}]
        safe = frozenset({"wc", "tr"})
        self.assertTrue(check(analyze_shell("echo hi | wc -l", None, PATH), allow, safe, "/").satisfied)
        self.assertFalse(check(analyze_shell("echo hi | wc -l /etc/passwd", None, PATH), allow, safe, "/").satisfied)
        self.assertFalse(check(analyze_shell("echo hi | wc --files0-from=./x", None, PATH), allow, safe, "/").satisfied)
        self.assertFalse(check(analyze_shell("ls", None, PATH), allow, safe, "/").satisfied)
        self.assertEqual(check(analyze_shell("echo a && echo b", None, PATH), allow, safe, "/").matched, tuple(allow * 2))
        segment = analyze_shell("tr a b", None, PATH).segments[0]
        self.assertTrue(safe_bin_use(segment, safe, "/"))
        self.assertFalse(safe_bin_use(segment, frozenset(), "/"))

    def test_needs_approval(self):
        """always asks; on-miss asks under an allowlist the command misses; off and full never ask."""
        self.assertTrue(needs_approval("always", "full", True, True))
        self.assertTrue(needs_approval("on-miss", "allowlist", True, False))
        self.assertTrue(needs_approval("on-miss", "allowlist", False, True))
        self.assertFalse(needs_approval("on-miss", "allowlist", True, True))
        self.assertFalse(needs_approval("on-miss", "full", True, False))
        self.assertFalse(needs_approval("off", "allowlist", True, False))

    def test_resolution(self):
        """The agent's entry, then "*", then defaults, then the host's fallbacks; both allowlists apply."""
        file = normalize(
            {
                "version": 1,
                "defaults": {"security": "full", "askFallback": "allowlist"},
                "agents": {"*": {"ask": "always", "allowlist": [{"pattern": "/a"}]}, "ops": {"security": "deny", "allowlist": [{"pattern": "/b"}]}, "default": {"ask": "off"}},
            }
        )
        main = resolve(file, "main")
        self.assertEqual((main.security, main.ask, main.ask_fallback), ("full", "off", "allowlist"))  # "default" is main's legacy name
        ops = resolve(file, "ops")
        self.assertEqual((ops.security, ops.ask), ("deny", "always"))
        self.assertEqual([e["pattern"] for e in ops.allowlist], ["/a", "/b"])
        self.assertEqual(resolve(normalize({}), "x", "allowlist", "on-miss").defaults(), {"security": "allowlist", "ask": "on-miss", "askFallback": "deny", "autoAllowSkills": False})
        config = {"tools": {"exec": {"host": "gateway", "security": "full", "safeBins": ["jq"]}}, "agents": {"list": [{"id": "ops", "tools": {"exec": {"security": "deny", "host": "mars"}}}]}}
        self.assertEqual((exec_settings(config, "main").host, exec_settings(config, "main").security), ("gateway", "full"))
        self.assertEqual((exec_settings(config, "ops").host, exec_settings(config, "ops").security, exec_settings(config, "ops").safe_bins), ("sandbox", "deny", frozenset({"jq"})))

    def test_file_crash_safe_hash_checked(self):
        """Writes are 0600 and atomic; a replace needs the current hash once the file exists; unknown keys survive; the token is never shown."""
        path = Path(self.mktemp())
        store = ApprovalsFile(path)
        first = store.read()
        self.assertFalse(first.exists)
        written = store.replace({"version": 1, "socket": {"path": "/s", "token": "sekrit"}, "agents": {"main": {"allowlist": [{"pattern": "/bin/x"}]}}}, None)
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        self.assertNotIn("sekrit", json.dumps(view(written.file)))
        with self.assertRaises(PolicyFileError):
            store.replace({"version": 1}, None)
        with self.assertRaises(PolicyFileError):
            store.replace({"version": 1}, "0" * 64)
        raw = json.loads(path.read_text())
        write_json(path, {**raw, "futureKey": {"keep": True}})
        again = store.replace({"version": 1, "defaults": {"ask": "always"}}, store.read().hash)
        self.assertEqual(json.loads(path.read_text())["futureKey"], {"keep": True})
        self.assertEqual(again.file["socket"]["token"], "sekrit")  # kept when the new file names none
        self.assertEqual([p.name for p in path.parent.iterdir() if p.name.startswith(path.name)], [path.name])
        changed = store.change("main", add=["/usr/bin/git"])
        self.assertEqual([e["pattern"] for e in changed.file["agents"]["main"]["allowlist"]], ["/usr/bin/git"])
        self.assertEqual(changed.file["agents"]["main"]["allowlist"][0]["source"], "allow-always")

    def test_views_fit_upstream_schemas(self):
        """v3 sees no entry ids (its schema is closed); v4 does; both snapshot shapes validate."""
        file = normalize({"version": 1, "socket": {"path": "/s", "token": "t"}, "defaults": {"security": "allowlist"}, "agents": {"main": {"ask": "always", "allowlist": [{"pattern": "/bin/x", "lastUsedAt": 5}], "mcpTools": []}}})
        v3 = view(file, 3)
        self.assertNotIn("id", v3["agents"]["main"]["allowlist"][0])
        self.assertIn("id", view(file, 4)["agents"]["main"]["allowlist"][0])
        schemas.validate(3, "ExecApprovalsSnapshot", {"path": "/p", "exists": True, "hash": "h", "file": v3})
        schemas.validate(4, "ExecApprovalsSnapshot", {"path": "/p", "exists": True, "hash": "h", "file": view(file, 4)})


class QueueTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.sent = []

        class Sink:
            def broadcast(sink, name, payload, drop_if_slow=False):
                self.sent.append((name, payload))

        self.queue = ApprovalQueue(self.clock, Sink())

    def test_resolve_once(self):
        """A request is announced; the first resolve wins and is announced; a second finds nothing."""
        record, decided = self.queue.ask({"command": "ls"}, 10)
        self.assertEqual(self.sent[0], ("exec.approval.requested", record))
        self.assertEqual(record["expiresAtMs"] - record["createdAtMs"], 10_000)
        self.assertEqual(self.queue.pending(), [record])
        self.assertTrue(self.queue.resolve(record["id"], "allow-always", "dev-1"))
        self.assertEqual(self.successResultOf(decided), "allow-always")
        self.assertEqual(self.sent[1][1]["decision"], "allow-always")
        self.assertEqual(self.sent[1][1]["resolvedBy"], "dev-1")
        self.assertFalse(self.queue.resolve(record["id"], "deny"))
        with self.assertRaises(GatewayError):
            self.queue.resolve(record["id"], "maybe")

    def test_known_secrets_masked(self):
        """A command that holds a configured secret is shown to approvers with the secret masked."""
        from openclaw.logs import Redactor

        queue = ApprovalQueue(self.clock, self.queue.events, Redactor(["gw-token-0123456789"]).scrub)
        record, _ = queue.ask({"command": "curl -H 'Authorization: Bearer gw-token-0123456789' https://x"}, 5)
        self.assertNotIn("gw-token-0123456789", json.dumps(self.sent[-1]))
        self.assertNotIn("gw-token-0123456789", json.dumps(queue.pending()))
        self.clock.advance(5)

    def test_timeout_and_cancel(self):
        """No answer in time: None; cancelling the wait withdraws the request; ids are unique while pending."""
        record, decided = self.queue.ask({"command": "ls"}, 5, "fixed")
        with self.assertRaises(GatewayError):
            self.queue.ask({"command": "ls"}, 5, "fixed")
        self.clock.advance(5)
        self.assertIsNone(self.successResultOf(decided))
        self.assertEqual(self.queue.pending(), [])
        _, waiting = self.queue.ask({"command": "ls"}, 5)
        waiting.cancel()
        self.failureResultOf(waiting)
        self.assertEqual((self.queue.pending(), self.clock.getDelayedCalls()), ([], []))


def requesting(ws, method, params, timeout=30.0):
    """Send a request now; the Deferred fires with its response (which may take long: it waits for a decision)."""
    ws._ids += 1
    frame = {"type": "req", "id": f"slow{ws._ids}", "method": method, "params": params}
    ws.protocol.send_json(frame)
    return Deferred.fromCoroutine(ws.response(frame["id"], timeout))


def exec_config(url, **exec_block):
    config = model_config(url)
    config["tools"] = {"exec": exec_block}
    return config


class GatewayHostTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def start(self, approver=True, **exec_block):
        await self.gateway(**exec_config(self.url, host="gateway", **exec_block))
        self.user, res = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        self.assertTrue(res["ok"], res)
        if approver:
            await self.connect_approver()

    async def connect_approver(self):
        self.approver, res = await self.connect(connect_params(protocol=4, scopes=["operator.approvals"]))
        self.assertTrue(res["ok"], res)
        self.approvals_file = self.service.settings.state_dir / "exec-approvals.json"

    async def send(self, run_id, command="echo approved-ok"):
        self.fake.replies += [openai_tool_call("exec", {"command": command}, call_id=f"c-{run_id}"), openai_text("done")]
        res = await self.user.request("chat.send", {"sessionKey": "main", "message": "run it", "idempotencyKey": run_id})
        self.assertEqual(res["payload"]["status"], "started")

    async def finished(self, run_id):
        while True:
            event = await self.user.event("chat", timeout=10)
            if event["payload"]["runId"] == run_id and event["payload"]["state"] in ("final", "error", "aborted"):
                return event["payload"]

    def tool_result(self, call_id):
        for request in self.fake.requests:
            for message in request["body"]["messages"]:
                if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
                    return message["content"]
        return None

    async def test_allow_once_pauses_until_resolved(self):
        """ask: always: the run waits (no second model call) until the other client allows it; then the command runs."""
        await self.start(security="allowlist", ask="always")
        await self.send("r1")
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        self.assertEqual((requested["request"]["command"], requested["request"]["host"], requested["request"]["sessionKey"]), ("echo approved-ok", "gateway", "agent:main:main"))
        self.assertEqual(requested["request"]["resolvedPath"], ECHO)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(self.fake.requests), 1)  # paused
        self.assertTrue(self.service.core.agent.busy("agent:main:main"))
        listed = (await self.approver.request("exec.approval.list"))["payload"]
        self.assertEqual([r["id"] for r in listed], [requested["id"]])
        res = await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"})
        self.assertEqual(res["payload"], {"ok": True})
        resolved = (await self.approver.event("exec.approval.resolved"))["payload"]
        self.assertEqual((resolved["id"], resolved["decision"]), (requested["id"], "allow-once"))
        self.assertEqual((await self.finished("r1"))["state"], "final")
        self.assertIn("approved-ok", self.tool_result("c-r1"))
        self.assertFalse(self.approvals_file.exists())  # allow-once remembers nothing
        again = await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
        self.assertEqual(again["error"]["code"], "INVALID_REQUEST")

    async def test_deny(self):
        """A deny goes back to the model as the tool's error; nothing runs."""
        await self.start(security="full", ask="always")
        marker = Path(self.mktemp()).resolve()
        await self.send("r2", f"touch {marker}")
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
        await self.finished("r2")
        self.assertIn("denied", self.tool_result("c-r2"))
        self.assertFalse(marker.exists())

    async def test_allow_always_remembers(self):
        """allow-always puts the resolved path in the agent's allowlist (0600): the next such command runs without asking."""
        await self.start(security="allowlist", ask="on-miss")
        await self.send("r3")
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "allow-always"})
        await self.finished("r3")
        stored = json.loads(self.approvals_file.read_text())
        self.assertEqual([e["pattern"] for e in stored["agents"]["main"]["allowlist"]], [ECHO])
        self.assertEqual(self.approvals_file.stat().st_mode & 0o777, 0o600)
        await self.send("r4", "echo second-time")
        await self.finished("r4")
        self.assertIn("second-time", self.tool_result("c-r4"))
        self.assertEqual([e for e in self.approver.events if e.get("event") == "exec.approval.requested"], [])
        used = json.loads(self.approvals_file.read_text())["agents"]["main"]["allowlist"][0]
        self.assertEqual(used["lastUsedCommand"], "echo second-time")
        await self.send("r5", "ls /")  # not allowlisted: asks again
        await self.approver.event("exec.approval.requested")

    async def test_timeout_is_ask_fallback(self):
        """No answer in time: askFallback decides (deny by default; full lets it run)."""
        await self.start(security="allowlist", ask="always")
        self.service.core.exec_gate.timeout = 0.3
        await self.send("r6")
        await self.approver.event("exec.approval.requested")
        await self.finished("r6")
        self.assertIn("no approval in time (askFallback=deny)", self.tool_result("c-r6"))
        write_json(self.approvals_file, {"version": 1, "defaults": {"askFallback": "full"}})
        await self.send("r7", "echo fell-back")
        await self.approver.event("exec.approval.requested")
        await self.finished("r7")
        self.assertIn("fell-back", self.tool_result("c-r7"))

    async def test_unattended_run_without_approver(self):
        """A run nobody watches (AgentRunner.run: cron, heartbeats) while no approver is connected: askFallback at once, and the run's diagnostics say why; with an approver connected it asks."""
        await self.start(approver=False, security="allowlist", ask="always")
        self.service.core.exec_gate.timeout = 60.0  # waiting would outlast the assertion below
        self.fake.replies += [openai_tool_call("exec", {"command": "echo unattended"}, call_id="c-u1"), openai_text("could not")]
        began = reactor.seconds()
        result = await self.service.core.agent.run("cron:nightly", "run it", "u1")
        self.assertLess(reactor.seconds() - began, 20)
        self.assertEqual(result.status, "ok")
        why = "exec denied: nobody could approve it (no client with operator.approvals is connected) (askFallback=deny)"
        self.assertIn(why, self.tool_result("c-u1"))
        self.assertEqual([(d["source"], d["severity"], d["toolName"], d["message"]) for d in result.diagnostics], [("exec", "warn", "exec", why)])
        self.assertEqual(self.service.core.approvals.pending(), [])
        await self.connect_approver()
        self.fake.replies += [openai_tool_call("exec", {"command": "echo watched"}, call_id="c-u2"), openai_text("ran")]
        second = self.service.core.agent.run("cron:nightly", "run it", "u2")
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"})
        self.assertEqual(((await second).status, (await second).diagnostics), ("ok", ()))
        self.assertIn("watched", self.tool_result("c-u2"))

    async def test_wait_ends_inside_the_run(self):
        """Nobody answers: the wait is cut to leave the run time, so askFallback decides and the run ends ok instead of timing out."""
        await self.start(security="allowlist", ask="always")
        self.fake.replies += [openai_tool_call("exec", {"command": "echo late"}, call_id="c-d1"), openai_text("it was denied")]
        pending = self.service.core.agent.run("cron:nightly", "run it", "d1", timeout=4)
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        self.assertLessEqual(requested["expiresAtMs"] - requested["createdAtMs"], 2000)
        self.assertEqual(requested["request"]["runId"], "d1")
        result = await pending
        self.assertEqual((result.status, result.text), ("ok", "it was denied"))
        self.assertIn("no approval in time (askFallback=deny)", self.tool_result("c-d1"))
        self.assertEqual(len(result.diagnostics), 1)

    async def test_withdrawn_when_the_run_ends(self):
        """A run aborted while it waits withdraws its request: approvers are told (deny, by the gateway) and nothing stays pending."""
        await self.start(security="allowlist", ask="always")
        await self.send("w1")
        requested = (await self.approver.event("exec.approval.requested"))["payload"]
        res = await self.user.request("chat.abort", {"sessionKey": "main", "runId": "w1"})
        self.assertTrue(res["ok"], res)
        resolved = (await self.approver.event("exec.approval.resolved"))["payload"]
        self.assertEqual((resolved["id"], resolved["decision"], resolved["resolvedBy"]), (requested["id"], "deny", WITHDRAWN_BY))
        self.assertEqual((await self.approver.request("exec.approval.list"))["payload"], [])
        late = await self.approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"})
        self.assertEqual(late["error"]["code"], "INVALID_REQUEST")

    async def test_security_deny_and_host_choice(self):
        """security deny refuses without asking; a tool call may not pick another host than the configured one."""
        await self.start(security="deny")
        await self.send("r8")
        await self.finished("r8")
        self.assertIn("security=deny", self.tool_result("c-r8"))
        self.fake.replies += [openai_tool_call("exec", {"command": "echo x", "host": "node"}, call_id="c-r9"), openai_text("done")]
        await self.user.request("chat.send", {"sessionKey": "main", "message": "go", "idempotencyKey": "r9"})
        await self.finished("r9")
        self.assertIn("exec host not allowed", self.tool_result("c-r9"))

    async def test_methods(self):
        """exec.approvals.get/set (hash-checked, schema-valid in v3 and v4); exec.approval.request with and without a route."""
        await self.start(security="allowlist", ask="on-miss")
        admin3, _ = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        admin4, _ = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        got = (await admin4.request("exec.approvals.get"))["payload"]
        self.assertEqual((got["exists"], got["resolvedDefaults"]["security"], got["resolvedDefaults"]["ask"]), (False, "allowlist", "on-miss"))
        schemas.validate(4, "ExecApprovalsSnapshot", got)
        new = {"version": 1, "defaults": {"ask": "always"}, "agents": {"main": {"allowlist": [{"pattern": ECHO}]}}}
        stored = (await admin4.request("exec.approvals.set", {"file": new}))["payload"]
        self.assertTrue(stored["exists"])
        stale = await admin4.request("exec.approvals.set", {"file": new, "baseHash": got["hash"]})
        self.assertIn("changed since last load", stale["error"]["message"])
        missing = await admin4.request("exec.approvals.set", {"file": new})
        self.assertIn("base hash required", missing["error"]["message"])
        v3 = (await admin3.request("exec.approvals.get"))["payload"]
        schemas.validate(3, "ExecApprovalsSnapshot", v3)
        self.assertEqual(v3["hash"], stored["hash"])
        forbidden = await self.user.request("exec.approvals.get")
        self.assertFalse(forbidden["ok"])
        # a request another client can answer waits for it
        pending = requesting(self.approver, "exec.approval.request", {"command": "rm -rf /tmp/x", "host": "gateway", "timeoutMs": 5000})
        requested = (await admin4.event("exec.approval.requested"))["payload"]
        self.assertEqual((await admin4.request("exec.approval.get", {"id": requested["id"]}))["payload"]["request"]["command"], "rm -rf /tmp/x")
        await admin4.request("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
        self.assertEqual((await pending)["payload"]["decision"], "deny")
        # nobody else could answer: no decision at once
        self.approver.close()
        admin3.close()
        await deferLater(reactor, 0.2, lambda: None)
        alone = await admin4.request("exec.approval.request", {"command": "ls", "twoPhase": True, "timeoutMs": 60000})
        self.assertEqual(alone["payload"]["deliveryRoute"], "none")
        self.assertIsNone((await admin4.response(alone["id"]))["payload"]["decision"])


class ControlUITests(GatewayMixin, TestCase):
    """What upstream's Control UI (the v3 build shipped with the 2026.1.30 CLI) does on its Nodes tab."""

    timeout = 60

    async def test_nodes_tab_exec_approvals(self):
        """The v3 UI's connect, then exec.approvals.get (answer fits upstream's v4 snapshot schema too), a save with the hash it read, and a reload."""
        ui = {"Origin": "http://127.0.0.1"}
        await self.gateway(gateway={"allowInsecureAuth": True, "controlUi": {"allowedOrigins": ["http://127.0.0.1"]}})
        params = connect_params(protocol=3, client_id="openclaw-control-ui", mode="webchat", scopes=["operator.admin", "operator.approvals", "operator.pairing"])
        ws, res = await self.connect(params, headers=ui)
        self.assertTrue(res["ok"], res)
        self.assertIn("exec.approvals.get", res["payload"]["features"]["methods"])
        first = (await ws.request("exec.approvals.get", {}))["payload"]
        for version in (3, 4):
            schemas.validate(version, "ExecApprovalsSnapshot", first)
        self.assertEqual((first["exists"], first["file"]["version"]), (False, 1))
        form = {**first["file"], "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"}, "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/uptime"}]}}}
        saved = await ws.request("exec.approvals.set", {"file": form, "baseHash": first["hash"]})
        self.assertTrue(saved["ok"], saved)
        again = (await ws.request("exec.approvals.get", {}))["payload"]
        for version in (3, 4):
            schemas.validate(version, "ExecApprovalsSnapshot", again)
        self.assertEqual((again["exists"], again["file"]["agents"]["main"]["allowlist"]), (True, [{"pattern": "/usr/bin/uptime"}]))
        self.assertEqual(again["file"]["defaults"], form["defaults"])
        stale = await ws.request("exec.approvals.set", {"file": form, "baseHash": first["hash"]})
        self.assertIn("changed since last load", stale["error"]["message"])


class NodeHostTests(GatewayMixin, TestCase):
    timeout = 60

    async def test_exec_on_node_waits_for_approval(self):
        """host=node: the gateway asks the operator, then the node runs system.run with the approval; node approvals are editable over the gateway."""
        from openclaw.nodehost.runner import NodeHost

        fake, url = await start_fake(self)
        await self.gateway(**exec_config(url, host="node", security="allowlist", ask="always"))
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        host = NodeHost(reactor, state, "127.0.0.1", self.service.port, bridge=False, display_name="box", token=TOKEN, on_status=lambda s: None)
        done = Deferred.fromCoroutine(host.run())
        self.addCleanup(lambda: (host.stop(), done)[1])
        await host.connected
        user, _ = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        approver, _ = await self.connect(connect_params(protocol=4, scopes=["operator.approvals"]))
        node_id = next(iter(self.service.core.nodes.links))
        snapshot = (await user.request("exec.approvals.node.get", {"nodeId": node_id}))["payload"]
        self.assertFalse(snapshot["exists"])
        schemas.validate(4, "ExecApprovalsSnapshot", snapshot)
        stored = (await user.request("exec.approvals.node.set", {"nodeId": node_id, "file": {"version": 1, "defaults": {"security": "allowlist"}}}))["payload"]
        self.assertTrue((state / "exec-approvals.json").exists())
        stale = await user.request("exec.approvals.node.set", {"nodeId": node_id, "file": {"version": 1}, "baseHash": "f" * 64})
        self.assertIn("changed", stale["error"]["message"])
        self.assertTrue(stored["hash"])
        fake.replies += [openai_tool_call("exec", {"command": "echo on-the-node"}, call_id="n1"), openai_text("done")]
        await user.request("chat.send", {"sessionKey": "main", "message": "go", "idempotencyKey": "nr1"})
        requested = (await approver.event("exec.approval.requested"))["payload"]
        self.assertEqual((requested["request"]["host"], requested["request"]["nodeId"]), ("node", node_id))
        await approver.request("exec.approval.resolve", {"id": requested["id"], "decision": "allow-always"})
        while True:
            event = await user.event("chat", timeout=10)
            if event["payload"]["state"] == "final":
                break
        results = [m["content"] for r in fake.requests for m in r["body"]["messages"] if m.get("role") == "tool"]
        self.assertIn("on-the-node", results[0])
        allowlist = json.loads((state / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"]
        self.assertEqual([e["pattern"] for e in allowlist], [ECHO])  # the node remembered what the shell command runs


class CLITests(GatewayMixin, TestCase):
    timeout = 60

    async def cli(self, home, *args, remote=True, stdin=None):
        env = {"PATH": PATH, "HOME": str(home), "PYTHONPATH": str(REPO), "OPENCLAW_STATE_DIR": str(home / ".openclaw")}
        target = ["--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN] if remote else []
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "approvals", *args, *target], env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def test_local_and_gateway_policy(self):
        """get/set/allowlist on the local file by default and on the gateway with --gateway."""
        await self.gateway()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        code, out, err = await self.cli(home, "allowlist", "add", "/usr/bin/uptime", "--agent", "main", remote=False)
        self.assertEqual(code, 0, err)
        local = json.loads((home / ".openclaw" / "exec-approvals.json").read_text())
        self.assertEqual(local["agents"]["main"]["allowlist"][0]["pattern"], "/usr/bin/uptime")
        code, out, err = await self.cli(home, "get", "--json", remote=False)
        self.assertEqual(json.loads(out)["file"]["agents"]["main"]["allowlist"][0]["pattern"], "/usr/bin/uptime")
        code, out, err = await self.cli(home, "allowlist", "add", "/usr/bin/*", "--gateway")
        self.assertEqual(code, 0, err)
        gateway_file = self.service.settings.state_dir / "exec-approvals.json"
        self.assertEqual(json.loads(gateway_file.read_text())["agents"]["*"]["allowlist"][0]["pattern"], "/usr/bin/*")
        code, out, err = await self.cli(home, "get", "--gateway")
        self.assertIn("allow /usr/bin/*", out)
        code, out, err = await self.cli(home, "allowlist", "remove", "/usr/bin/*", "--gateway")
        self.assertEqual(code, 0, err)
        self.assertNotIn("allowlist", json.loads(gateway_file.read_text())["agents"].get("*", {}))
        code, out, err = await self.cli(home, "allowlist", "remove", "/nope", "--gateway")
        self.assertEqual(code, 1)
        self.assertIn("not in the allowlist", err)
        policy = home / "policy.json"
        policy.write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}}))
        code, out, err = await self.cli(home, "set", "--file", str(policy), "--gateway", "--json")
        self.assertEqual((code, json.loads(out)["file"]["defaults"]), (0, {"security": "full", "ask": "off"}), err)
        policy.write_text("[1]")
        code, out, err = await self.cli(home, "set", "--file", str(policy), "--gateway")
        self.assertEqual(code, 1)

    async def test_pending_approve_deny(self):
        """pending lists what waits; approve and deny answer it."""
        await self.gateway()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        asker, _ = await self.connect(connect_params(protocol=4, scopes=["operator.approvals"]))
        first = requesting(asker, "exec.approval.request", {"command": "make deploy", "requireDeliveryRoute": False, "timeoutMs": 30000})
        while not self.service.core.approvals.pending():
            await deferLater(reactor, 0.02, lambda: None)
        code, out, err = await self.cli(home, "pending")
        self.assertEqual(code, 0, err)
        self.assertIn("make deploy", out)
        approval_id = self.service.core.approvals.pending()[0]["id"]
        code, out, err = await self.cli(home, "approve", approval_id, "--always")
        self.assertEqual(code, 0, err)
        self.assertEqual((await first)["payload"]["decision"], "allow-always")
        second = requesting(asker, "exec.approval.request", {"command": "rm x", "requireDeliveryRoute": False})
        while not self.service.core.approvals.pending():
            await deferLater(reactor, 0.02, lambda: None)
        code, out, err = await self.cli(home, "deny", self.service.core.approvals.pending()[0]["id"])
        self.assertEqual(code, 0, err)
        self.assertEqual((await second)["payload"]["decision"], "deny")
        code, out, err = await self.cli(home, "deny", "no-such-id")
        self.assertEqual(code, 1)
        self.assertIn("unknown or expired", err)
