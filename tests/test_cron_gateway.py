"""Scheduled work in a real gateway on loopback with the fake model provider: methods, events, CLI, restart, the agent's tool."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from openclaw.agent import sessions
from openclaw.agent.sessions import SessionStore, Syncer
from openclaw.cron.heartbeat import DEFAULT_PROMPT
from openclaw.cron.schedule import iso_ms
from openclaw.cron.wiring import SessionDelivery
from tests import schemas
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params


async def until(predicate, timeout=15.0, step=0.05):
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("timed out waiting")
        await deferLater(reactor, step, lambda: None)
        waited += step


class _Stores:
    """The agent port's C{store()} over one store."""

    def __init__(self, store):
        self._store = store

    def store(self, agent_id="main"):
        return self._store


class _Events:
    def __init__(self):
        self.sent = []

    def to_session(self, name, payload, session_key, drop_if_slow=False):
        self.sent.append((name, payload["state"], session_key))


class SessionDeliveryTests(TestCase):
    """An announced cron reply keeps the group commit's promise (issue 15): "final" only once it is on disk."""

    async def test_final_after_the_fsync(self):
        """The reply is in the transcript at once; its chat final and the delivery result wait for the fsync, which runs off the reactor."""
        syncer = Syncer(reactor)
        self.addCleanup(syncer.stop)
        store = SessionStore(Path(self.mktemp()).resolve(), syncer=syncer)
        store.resolve("agent:main:main")
        await store.flushed()
        events = _Events()
        gate = threading.Event()
        self.addCleanup(gate.set)
        real = sessions._fsync_path

        def held(path):
            gate.wait(10)
            real(path)

        self.patch(sessions, "_fsync_path", held)
        d = SessionDelivery(_Stores(store), events).deliver("the news", "last", None, "agent:main:main", "r1")
        await deferLater(reactor, 0.2, lambda: None)
        self.assertIn("the news", store.transcript(store.get("agent:main:main")["sessionId"]).path.read_text())
        self.assertFalse(d.called)
        self.assertEqual(events.sent, [])
        gate.set()
        result = await d
        self.assertTrue(result.delivered)
        self.assertEqual(events.sent, [("chat", "final", "agent:main:main")])

    async def test_a_failed_commit_is_not_delivered(self):
        """When the fsync fails the delivery says so, and no final goes out."""
        syncer = Syncer(reactor)
        self.addCleanup(syncer.stop)
        store = SessionStore(Path(self.mktemp()).resolve(), syncer=syncer)
        store.resolve("agent:main:main")
        await store.flushed()
        events = _Events()

        def broken(path):
            raise OSError(5, "Input/output error")

        self.patch(sessions, "_fsync_path", broken)
        result = await SessionDelivery(_Stores(store), events).deliver("the news", "last", None, "agent:main:main", "r1")
        self.assertFalse(result.delivered)
        self.assertIn("Input/output error", result.error)
        self.assertEqual(events.sent, [])
        self.flushLoggedErrors(OSError)


class CronGatewayTests(GatewayMixin, TestCase):
    timeout = 90

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def operator(self, protocol):
        ws, res = await self.connect(connect_params(protocol=protocol))
        self.assertTrue(res["ok"], res)
        return ws

    async def call(self, ws, method, params):
        res = await ws.request(method, params)
        self.assertTrue(res["ok"], res)
        return res["payload"]

    async def test_methods_in_both_generations(self):
        """cron.add/list/get/update/run/runs/remove/status over v3 and v4: each answer in its generation's schema; cron events."""
        await self.gateway(**model_config(self.url))
        for protocol in (3, 4):
            ws = await self.operator(protocol)
            at = int(time.time() * 1000) + 3_600_000
            schedule = {"kind": "at", "atMs": at} if protocol == 3 else {"kind": "at", "at": iso_ms(at)}
            params = {"name": f"p{protocol}", "schedule": schedule, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "say hi"}}
            schemas.validate(protocol, "CronAddParams", params)
            job = await self.call(ws, "cron.add", params)
            schemas.validate(protocol, "CronJob", job)
            self.assertEqual(job["schedule"], schedule if protocol == 3 else {"kind": "at", "at": iso_ms(at)})
            added = await ws.event("cron")
            self.assertEqual((added["payload"]["jobId"], added["payload"]["action"]), (job["id"], "added"))
            listing = await self.call(ws, "cron.list", {})
            for shown in listing["jobs"]:
                schemas.validate(protocol, "CronJob", {k: v for k, v in shown.items() if k != "effectiveAgentId"})
            if protocol == 4:
                self.assertEqual((listing["total"], listing["hasMore"], listing["nextOffset"]), (len(listing["jobs"]), False, None))
            self.assertEqual((await self.call(ws, "cron.get", {"id": job["id"]}))["id"], job["id"])
            updated = await self.call(ws, "cron.update", {"id": job["id"], "patch": {"description": "changed"}})
            schemas.validate(protocol, "CronJob", updated)
            self.fake.replies.append(openai_text("hi there"))
            ran = await self.call(ws, "cron.run", {"id": job["id"], "mode": "force"})
            if protocol == 3:
                self.assertEqual(ran, {"ok": True, "ran": True})
            else:
                self.assertEqual((ran["ok"], ran["enqueued"]), (True, True))
                await until(lambda: not self.service.scheduled.cron.is_running(job["id"]))
            runs = await self.call(ws, "cron.runs", {"id": job["id"], "limit": 5})
            self.assertEqual(len(runs["entries"]), 1)
            schemas.validate(protocol, "CronRunLogEntry", runs["entries"][0])
            self.assertEqual((runs["entries"][0]["status"], runs["entries"][0]["summary"]), ("ok", "hi there"))
            status = await self.call(ws, "cron.status", {})
            self.assertEqual((status["enabled"], status["storePath"]), (True, str(self.service.settings.state_dir / "cron" / "jobs.json")))
            self.assertEqual(await self.call(ws, "cron.remove", {"id": job["id"]}), {"ok": True, "removed": True})
            missing = await ws.request("cron.get", {"id": job["id"]})
            self.assertEqual(missing["error"]["details"], {"code": "CRON_JOB_NOT_FOUND", "jobId": job["id"]})
            bad = await ws.request("cron.add", {**params, "schedule": {"kind": "cron", "expr": "nope"}})
            self.assertEqual(bad["error"]["code"], "INVALID_REQUEST")
            self.assertIn("invalid cron.add params: schedule", bad["error"]["message"])
        self.assertTrue(self.service.running)

    async def test_scheduled_runs_use_the_group_commit(self):
        """
        A cron turn, its announced reply and a heartbeat write transcripts as
        chat turns do (issue 15): fsynced by the Syncer off the reactor
        thread, none inline on it; the run's log line and jobs file too.
        """
        self.fake.replies += [openai_text("cron says hi"), openai_text("HEARTBEAT_OK")]
        await self.gateway(**model_config(self.url))
        ws = await self.operator(4)
        synced: list[tuple[str, bool]] = []
        real = sessions._fsync_path
        real_fsync = os.fsync

        def recording(path):
            synced.append((str(path), threading.current_thread() is threading.main_thread()))
            real(path)

        inline = []

        def fsync(fd):
            if threading.current_thread() is threading.main_thread():
                inline.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        self.patch(sessions, "_fsync_path", recording)
        self.patch(sessions.os, "fsync", fsync)
        at = int(time.time() * 1000) + 3_600_000
        params = {"name": "news", "schedule": {"kind": "at", "at": iso_ms(at)}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "the news"}, "delivery": {"mode": "announce"}}
        job = await self.call(ws, "cron.add", params)  # an edit: written before the answer
        del inline[:]
        self.assertTrue((await self.call(ws, "cron.run", {"id": job["id"], "mode": "force"}))["enqueued"])
        await until(lambda: not self.service.scheduled.cron.is_running(job["id"]))
        self.assertEqual(await self.call(ws, "wake", {"mode": "now", "text": "check"}), {"ok": True})
        await ws.event("heartbeat", timeout=10)
        store = self.service.core.agent.store()
        main = store.get("agent:main:main")
        isolated = store.get(f"agent:main:cron:{job['id']}")
        self.assertIn("cron says hi", store.transcript(main["sessionId"]).path.read_text())  # the announced reply
        paths = {p for p, _ in synced}
        for entry in (main, isolated):
            self.assertIn(entry["sessionFile"], paths)
        self.assertEqual([p for p, on_reactor in synced if on_reactor], [])
        self.assertEqual(inline, [])  # neither transcripts nor the cron run log and jobs file
        state = self.service.settings.state_dir
        runs = (await self.call(ws, "cron.runs", {"id": job["id"]}))["entries"]
        self.assertEqual([r["status"] for r in runs], ["ok"])
        self.assertIn(str(state / "cron" / "runs" / f"{job['id']}.jsonl"), paths)
        await until(lambda: json.loads((state / "cron" / "jobs.json").read_text())["jobs"][0]["state"].get("lastStatus") == "ok")

    async def test_scopes(self):
        """cron.list/status/runs need read; cron.add/update/remove/run need admin; wake needs write."""
        await self.gateway()
        ws, _ = await self.connect(connect_params(protocol=3, scopes=["operator.read"]))
        self.assertTrue((await ws.request("cron.list", {}))["ok"])
        self.assertEqual((await ws.request("cron.get", {"id": "nope"}))["error"]["details"]["code"], "CRON_JOB_NOT_FOUND")
        self.assertTrue((await ws.request("last-heartbeat", {}))["ok"])
        for method, params in (("cron.add", {}), ("cron.remove", {"id": "x"}), ("cron.run", {"id": "x"}), ("set-heartbeats", {"enabled": False}), ("wake", {"mode": "now", "text": "x"})):
            error = (await ws.request(method, params))["error"]
            self.assertIn("missing scope", error["message"], method)

    async def test_status_and_health_report_the_heartbeat(self):
        """status and health show the configured heartbeat, and set-heartbeats switches it."""
        await self.gateway(agents={"defaults": {"heartbeat": {"every": "1h", "target": "none"}}})
        ws = await self.operator(4)
        status = await self.call(ws, "status", {})
        self.assertEqual(status["heartbeat"]["agents"][0], {"agentId": "main", "enabled": True, "every": "1h", "everyMs": 3_600_000})
        health = await self.call(ws, "health", {"probe": True})
        self.assertEqual((health["heartbeatSeconds"], health["agents"][0]["heartbeat"]["target"]), (3600, "none"))
        self.assertEqual(await self.call(ws, "set-heartbeats", {"enabled": False}), {"ok": True, "enabled": False})
        self.assertFalse((await self.call(ws, "status", {}))["heartbeat"]["agents"][0]["enabled"])
        self.assertEqual((await self.call(ws, "health", {"probe": True}))["heartbeatSeconds"], 0)

    async def test_wake_runs_a_heartbeat(self):
        """wake now: the text reaches the main session as a system event with the heartbeat prompt; a heartbeat event; last-heartbeat."""
        self.fake.replies.append(openai_text("HEARTBEAT_OK"))
        await self.gateway(**model_config(self.url))
        ws = await self.operator(3)
        self.assertIsNone(await self.call(ws, "last-heartbeat", {}))
        self.assertEqual(await self.call(ws, "wake", {"mode": "now", "text": "disk almost full"}), {"ok": True})
        event = await ws.event("heartbeat", timeout=10)
        self.assertEqual(event["payload"]["status"], "ok-token")
        self.assertEqual(self.fake.requests[0]["body"]["messages"][-1]["content"], "[System event] disk almost full\n\n" + DEFAULT_PROMPT)
        self.assertEqual((await self.call(ws, "last-heartbeat", {}))["status"], "ok-token")
        chats = [e for e in ws.events if e.get("event") == "chat"]
        self.assertEqual(chats, [])  # an acknowledgement is not shown

    async def test_cron_run_needing_an_approval(self):
        """An isolated job whose exec needs an approval while no approver is connected: denied at once (askFallback), the run log says so and carries the run's usage, and usage.cost prices it."""
        from tests.test_usage import priced, usd

        config = priced(self.url)
        config["tools"] = {"exec": {"host": "gateway", "security": "allowlist", "ask": "always"}}
        await self.gateway(**config)
        self.service.core.exec_gate.timeout = 60.0  # a wait would outlast `until`
        asked = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        self.fake.replies += [openai_tool_call("exec", {"command": "echo nightly"}, call_id="cx", usage=asked), openai_text("The exec was denied.")]
        admin = await self.operator(4)
        at = int(time.time() * 1000) + 1500
        job = await self.call(admin, "cron.add", {"name": "nightly", "schedule": {"kind": "at", "at": iso_ms(at)}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "run echo"}})
        admin.close()  # an admin could answer approvals: nobody is left who can
        cron = self.service.scheduled.cron
        await until(lambda: bool(cron.entries(job["id"])))
        self.assertEqual(self.service.core.approvals.pending(), [])
        entry = cron.entries(job["id"])[-1]
        self.assertEqual((entry["status"], entry["summary"], entry["provider"], entry["model"]), ("ok", "The exec was denied.", "fake", "m1"))
        [note] = entry["diagnostics"]["entries"]
        self.assertEqual((note["source"], note["severity"], note["toolName"]), ("exec", "warn", "exec"))
        self.assertIn("nobody could approve it", note["message"])
        self.assertIn("askFallback=deny", entry["diagnostics"]["summary"])
        self.assertEqual(entry["usage"], {"input_tokens": 111, "output_tokens": 17, "total_tokens": 128})
        reader, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        runs = await self.call(reader, "cron.runs", {"id": job["id"]})
        schemas.validate(4, "CronRunLogEntry", runs["entries"][0])
        self.assertEqual(runs["entries"][0]["diagnostics"], entry["diagnostics"])
        cost = await self.call(reader, "usage.cost", {"days": 1})
        self.assertEqual(cost["totals"]["totalTokens"], 128)
        self.assertAlmostEqual(cost["totals"]["totalCost"], usd({"input": 111, "output": 17}))

    async def test_agent_tool_reminds_the_asking_session(self):
        """The agent's cron tool stores an at job bound to the asking session; when due, the reply lands in that session."""
        self.fake.replies += [openai_tool_call("cron", {"action": "add", "text": "stretch", "in": "1s"}), openai_text("Reminder set."), openai_text("Time to stretch!")]
        await self.gateway(**model_config(self.url))
        ws = await self.operator(4)
        await self.call(ws, "chat.send", {"sessionKey": "dm:alice", "message": "remind me in a second to stretch", "idempotencyKey": "t1"})
        await until(lambda: len(self.fake.requests) >= 3, timeout=20)
        wake = self.fake.requests[2]["body"]["messages"][-1]["content"]
        self.assertEqual(wake, "[System event] Reminder: stretch\n\n" + DEFAULT_PROMPT)
        while True:
            event = await ws.event("chat", timeout=10)
            if event["payload"]["state"] == "final" and event["payload"]["runId"].startswith("heartbeat-"):
                break
        self.assertEqual(event["payload"]["sessionKey"], "agent:main:dm:alice")
        self.assertEqual(event["payload"]["message"]["content"][0]["text"], "Time to stretch!")
        tool_result = self.fake.requests[1]["body"]["messages"][-1]["content"]
        self.assertIn("Reminder set for", tool_result)
        self.assertEqual(self.service.scheduled.cron.jobs, {})  # deleted after its run

    async def test_agent_tool_follows_the_tool_policy(self):
        """The cron tool is offered to the model like the built-in tools, and tools.deny takes it away."""
        for tools, offered in (({}, True), ({"deny": ["cron"]}, False)):
            self.fake.requests.clear()
            self.fake.replies.append(openai_text("ok"))
            await self.gateway(**model_config(self.url), tools=tools)
            ws = await self.operator(4)
            await self.call(ws, "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": f"p{offered}"})
            await until(lambda: self.fake.requests)
            names = [t["function"]["name"] for t in self.fake.requests[0]["body"].get("tools") or []]
            self.assertEqual(("cron" in names, "read" in names), (offered, True), names)
            await until(lambda: not self.service.core.agent.active)
            await self.service.stopService()

    async def cli(self, *args):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def test_reminder_from_cli_survives_restart(self):
        """`openclaw remind` adds a reminder; the gateway restarts before it is due; it fires once after, and its run is in the log."""
        self.fake.replies += [openai_text("Call mom now!"), openai_text("should never be asked")]
        await self.gateway(**model_config(self.url))
        code, out, err = await self.cli("remind", "call mom", "--in", "2s", "--json")
        self.assertEqual(code, 0, err)
        job = json.loads(out)
        schemas.validate(4, "CronJob", job)
        await self.service.stopService()
        self.assertEqual(self.fake.requests, [])
        await deferLater(reactor, 2.5, lambda: None)  # due while the gateway is down
        await self.gateway(**model_config(self.url))
        cron = self.service.scheduled.cron
        await until(lambda: cron.entries(job["id"]) and not cron.is_running(job["id"]))
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(len(self.fake.requests), 1)
        self.assertIn("[System event] Reminder: call mom", self.fake.requests[0]["body"]["messages"][-1]["content"])
        code, out, err = await self.cli("cron", "runs", job["id"], "--json")
        self.assertEqual(code, 0, err)
        [entry] = json.loads(out)["entries"]
        self.assertEqual((entry["status"], entry["summary"]), ("ok", "Reminder: call mom"))
        code, out, _ = await self.cli("cron", "list", "--all", "--json")
        self.assertEqual(json.loads(out)["jobs"], [])  # deleteAfterRun

    async def test_cli_commands(self):
        """cron add/list/get/edit/disable/enable/run/runs/rm/status and system heartbeat, as a user types them."""
        self.fake.replies.append(openai_text("done"))
        await self.gateway(**model_config(self.url))
        code, out, err = await self.cli("cron", "add", "--name", "standup", "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", "--message", "Plan the day", "--wake", "next-heartbeat", "--json")
        self.assertEqual(code, 0, err)
        job = json.loads(out)
        self.assertEqual((job["schedule"], job["sessionTarget"]), ({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"}, "isolated"))
        code, out, _ = await self.cli("cron", "list")
        self.assertIn("standup", out)
        self.assertIn("cron 0 9 * * 1-5 (Europe/Berlin)", out)
        code, out, err = await self.cli("cron", "edit", job["id"], "--every", "2h", "--name", "standup2")
        self.assertEqual(code, 0, err)
        self.assertIn("every 2h", out)
        self.assertEqual((await self.cli("cron", "disable", job["id"]))[0], 0)
        self.assertEqual((await self.cli("cron", "list"))[1], "No cron jobs.\n")
        self.assertEqual((await self.cli("cron", "enable", job["id"]))[0], 0)
        code, out, err = await self.cli("cron", "run", job["id"])
        self.assertEqual(code, 0, err)
        await until(lambda: self.service.scheduled.cron.entries(job["id"]))
        code, out, _ = await self.cli("cron", "runs", job["id"])
        self.assertIn("ok", out)
        code, out, _ = await self.cli("cron", "get", job["id"])
        self.assertEqual(json.loads(out)["name"], "standup2")
        code, out, _ = await self.cli("cron", "status")
        self.assertIn("Cron enabled: 1 jobs", out)
        self.assertEqual((await self.cli("cron", "rm", job["id"]))[1], f"Removed {job['id']}\n")
        code, _, err = await self.cli("cron", "rm", job["id"])
        self.assertEqual((code, err.strip()), (1, f"no cron job {job['id']}"))
        code, _, err = await self.cli("cron", "add", "--name", "x", "--every", "soon", "--system-event", "y")
        self.assertEqual(code, 2)
        self.assertIn("--every", err)
        code, out, _ = await self.cli("system", "heartbeat", "disable")
        self.assertEqual(out, "Heartbeats disabled (until the gateway restarts)\n")
        code, out, _ = await self.cli("system", "heartbeat", "last", "--json")
        self.assertEqual(json.loads(out), None)
