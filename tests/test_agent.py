"""The agent runtime end to end: WebSocket → fake provider → events → transcript (spec §13 items 31-34)."""

from __future__ import annotations


import threading

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from openclaw.agent import sessions
from openclaw.agent.sessions import SessionStore
from openclaw.protocol.versions import V3
from tests import schemas
from tests.fakes import Reply, openai_text, start_fake
from tests.helpers import capture_log
from tests.wsclient import GatewayMixin, connect_params


def model_config(url, fallback_url=None):
    providers = {"fake": {"baseUrl": url, "apiKey": "sk-fake-key-123456", "api": "openai-completions", "models": [{"id": "m1"}]}}
    model = {"primary": "fake/m1"}
    if fallback_url:
        providers["backup"] = {"baseUrl": fallback_url, "api": "openai-completions", "models": [{"id": "m2"}]}
        model["fallbacks"] = ["backup/m2"]
    return {"models": {"providers": providers}, "agents": {"defaults": {"model": model}}}


class AgentTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def operator(self, scopes=("operator.admin",)):
        ws, res = await self.connect(connect_params(protocol=3, scopes=list(scopes)))
        self.assertTrue(res["ok"], res)
        return ws

    async def chat_until(self, ws, run_id, terminal=("final", "error", "aborted")):
        events = []
        while True:
            event = await ws.event("chat")
            if event["payload"]["runId"] != run_id:
                continue
            events.append(event["payload"])
            if event["payload"]["state"] in terminal:
                return events

    async def test_chat_send_stream_history(self):
        """33. chat.send → started; cumulative deltas ≥150 ms apart; final; transcript; chat.history."""
        slow = openai_text("Hel", "lo ", "the", "re", "!", " ok")
        slow.delay = 0.06
        self.fake.replies.append(slow)
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        res = await ws.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "c1"})
        self.assertEqual(res["payload"], {"runId": "c1", "status": "started"})
        events = await self.chat_until(ws, "c1")
        for payload in events:
            schemas.validate(3, "ChatEvent", payload)
        deltas = [e for e in events if e["state"] == "delta"]
        final = events[-1]
        self.assertEqual(final["state"], "final")
        self.assertEqual(final["message"]["content"][0]["text"], "Hello there! ok")
        self.assertTrue(deltas)
        texts = [d["message"]["content"][0]["text"] for d in deltas]
        self.assertTrue(all("Hello there! ok".startswith(t) for t in texts))  # cumulative
        self.assertLess(len(deltas), 6)  # throttled
        history = (await ws.request("chat.history", {"sessionKey": "main"}))["payload"]
        self.assertEqual([(m["role"], m["content"][0]["text"]) for m in history["messages"]], [("user", "hi"), ("assistant", "Hello there! ok")])
        sent = self.fake.requests[0]["body"]["messages"]
        self.assertEqual(sent[-1], {"role": "user", "content": "hi"})
        store = SessionStore(self.service.settings.state_dir)
        self.assertEqual(len(store.messages("agent:main:main")), 2)

    async def test_acks_and_finals_wait_for_the_disk(self):
        """
        chat.send's "started" and the run's "final" go out only once the
        transcript lines they stand for are fsynced (the fsyncs run off the
        reactor thread, which keeps serving meanwhile).
        """
        self.fake.replies.append(openai_text("stored", " reply"))
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        gate = threading.Event()
        self.addCleanup(gate.set)
        real = sessions._fsync_path

        def held(path):
            gate.wait(10)
            real(path)

        self.patch(sessions, "_fsync_path", held)
        ws.protocol.send_json({"type": "req", "id": "s1", "method": "chat.send", "params": {"sessionKey": "main", "message": "keep me", "idempotencyKey": "d1"}})
        self.assertTrue((await ws.request("health"))["ok"])  # the reactor is not blocked
        await deferLater(reactor, 0.3, lambda: None)
        seen = [*ws.events, *ws.factory.frames.pending]
        early = [f for f in seen if f and (f.get("id") == "s1" or (f.get("event") == "chat" and f["payload"].get("state") == "final"))]
        self.assertEqual(early, [])
        transcript = SessionStore(self.service.settings.state_dir).transcript(self.service.core.agent.store().get("agent:main:main")["sessionId"]).path
        self.assertIn("keep me", transcript.read_text())  # written already, only its fsync is held
        gate.set()
        self.assertEqual((await ws.response("s1"))["payload"], {"runId": "d1", "status": "started"})
        events = await self.chat_until(ws, "d1")
        self.assertEqual(events[-1]["state"], "final")
        self.assertIn("stored reply", transcript.read_text())

    async def test_model_requests_reuse_a_connection(self):
        """Consecutive model requests go over one kept-alive connection (no TCP/TLS setup per turn); stop closes it."""
        self.fake.replies.extend([openai_text("one"), openai_text("two")])
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        for n in (1, 2):
            await ws.request("chat.send", {"sessionKey": "main", "message": f"m{n}", "idempotencyKey": f"p{n}"})
            self.assertEqual((await self.chat_until(ws, f"p{n}"))[-1]["state"], "final")
        ports = {r.getClientAddress().port for r in self.fake.open}
        self.assertEqual(len(self.fake.open), 2)
        self.assertEqual(len(ports), 1)

    async def test_agent_two_responses_and_replay(self):
        """31/32. agent: accepted then final (same id); per-run seq from 1 with lifecycle start/end; a repeat starts nothing."""
        self.fake.replies.append(openai_text("done"))
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        ws.protocol.send_json({"type": "req", "id": "a1", "method": "agent", "params": {"message": "go", "idempotencyKey": "k1"}})
        first = await ws.response("a1")
        self.assertEqual((first["payload"]["runId"], first["payload"]["status"]), ("k1", "accepted"))
        self.assertIsInstance(first["payload"]["acceptedAt"], int)
        second = await ws.response("a1")
        final = second["payload"]
        self.assertEqual((final["runId"], final["status"], final["summary"]), ("k1", "ok", "completed"))
        self.assertEqual(final["result"]["payloads"], [{"text": "done"}])
        agent_events = [e["payload"] for e in ws.events if e.get("event") == "agent" and e["payload"]["runId"] == "k1"]
        self.assertEqual([e["seq"] for e in agent_events], list(range(1, len(agent_events) + 1)))
        self.assertEqual((agent_events[0]["stream"], agent_events[0]["data"]["phase"]), ("lifecycle", "start"))
        self.assertEqual((agent_events[-1]["stream"], agent_events[-1]["data"]["phase"]), ("lifecycle", "end"))
        for e in agent_events:
            schemas.validate(3, "AgentEvent", {k: v for k, v in e.items() if k != "sessionKey"})
        ws.protocol.send_json({"type": "req", "id": "a2", "method": "agent", "params": {"message": "go", "idempotencyKey": "k1"}})
        again = await ws.response("a2")
        self.assertEqual(again["payload"]["runId"], "k1")
        self.assertEqual((await ws.response("a2"))["payload"]["status"], "ok")
        self.assertEqual(len(self.fake.requests), 1)
        waited = await ws.request("agent.wait", {"runId": "k1"})
        self.assertEqual(waited["payload"]["status"], "ok")
        self.assertEqual((await ws.request("agent.wait", {"runId": "nope"}))["error"]["message"], "agent run was not found")

    async def test_abort_mid_stream(self):
        """34. chat.abort during a run: aborted:true with the runId; no final afterwards."""
        hanging = openai_text("partial", "never")
        hanging.chunks = hanging.chunks[:2]
        hanging.hang = True
        self.fake.replies.append(hanging)
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        await ws.request("chat.send", {"sessionKey": "main", "message": "long", "idempotencyKey": "r1"})
        while not self.fake.requests:
            await deferLater(reactor, 0.01, lambda: None)
        await deferLater(reactor, 0.1, lambda: None)
        res = await ws.request("chat.abort", {"sessionKey": "main", "runId": "r1"})
        self.assertEqual(res["payload"], {"ok": True, "aborted": True, "runIds": ["r1"]})
        events = await self.chat_until(ws, "r1")
        self.assertEqual(events[-1]["state"], "aborted")
        self.assertNotIn("final", [e["state"] for e in events])
        other = await ws.request("chat.abort", {"sessionKey": "other", "runId": "r1"})
        self.assertEqual(other["error"]["message"], "runId does not match sessionKey")

    async def test_no_provider(self):
        """No provider configured: the run ends with a clear error saying what to set."""
        await self.gateway()
        ws = await self.operator()
        await ws.request("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "n1"})
        events = await self.chat_until(ws, "n1")
        self.assertEqual(events[-1]["state"], "error")
        self.assertIn("agents.defaults.model.primary", events[-1]["errorMessage"])

    async def test_failover(self):
        """A primary that fails before output falls back to the next model."""
        backup, backup_url = await start_fake(self)
        self.fake.replies.append(Reply([b'{"error":{"message":"bad model"}}'], status=400))
        backup.replies.append(openai_text("from backup"))
        await self.gateway(**model_config(self.url, backup_url))
        ws = await self.operator()
        ws.protocol.send_json({"type": "req", "id": "f", "method": "agent", "params": {"message": "x", "idempotencyKey": "f1"}})
        await ws.response("f")
        final = (await ws.response("f"))["payload"]
        self.assertEqual(final["result"]["payloads"], [{"text": "from backup"}])
        self.assertEqual(final["result"]["meta"]["agentMeta"]["model"], "backup/m2")

    async def test_timeout(self):
        """A run past its timeout ends with status timeout."""
        hanging = openai_text("x")
        hanging.chunks = hanging.chunks[:1]
        hanging.hang = True
        self.fake.replies.append(hanging)
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        ws.protocol.send_json({"type": "req", "id": "t", "method": "agent", "params": {"message": "x", "idempotencyKey": "t1", "timeout": 1}})
        await ws.response("t")
        final = (await ws.response("t"))["payload"]
        self.assertEqual(final["status"], "timeout")

    async def test_reset_and_restart(self):
        """/new starts a new session; after a gateway restart the session (and its history) continues."""
        self.fake.replies += [openai_text("one"), openai_text("two")]
        service = await self.gateway(**model_config(self.url))
        ws = await self.operator()
        await ws.request("chat.send", {"sessionKey": "main", "message": "first", "idempotencyKey": "s1"})
        await self.chat_until(ws, "s1")
        await service.stopService()
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        await ws.request("chat.send", {"sessionKey": "main", "message": "second", "idempotencyKey": "s2"})
        await self.chat_until(ws, "s2")
        sent = [m["content"] for m in self.fake.requests[1]["body"]["messages"] if m["role"] != "system"]
        self.assertEqual(sent, ["first", "one", "second"])
        await ws.request("chat.send", {"sessionKey": "main", "message": "/new", "idempotencyKey": "s3"})
        events = await self.chat_until(ws, "s3")
        self.assertEqual(events[-1]["message"]["content"][0]["text"], "New session started.")
        self.assertEqual((await ws.request("chat.history", {"sessionKey": "main"}))["payload"]["messages"], [])

    async def test_sessions_methods(self):
        """sessions.list/preview/patch/reset/delete/resolve over a real session."""
        self.fake.replies.append(openai_text("hello"))
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        await ws.request("chat.send", {"sessionKey": "telegram:dm:42", "message": "hi", "idempotencyKey": "q1"})
        await self.chat_until(ws, "q1")
        listing = (await ws.request("sessions.list"))["payload"]
        self.assertEqual([r["key"] for r in listing["sessions"]], ["agent:main:telegram:dm:42"])
        preview = (await ws.request("sessions.preview", {"keys": ["telegram:dm:42", "nope"]}))["payload"]["previews"]
        self.assertEqual([p["status"] for p in preview], ["ok", "missing"])
        patched = (await ws.request("sessions.patch", {"key": "telegram:dm:42", "label": "Alice"}))["payload"]
        self.assertEqual(patched["entry"]["label"], "Alice")
        self.assertEqual((await ws.request("sessions.resolve", {"label": "Alice"}))["payload"]["key"], "agent:main:telegram:dm:42")
        before = patched["entry"]["sessionId"]
        reset = (await ws.request("sessions.reset", {"key": "telegram:dm:42"}))["payload"]
        self.assertNotEqual(reset["entry"]["sessionId"], before)
        self.assertTrue((await ws.request("sessions.delete", {"key": "telegram:dm:42"}))["payload"]["deleted"])
        self.assertEqual((await ws.request("sessions.list"))["payload"]["sessions"], [])
        usage = (await ws.request("usage.status"))["payload"]
        self.assertEqual([(p["provider"], p["windows"], p["models"][0]["model"], p["input"], p["output"]) for p in usage["providers"]], [("fake", [], "m1", 11, 7)])

    async def test_run_survives_a_closing_client(self):
        """
        A run whose events hit a connection autobahn is already closing (here:
        failed 1009 and not answering the close handshake) still ends with
        `final` for the other clients; nothing crashes, nothing is logged as an error.
        """
        log = capture_log(self)
        slow = openai_text("one ", "two ", "three ", "four")
        slow.delay = 0.02
        self.fake.replies.append(slow)
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        core = self.service.core
        first = set(core.connections)
        other = await self.operator()
        [closing] = set(core.connections) - first
        closing.transport.closeHandshakeTimeout = 30  # keep the window open however slow this machine is
        other.protocol.transport.pauseProducing()  # never answers our close frame
        other.protocol.sendMessage(b"x" * (V3.max_payload + 1))  # autobahn fails it: 1009, state CLOSING
        while closing.transport.state != closing.transport.STATE_CLOSING:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(core.connections), 2)  # still listed: connectionLost has not come
        await ws.request("chat.send", {"sessionKey": "main", "message": "count", "idempotencyKey": "w1"})
        events = await self.chat_until(ws, "w1")
        self.assertEqual(events[-1]["state"], "final", events[-1])
        self.assertEqual(events[-1]["message"]["content"][0]["text"], "one two three four")
        self.assertEqual(len(core.connections), 2)  # the run really ran inside the window
        self.assertGreater(core.connections.stats.dropped, 0)
        waited = await ws.request("agent.wait", {"runId": "w1"})
        self.assertEqual(waited["payload"]["status"], "ok")
        other.protocol.transport.resumeProducing()
        await other.closed
        self.assertEqual(log.failures(), [])

    async def test_failed_run_is_not_ok(self):
        """A failed run's final `agent` answer is ok:false UNAVAILABLE with {runId, status:"error", summary} (upstream's shape), v3 and v4."""
        for protocol in (3, 4):
            self.fake.replies.append(Reply([b'{"error":{"message":"model exploded"}}'], status=400))
        await self.gateway(**model_config(self.url))
        for protocol in (3, 4):
            ws, _ = await self.connect(connect_params(protocol=protocol, scopes=["operator.write"]))
            ws.protocol.send_json({"type": "req", "id": "a", "method": "agent", "params": {"message": "x", "idempotencyKey": f"bad{protocol}"}})
            accepted = await ws.response("a")
            self.assertEqual(accepted["payload"]["status"], "accepted")
            final = await ws.response("a")
            schemas.validate(protocol, "ResponseFrame", final)
            self.assertFalse(final["ok"], final)
            self.assertEqual(final["error"]["code"], "UNAVAILABLE")
            self.assertIn("model exploded", final["error"]["message"])
            self.assertEqual(final["payload"], {"runId": f"bad{protocol}", "status": "error", "summary": final["error"]["message"]})
            ws.protocol.send_json({"type": "req", "id": "again", "method": "agent", "params": {"message": "x", "idempotencyKey": f"bad{protocol}"}})
            await ws.response("again")
            self.assertFalse((await ws.response("again"))["ok"])  # a replay answers the same way
            waited = await ws.request("agent.wait", {"runId": f"bad{protocol}"})
            self.assertEqual((waited["ok"], waited["payload"]["status"]), (True, "error"))  # agent.wait reports, it does not fail

    async def test_scopes(self):
        """chat.send needs write; chat.history read; a reader cannot send."""
        await self.gateway(**model_config(self.url))
        ws, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        self.assertTrue((await ws.request("chat.history", {"sessionKey": "main"}))["ok"])
        res = await ws.request("chat.send", {"sessionKey": "main", "message": "x", "idempotencyKey": "z"})
        self.assertEqual(res["error"]["message"], "missing scope: operator.write")


class MoreMethodTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def test_wake_and_system_events(self):
        """wake now runs a heartbeat in the main session with the text as a system event; next-heartbeat and system-event reach the next run's prompt."""
        from openclaw.cron.heartbeat import DEFAULT_PROMPT

        self.fake.replies += [openai_text("awake"), openai_text("noted")]
        await self.gateway(**model_config(self.url))
        ws, _ = await self.connect()
        self.assertEqual((await ws.request("wake", {"mode": "now", "text": "check mail"}))["payload"], {"ok": True})
        while len(self.fake.requests) < 1 or self.service.core.agent.active:
            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(self.fake.requests[0]["body"]["messages"][-1]["content"], "[System event] check mail\n\n" + DEFAULT_PROMPT)
        await ws.request("wake", {"mode": "next-heartbeat", "text": "backup finished"})
        await ws.request("system-event", {"text": "node came online"})
        ws.protocol.send_json({"type": "req", "id": "n", "method": "agent", "params": {"message": "hello", "idempotencyKey": "w2"}})
        await ws.response("n")
        await ws.response("n")
        prompt = self.fake.requests[1]["body"]["messages"][-1]["content"]
        self.assertEqual(prompt, "[System event] backup finished\n[System event] node came online\n\nhello")

    async def test_send_without_channels(self):
        """send names the channel it cannot reach."""
        await self.gateway()
        ws, _ = await self.connect()
        error = (await ws.request("send", {"to": "+15551234", "message": "hi", "channel": "whatsapp", "idempotencyKey": "s"}))["error"]
        self.assertEqual(error["code"], "INVALID_REQUEST")
        self.assertIn("channel 'whatsapp' is not configured (set channels.whatsapp)", error["message"])

    async def test_compact(self):
        """sessions.compact summarises older messages with the model; history then starts with the summary."""
        # After the four answers: the pre-compaction memory flush turn (nothing to store), then the summary.
        self.fake.replies += [openai_text(f"answer {i}") for i in range(4)] + [openai_text("NO_REPLY"), openai_text("SUMMARY: four questions answered")]
        await self.gateway(**model_config(self.url))
        ws, _ = await self.connect()
        for i in range(4):
            ws.protocol.send_json({"type": "req", "id": f"q{i}", "method": "agent", "params": {"message": f"question {i}", "idempotencyKey": f"q{i}"}})
            await ws.response(f"q{i}")
            await ws.response(f"q{i}")
        result = (await ws.request("sessions.compact", {"key": "main", "maxLines": 2}))["payload"]
        self.assertEqual((result["compacted"], result["kept"]), (True, 2))
        messages = self.service.core.agent.store().messages("agent:main:main")
        texts = [m["content"][0]["text"] for m in messages]
        self.assertEqual(texts, ["Summary of the earlier conversation:\nSUMMARY: four questions answered", "question 3", "answer 3"])

    def test_daily_reset_policy(self):
        """A session last used before today's 04:00 starts afresh; idleMinutes too; mode off never."""
        import time as _time

        from openclaw.agent.sessions import reset_due
        from openclaw.config.settings import SessionPolicy

        now = _time.mktime((2026, 11, 24, 10, 0, 0, 0, 0, -1))
        before_four = {"updatedAt": int(_time.mktime((2026, 11, 24, 3, 0, 0, 0, 0, -1)) * 1000)}
        after_four = {"updatedAt": int(_time.mktime((2026, 11, 24, 5, 0, 0, 0, 0, -1)) * 1000)}
        self.assertTrue(reset_due(before_four, now, SessionPolicy()))
        self.assertFalse(reset_due(after_four, now, SessionPolicy()))
        self.assertFalse(reset_due(before_four, now, SessionPolicy(reset_mode="off")))
        self.assertTrue(reset_due(after_four, now, SessionPolicy(reset_mode="off", idle_minutes=60)))
