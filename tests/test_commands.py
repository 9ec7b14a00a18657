"""
Chat commands and directives, with fake providers: what reaches the model,
what persists to the session, who may use them (WebSocket and the channel hook).
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.commands import Directive, Sender, parse
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.helpers import capture_log
from tests.wsclient import GatewayMixin, connect_params


def two_models(url, reasoning=False):
    models = [{"id": "m1"}, {"id": "m2", "contextWindow": 8000, "alias": "second", "reasoning": reasoning}]
    return {"models": {"providers": {"fake": {"baseUrl": url, "apiKey": "sk-fake-key-123456", "api": "openai-completions", "models": models}}}, "agents": {"defaults": {"model": {"primary": "fake/m1"}}}}


class ParseTests(SynchronousTestCase):
    def test_directives_and_shortcuts(self):
        """Directives with a valid value and shortcuts are taken out anywhere; the rest keeps its lines; bad values stay text."""
        self.assertEqual(parse("/think high"), parse("/think:high"))
        parsed = parse("/model fake/m2 hello\nworld /v on")
        self.assertEqual((parsed.text, parsed.directives), ("hello\nworld", (Directive("model", "fake/m2"), Directive("verbose", "on"))))
        self.assertEqual(parse("hey /status there").shortcuts, ("status",))
        self.assertEqual(parse("hey /status there").text, "hey there")
        self.assertEqual(parse("/think").bad, Directive("think", None))
        self.assertEqual(parse("/think banana").bad, Directive("think", "banana"))
        self.assertEqual(parse("/think about it more").text, "/think about it more")
        self.assertEqual(parse("ls /usr/bin").text, "ls /usr/bin")
        self.assertEqual(parse("/queue interrupt").directives, (Directive("queue", "interrupt"),))


class CommandTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def start(self, reasoning=False, **extra):
        await self.gateway(**{**two_models(self.url, reasoning), **extra})
        self.ws, res = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        self.assertTrue(res["ok"], res)
        self.counter = 0

    async def say(self, message, key="main", **params):
        """chat.send, then the run's final (or error) chat event's text."""
        self.counter += 1
        run_id = f"c{self.counter}"
        res = await self.ws.request("chat.send", {"sessionKey": key, "message": message, "idempotencyKey": run_id, **params})
        self.assertEqual(res["payload"]["status"], "started", res)
        while True:
            event = (await self.ws.event("chat", timeout=10))["payload"]
            if event["runId"] == run_id and event["state"] in ("final", "error", "aborted"):
                if event["state"] == "final":
                    return "".join(p.get("text", "") for p in (event.get("message") or {}).get("content", []))
                return event

    def entry(self, key="agent:main:main"):
        return self.service.core.agent.store("main").get(key) or {}

    async def test_directive_only_model_persists(self):
        """`/model fake/m2` alone: no model call, the session keeps it, the next run uses m2; `/model default` undoes it."""
        await self.start()
        reply = await self.say("/model fake/m2")
        self.assertEqual(reply, "Model set to fake/m2.")
        self.assertEqual(self.fake.requests, [])
        self.assertEqual(self.entry()["modelOverride"], "fake/m2")
        row = (await self.ws.request("sessions.list"))["payload"]["sessions"][0]
        self.assertEqual(row["modelOverride"], "fake/m2")
        self.fake.replies.append(openai_text("from two"))
        self.assertEqual(await self.say("hello"), "from two")
        self.assertEqual(self.fake.requests[-1]["body"]["model"], "m2")
        self.assertEqual(self.fake.requests[-1]["body"]["messages"][-1], {"role": "user", "content": "hello"})
        listing = await self.say("/model list")
        self.assertIn("1. fake/m1", listing)
        self.assertIn("2. fake/m2 ← current", listing)
        self.assertEqual(await self.say("/model 1"), "Model set to fake/m1.")
        self.assertEqual(await self.say("/model second"), "Model set to fake/m2.")  # an alias
        self.assertIn("Unknown or unavailable model", await self.say("/model nope/nothing"))
        self.assertEqual(self.entry()["modelOverride"], "fake/m2")
        self.assertIn("Model reset to the default (fake/m1)", await self.say("/model default"))
        self.fake.replies.append(openai_text("from one"))
        await self.say("again")
        self.assertEqual(self.fake.requests[-1]["body"]["model"], "m1")

    async def test_inline_directives_apply_to_one_turn(self):
        """Directives inside a message change that turn only, and are not shown to the model."""
        await self.start(reasoning=True)
        self.fake.replies += [openai_text("a"), openai_text("b")]
        await self.say("/model fake/m2 /think high explain it")
        sent = self.fake.requests[-1]["body"]
        self.assertEqual((sent["model"], sent["reasoning_effort"], sent["messages"][-1]["content"]), ("m2", "high", "explain it"))
        self.assertNotIn("modelOverride", self.entry())
        self.assertNotIn("thinkingLevel", self.entry())
        await self.say("plain")
        self.assertEqual(self.fake.requests[-1]["body"]["model"], "m1")

    async def test_think_verbose_queue_persist(self):
        """Directive-only /think, /verbose, /queue persist like sessions.patch and are acknowledged; alone they show the setting."""
        await self.start(reasoning=True)
        self.assertEqual(await self.say("/think high /verbose on"), "Thinking level set to high.\nVerbose on: tool calls are shown.")
        self.assertEqual((self.entry()["thinkingLevel"], self.entry()["verboseLevel"]), ("high", "on"))
        self.assertEqual(await self.say("/queue interrupt"), "Queue mode set to interrupt.")
        self.assertEqual(self.entry()["queueMode"], "interrupt")
        self.assertEqual(await self.say("/queue reset"), "Queue mode set to followup (default).")
        self.assertIsNone(self.entry().get("queueMode"))
        self.assertIn("Thinking level: high", await self.say("/think"))
        self.assertIn("'banana' is not a level", await self.say("/think banana"))
        self.assertEqual(self.fake.requests, [])
        await self.say("/model fake/m2")
        self.fake.replies.append(openai_text("deep"))
        await self.say("think hard")
        self.assertEqual(self.fake.requests[-1]["body"]["reasoning_effort"], "high")

    async def send(self, message, run_id):
        res = await self.ws.request("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": run_id})
        self.assertEqual(res["payload"]["status"], "started", res)

    async def finals(self, *run_ids):
        """The last chat event of each run, in any order."""
        seen = {}
        while set(run_ids) - set(seen):
            event = (await self.ws.event("chat", timeout=10))["payload"]
            if event["runId"] in run_ids and event["state"] in ("final", "error", "aborted"):
                seen[event["runId"]] = event
        return [seen[r] for r in run_ids]

    async def test_queue_collect(self):
        """/queue collect: messages sent while a run goes become one turn after it; each of their runs ends, the first with the reply."""
        await self.start()
        self.assertEqual(await self.say("/queue collect"), "Queue mode set to collect.")
        slow = openai_text("first answer")
        slow.delay = 0.3
        self.fake.replies += [slow, openai_text("both answered")]
        await self.send("first", "q1")
        while not self.fake.requests:
            await deferLater(reactor, 0.01, lambda: None)
        await self.send("second", "q2")
        await self.send("third", "q3")
        first, collected, merged = await self.finals("q1", "q2", "q3")
        self.assertEqual(first["message"]["content"][0]["text"], "first answer")
        self.assertEqual(collected["message"]["content"][0]["text"], "both answered")
        self.assertNotIn("message", merged)
        self.assertEqual(len(self.fake.requests), 2)
        asked = self.fake.requests[1]["body"]["messages"][-1]["content"]
        self.assertIn("Queued #1\nsecond", asked)
        self.assertIn("Queued #2\nthird", asked)
        self.assertFalse(self.service.core.agent.busy("agent:main:main"))

    async def test_queue_steer(self):
        """/queue steer: a message sent while a run is in its tool loop joins that run at the next tool boundary; sent after the last one, it waits its turn."""
        await self.start()
        await self.say("/queue steer")
        slow = openai_tool_call("sessions_list", {}, call_id="s1")
        slow.delay = 0.3
        self.fake.replies += [slow, openai_text("steered answer"), openai_text("later answer")]
        await self.send("look around", "s1")
        while not self.fake.requests:
            await deferLater(reactor, 0.01, lambda: None)
        await self.send("and count them", "s2")
        steered, merged = await self.finals("s1", "s2")
        self.assertEqual(steered["message"]["content"][0]["text"], "steered answer")
        self.assertNotIn("message", merged)
        second = self.fake.requests[1]["body"]["messages"]
        self.assertEqual([m["role"] for m in second[-2:]], ["tool", "user"])
        self.assertEqual(second[-1]["content"], "and count them")
        self.assertEqual(len(self.fake.requests), 2)
        slow = openai_text("no tools here")
        slow.delay = 0.3
        self.fake.replies.insert(0, slow)
        await self.send("plain question", "s3")
        while len(self.fake.requests) < 3:
            await deferLater(reactor, 0.01, lambda: None)
        await self.send("too late to steer", "s4")
        plain, late = await self.finals("s3", "s4")
        self.assertEqual(plain["message"]["content"][0]["text"], "no tools here")
        self.assertEqual(late["message"]["content"][0]["text"], "later answer")

    async def test_unauthorized_text_reaches_the_model(self):
        """The channel hook: an unpaired sender's /status goes to the model as text; a paired sender's does not."""
        await self.start()
        commands = self.service.core.commands
        self.fake.replies.append(openai_text("I am just a model"))
        run = commands.start("telegram:dm:9", "/status", "t1", Sender(authorized=False, id="telegram:9", surface="telegram"))
        result = await run.finished()
        self.assertEqual((result.status, result.text), ("ok", "I am just a model"))
        self.assertEqual(self.fake.requests[-1]["body"]["messages"][-1], {"role": "user", "content": "/status"})
        calls = len(self.fake.requests)
        paired = await commands.start("telegram:dm:9", "/status", "t2", Sender(authorized=True, id="telegram:9", surface="telegram")).finished()
        self.assertIn("Session: agent:main:telegram:dm:9", paired.text)
        self.assertEqual(len(self.fake.requests), calls)
        whoami = await commands.start("telegram:dm:9", "/whoami", "t3", Sender(authorized=True, id="telegram:9", name="Ann", surface="telegram")).finished()
        self.assertIn("You are Ann (id telegram:9) on telegram", whoami.text)

    async def test_access_settings(self):
        """commands.text: false turns text commands off on native-command channels (not the WebSocket); useAccessGroups: false lets anyone."""
        await self.start(commands={"text": False, "useAccessGroups": False})
        commands = self.service.core.commands
        anyone = await commands.start("x", "/help", "a1", Sender(authorized=False, surface="signal")).finished()
        self.assertIn("/status", anyone.text)
        self.fake.replies.append(openai_text("plain"))
        native = await commands.start("x", "/help", "a2", Sender(authorized=True, surface="discord")).finished()
        self.assertEqual(native.text, "plain")
        self.assertIn("/compact", await self.say("/help"))

    async def test_status_and_inline_shortcut(self):
        """/status names model, tokens, context, queue and session; inside a message it opens the reply and the rest goes to the model."""
        await self.start()
        await self.say("/model fake/m2")
        self.fake.replies.append(openai_text("ok"))
        await self.say("hi")
        status = await self.say("/status")
        self.assertIn("Session: agent:main:main (id ", status)
        self.assertIn("Model: fake/m2 (chosen for this session)", status)
        self.assertIn("Context: 11 of 8000 tokens (0%)", status)
        self.assertIn("Tokens: 11 in / 7 out over 1 replies", status)
        self.assertIn("Queue: followup · idle", status)
        self.fake.replies.append(openai_text("It is noon."))
        reply = await self.say("what time /status is it")
        self.assertTrue(reply.startswith("Session: agent:main:main"), reply)
        self.assertTrue(reply.endswith("It is noon."), reply)
        self.assertEqual(self.fake.requests[-1]["body"]["messages"][-1]["content"], "what time is it")
        history = (await self.ws.request("chat.history", {"sessionKey": "main"}))["payload"]["messages"]
        self.assertEqual(history[-1]["content"][0]["text"], "It is noon.")  # the transcript keeps the model's words only
        self.assertIn("/whoami", await self.say("/commands"))
        self.assertIn("suppressed", await self.say_literal())

    async def say_literal(self):
        self.fake.replies.append(openai_text("suppressed"))
        return await self.say("/help", suppressCommandInterpretation=True)

    async def test_stop(self):
        """/stop aborts the running run (and what waits) and says so."""
        await self.start()
        hanging = openai_text("slow")
        hanging.chunks = hanging.chunks[:2]
        hanging.hang = True
        self.fake.replies.append(hanging)
        await self.ws.request("chat.send", {"sessionKey": "main", "message": "long job", "idempotencyKey": "long"})
        while not self.fake.requests:
            await deferLater(reactor, 0.01, lambda: None)
        await deferLater(reactor, 0.1, lambda: None)  # the stream has started
        self.assertEqual(await self.say("/stop"), "Stopped.")
        self.assertFalse(self.service.core.agent.busy("agent:main:main"))
        self.assertEqual(await self.say("/stop"), "Nothing is running.")

    async def test_stop_at_once(self):
        """/stop right after a message: the run ends aborted, its cancelled request is not logged as a crash, nothing is retried."""
        log = capture_log(self)
        await self.start()
        hanging = openai_text("slow")
        hanging.chunks = hanging.chunks[:2]
        hanging.hang = True
        self.fake.replies += [hanging, openai_text("never asked")]
        await self.ws.request("chat.send", {"sessionKey": "main", "message": "long job", "idempotencyKey": "long"})
        self.assertEqual(await self.say("/stop"), "Stopped.")
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(self.service.core.agent.lookup("long").status, "aborted")
        self.assertLessEqual(len(self.fake.requests), 1)  # stopped before or after its request went out; never asked again
        self.assertEqual(log.failures(), [])

    async def test_compact_with_instructions(self):
        """/compact [instructions] summarises with the model, instructions included, in the session's turn."""
        await self.start()
        for i in range(4):
            self.fake.replies.append(openai_text(f"answer {i}"))
            await self.say(f"question {i}")
        # the memory flush's silent turn comes first (agent/memory/flush.py), then the summary
        self.fake.replies += [openai_text("nothing to note"), openai_text("the summary")]
        reply = await self.say("/compact keep the names")
        self.assertIn("Compacted", reply)
        self.assertIn("keep the names", self.fake.requests[-1]["body"]["messages"][-1]["content"])
        self.assertEqual(self.entry()["compactionCount"], 1)

    async def test_agent_method_and_errors(self):
        """`agent` answers a command in its final payload; a refused /usage mode is an error run."""
        await self.start()
        self.ws.protocol.send_json({"type": "req", "id": "a1", "method": "agent", "params": {"message": "/help", "idempotencyKey": "ag1"}})
        await self.ws.response("a1")
        final = await self.ws.response("a1")
        self.assertIn("/status", final["payload"]["result"]["payloads"][0]["text"])
        error = await self.say("/usage sideways")
        self.assertEqual(error["state"], "error")
        self.assertIn("Unknown /usage mode", error["errorMessage"])

    async def test_node_text_is_plain(self):
        """A node's agent.request (not an operator) reaches the model as written."""
        await self.start()
        self.fake.replies.append(openai_text("fine"))
        handled = self.service.core.node_events.handle("n1", "agent.request", {"message": "/status"}, None)
        self.assertTrue(handled["handled"])
        await self.service.core.agent.lookup(handled["runId"]).finished()
        self.assertEqual(self.fake.requests[-1]["body"]["messages"][-1]["content"], "/status")

