"""
The methods the Control UIs read besides the core ones, over a real
connection: chat views (chat.startup, chat.metadata, sessions.describe,
sessions.branches.list), session feeds and their events, this host
(system.info, environments.list), the inventory (plugins.list,
plugins.catalog.browse), model auth status, and the absent features.
Results are held against upstream's v4 schemas where they have them.
"""

from __future__ import annotations

import gc

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.chatview import CHAT_VIEW_METHODS
from openclaw.gateway.absent import ABSENT_METHODS
from openclaw.gateway.hostinfo import HOST_METHODS, installed, meminfo
from openclaw.gateway.inventory import INVENTORY_METHODS
from openclaw.gateway.scopes import required_scope
from openclaw.gateway.subscriptions import FEED_METHODS, MAX_FOLLOWED
from openclaw.protocol.versions import negotiate
from tests import schemas
from tests.fakes import openai_text, start_fake
from tests.test_agent import model_config
from tests.wsclient import GatewayMixin, connect_params

NEW = {**CHAT_VIEW_METHODS, **FEED_METHODS, **HOST_METHODS, **INVENTORY_METHODS, **ABSENT_METHODS}


class ScopeTests(SynchronousTestCase):
    def test_scopes_are_upstreams(self):
        """Each new method needs the scope upstream's v4 method table names (methods upstream lacks: read)."""
        if not schemas.available():
            self.skipTest(f"upstream schemas not found at {schemas.SHARED}")
        table = schemas._document(4)["methods"]
        v4 = negotiate(4, 4)
        for method in NEW:
            expected = table[method]["scope"] if method in table else "operator.read"
            self.assertEqual(required_scope(method, v4), expected, method)


class HostUnitTests(SynchronousTestCase):
    def test_meminfo(self):
        """MemTotal and MemAvailable in bytes from a /proc/meminfo; none where there is no file."""
        proc = self.mktemp()
        import os

        os.makedirs(proc)
        with open(os.path.join(proc, "meminfo"), "w") as f:
            f.write("MemTotal:       2048 kB\nMemFree:         100 kB\nMemAvailable:    1024 kB\nBogus: x\n")
        from pathlib import Path

        self.assertEqual(meminfo(Path(proc)), {"MemTotal": 2048 * 1024, "MemFree": 100 * 1024, "MemAvailable": 1024 * 1024})
        self.assertEqual(meminfo(Path(proc) / "nowhere"), {})

    def test_installed(self):
        """What is installed is what is on PATH, by capability."""
        self.assertEqual(installed(lambda name: "/usr/bin/x" if name in ("bwrap", "git") else None), ["sandbox.bubblewrap", "vcs.git"])


class UiMethodTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.fake, self.url = await start_fake(self)

    async def operator(self, scopes=("operator.admin",), protocol=4):
        ws, res = await self.connect(connect_params(protocol=protocol, scopes=list(scopes)))
        self.assertTrue(res["ok"], res)
        return ws

    async def call(self, ws, method, params=None):
        res = await ws.request(method, params if params is not None else {})
        self.assertTrue(res["ok"], f"{method}: {res}")
        return res["payload"]

    async def refused(self, ws, method, params, needle):
        res = await ws.request(method, params)
        self.assertFalse(res["ok"], f"{method} {params}: {res}")
        self.assertEqual(res["error"]["code"], "INVALID_REQUEST")
        self.assertIn(needle, res["error"]["message"])

    async def chat(self, ws, text="hi", run_id="r1", *parts):
        self.fake.replies.append(openai_text(*(parts or ("Hello", " there"))))
        await self.call(ws, "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": run_id})
        while True:
            event = await ws.event("chat")
            if event["payload"]["runId"] == run_id and event["payload"]["state"] in ("final", "error"):
                return event["payload"]

    async def test_chat_startup_and_metadata(self):
        """chat.startup: history, totals, the session row and the agent's defaults; chat.metadata: available models and commands."""
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        empty = await self.call(ws, "chat.startup", {"sessionKey": "agent:main:main", "limit": 80, "maxBytes": 262144})
        self.assertEqual(empty["messages"], [])
        self.assertEqual(empty["totalMessages"], 0)
        self.assertEqual(empty["defaults"]["model"], "m1")
        self.assertEqual(empty["defaults"]["modelProvider"], "fake")
        self.assertEqual(empty["sessionInfo"]["key"], "agent:main:main")
        self.assertFalse(empty["sessionInfo"]["hasActiveRun"])
        schemas.validate(4, "SessionRow", empty["sessionInfo"])
        self.assertIsNone(self.service.core.agent.store("main").get("agent:main:main"), "looking creates no session")
        await self.chat(ws)
        page = await self.call(ws, "chat.startup", {"sessionKey": "main", "inputRunIds": ["r1", "nobody"]})
        self.assertEqual([m["role"] for m in page["messages"]], ["user", "assistant"])
        user, assistant = page["messages"]
        self.assertEqual(user["__openclaw"]["idempotencyKey"], "r1:user")
        self.assertEqual(assistant["__openclaw"]["runId"], "r1")
        self.assertEqual([user["__openclaw"]["seq"], assistant["__openclaw"]["seq"]], [1, 2])
        self.assertEqual(page["inputReceipts"], [{"runId": "r1", "state": "consumed", "consumedByEventId": user["__openclaw"]["id"]}])
        self.assertEqual(page["totalMessages"], 2)
        self.assertFalse(page["hasMore"])
        small = await self.call(ws, "chat.startup", {"sessionKey": "main", "maxBytes": 1024})
        self.assertLessEqual(len(str(small["messages"])), 1200)
        self.assertTrue(small["hasMore"] or len(small["messages"]) == 2)
        self.assertEqual(await self.call(ws, "chat.startup", {"shortId": "abc", "agentId": "main"}), {"resolution": {"ok": False}})
        await self.refused(ws, "chat.startup", {"shortId": "abc"}, "shortId with agentId")
        await self.refused(ws, "chat.startup", {}, "sessionKey is required")
        meta = await self.call(ws, "chat.metadata", {"agentId": "main", "sessionKey": "agent:main:main"})
        self.assertEqual([(m["provider"], m["id"]) for m in meta["models"]], [("fake", "m1")])
        commands = {c["name"]: c for c in meta["commands"]}
        self.assertEqual(set(commands), {"help", "commands", "status", "whoami", "new", "stop", "compact", "usage", "think", "verbose", "model", "queue"})
        self.assertEqual(commands["new"]["textAliases"], ["/new", "/reset"])
        self.assertEqual([c["value"] for c in commands["queue"]["args"][0]["choices"]], ["steer", "followup", "collect", "interrupt"])
        self.assertFalse(meta["runtimeSelectionLocked"])
        await self.refused(ws, "chat.metadata", {"authProfileId": "x"}, "no saved model accounts")
        await self.refused(ws, "chat.metadata", {"agentId": "ghost"}, "unknown agent")

    async def test_describe_and_branches(self):
        """sessions.describe: null before the first message, then the row; one branch, the active one, per transcript."""
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        self.assertEqual(await self.call(ws, "sessions.describe", {"key": "agent:main:main"}), {"session": None})
        self.assertEqual(await self.call(ws, "sessions.branches.list", {"sessionKey": "main"}), {"branches": []})
        await self.chat(ws, "plan the   trip")
        await self.call(ws, "sessions.patch", {"key": "main", "model": "fake/m2"})
        described = (await self.call(ws, "sessions.describe", {"key": "main", "includeLastMessage": True, "includeDerivedTitles": True}))["session"]
        self.assertEqual((described["modelProvider"], described["model"]), ("fake", "m2"))
        self.assertEqual(described["derivedTitle"], "plan the trip")
        self.assertEqual(described["lastMessage"]["role"], "assistant")
        schemas.validate(4, "SessionRow", described)
        branches = await self.call(ws, "sessions.branches.list", {"sessionKey": "main"})
        schemas.validate(4, "SessionsBranchesListResult", branches)
        [branch] = branches["branches"]
        self.assertEqual((branch["headline"], branch["messageCount"], branch["active"]), ("plan the trip", 2, True))
        history = await self.call(ws, "chat.history", {"sessionKey": "main"})
        self.assertEqual(branch["leafEntryId"], history["messages"][-1]["__openclaw"]["id"])

    async def test_feeds(self):
        """Followers of a session get session.message per appended message; sessions.subscribe followers get sessions.changed; unsubscribing stops both."""
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        other = await self.operator()
        subscribed = await self.call(ws, "sessions.messages.subscribe", {"key": "main", "includeApprovals": True})
        self.assertEqual(subscribed["key"], "agent:main:main")
        schemas.validate(4, "SessionApprovalReplay", subscribed["approvalReplay"])
        self.assertEqual(await self.call(ws, "sessions.subscribe"), {"subscribed": True})
        await self.chat(ws, "hello", "r1")
        seen = list(ws.events)
        while not any(e.get("event") == "sessions.changed" and e["payload"]["reason"] == "agent.run.ended" for e in seen):
            frame = await ws.next()  # the row changes once more after the final chat event
            self.assertIsNotNone(frame)
            seen.append(frame)
        ws.events[:] = seen
        messages = [e["payload"] for e in ws.events if e.get("event") == "session.message"]
        self.assertEqual([(m["message"]["role"], m["messageSeq"]) for m in messages], [("user", 1), ("assistant", 2)])
        self.assertEqual(messages[0]["message"]["__openclaw"]["idempotencyKey"], "r1:user")
        self.assertEqual(messages[0]["sessionKey"], "agent:main:main")
        changes = [e["payload"] for e in ws.events if e.get("event") == "sessions.changed"]
        reasons = [c["reason"] for c in changes]
        self.assertIn("agent.run.started", reasons)
        self.assertEqual(reasons[-1], "agent.run.ended")
        self.assertFalse(changes[-1]["hasActiveRun"])
        self.assertTrue(next(c for c in changes if c["reason"] == "agent.run.started")["hasActiveRun"])
        self.assertEqual(changes[-1]["runId"], "r1")
        self.assertFalse([e for e in other.events if e.get("event") in ("session.message", "sessions.changed")], "only followers hear")
        ws.events.clear()
        self.assertEqual(await self.call(ws, "sessions.messages.unsubscribe", {"key": "main"}), {"subscribed": False, "key": "agent:main:main"})
        self.assertEqual(await self.call(ws, "sessions.unsubscribe"), {"subscribed": False})
        await self.chat(ws, "again", "r2")
        self.assertFalse([e for e in ws.events if e.get("event") in ("session.message", "sessions.changed")])
        listed = await self.call(ws, "sessions.subscribe", {"limit": 5, "hasBoard": True})
        self.assertEqual(listed["list"]["sessions"][0]["key"], "agent:main:main")

    async def test_feed_limits_and_scopes(self):
        """includeApprovals needs operator.approvals, false is refused; follows are bounded; a closed connection leaves no follow behind."""
        await self.gateway(**model_config(self.url))
        reader = await self.operator(scopes=("operator.read",))
        await self.refused(reader, "sessions.messages.subscribe", {"key": "main", "includeApprovals": True}, "operator.approvals")
        await self.refused(reader, "sessions.messages.subscribe", {"key": "main", "includeApprovals": False}, "expected true")
        await self.refused(reader, "sessions.messages.subscribe", {"key": "agent:ghost:main"}, "unknown agent")
        for i in range(MAX_FOLLOWED):
            await self.call(reader, "sessions.messages.subscribe", {"key": f"s{i}"})
        await self.refused(reader, "sessions.messages.subscribe", {"key": "one-more"}, "too many followed sessions")
        await self.call(reader, "sessions.messages.subscribe", {"key": "s0"})  # again: no new follow
        feeds = self.service.core.feeds
        self.assertEqual(len(feeds._following), 1)
        reader.close()
        await reader.closed
        for _ in range(50):
            gc.collect()
            if not len(feeds._following):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(feeds._following), 0)

    async def test_host(self):
        """system.info and environments.list describe this host, in upstream's shapes."""
        await self.gateway()
        ws = await self.operator()
        info = await self.call(ws, "system.info")
        # 2026.9.6's gateway adds eventLoop and disks, which its Control UI shows; the 2026.9.1 schema is closed to them
        self.assertEqual(set(info["eventLoop"]), {"degraded", "degradedSinceMs", "reasons", "intervalMs", "delayP99Ms", "delayMaxMs", "utilization", "cpuCoreRatio"})
        schemas.validate(4, "SystemInfoResult", {k: v for k, v in info.items() if k not in ("eventLoop", "disks")})
        self.assertGreater(info["memoryTotalBytes"], 0)
        self.assertEqual(info["disks"][0]["path"], str(self.service.settings.state_dir))
        self.assertIn("Python", info["nodeVersion"])
        listed = await self.call(ws, "environments.list", {"includeDesktopSetup": True})
        schemas.validate(4, "EnvironmentsListResult", {"environments": [{k: v for k, v in e.items() if k != "desktopSetup"} for e in listed["environments"]]})
        [env] = listed["environments"]
        self.assertEqual((env["id"], env["status"], env["sessionHost"]), ("gateway", "available", True))
        self.assertEqual(env["desktopSetup"]["state"], "unsupported")
        self.assertEqual(await self.call(ws, "environments.list", {"runtimeId": "elsewhere"}), {"environments": []})
        self.assertEqual(await self.call(ws, "environments.list", {"projection": "profiles"}), {"environments": [], "profiles": []})

    async def test_inventory(self):
        """plugins.list names the providers, tools (and channels) this gateway has, enabled as the config says; the catalog pages through them."""
        await self.gateway(**model_config(self.url), tools={"deny": ["exec"]})
        ws = await self.operator()
        plugins = await self.call(ws, "plugins.list")
        schemas.validate(4, "PluginsListResult", plugins)
        states = {p["id"]: p["enabled"] for p in plugins["plugins"]}
        self.assertEqual((states["openai"], states["anthropic"], states["ollama"]), (True, False, False))
        self.assertEqual((states["tool-read"], states["tool-exec"]), (True, False))
        self.assertEqual({c: states[c] for c in ("telegram", "whatsapp", "discord", "slack", "imessage")}, dict.fromkeys(("telegram", "whatsapp", "discord", "slack", "imessage"), False))  # none configured
        self.assertFalse(plugins["mutationAllowed"])
        first = await self.call(ws, "plugins.catalog.browse", {"intent": "all", "pageSize": 3})
        self.assertEqual(len(first["items"]), 3)
        rest = await self.call(ws, "plugins.catalog.browse", {"intent": "all", "pageSize": 100, "cursor": first["nextCursor"]})
        self.assertNotIn("nextCursor", rest)
        self.assertEqual(len(first["items"]) + len(rest["items"]), len(plugins["plugins"]))
        found = await self.call(ws, "plugins.catalog.browse", {"query": "WORKSPACE", "category": "tool"})
        self.assertTrue(found["items"])
        self.assertTrue(all(i["catalog"]["categories"] == ["tool"] for i in found["items"]))
        self.assertEqual((await self.call(ws, "plugins.catalog.browse", {"intent": "featured"}))["items"], [])
        await self.refused(ws, "plugins.catalog.browse", {"cursor": "not-a-cursor"}, "cursor")

    async def test_models_and_agents(self):
        """models.authStatus says where each provider's key comes from; v4 agents.list names each agent's models, v3's stays in its closed shape."""
        await self.gateway(**model_config(self.url))
        ws = await self.operator()
        status = await self.call(ws, "models.authStatus", {"agentId": "main", "refresh": True})
        self.assertEqual(status["providers"], [{"provider": "fake", "authProvider": "fake", "displayName": "fake", "profiles": [], "status": "static", "apiKey": {"source": "config"}}])
        await self.refused(ws, "models.authStatus", {"agentId": "ghost"}, "unknown agent")
        agents = await self.call(ws, "agents.list")
        schemas.validate(4, "AgentsListResult", agents)
        self.assertEqual(agents["agents"][0]["model"], {"primary": "fake/m1"})
        v3 = await self.operator(protocol=3)
        schemas.validate(3, "AgentsListResult", await self.call(v3, "agents.list"))

    async def test_absent_features(self):
        """Features this gateway does not have answer as upstream does when they are off, in upstream's shapes."""
        await self.gateway()
        ws = await self.operator()
        answers = {
            "question.list": ({}, "QuestionListResult"),
            "tasks.list": ({"status": ["queued", "running"], "sortBy": "endedAt", "limit": 100}, "TasksListResult"),
            "talk.catalog": ({}, "TalkCatalogResult"),
            "update.status": ({}, "UpdateStatusResult"),
            "progressCard.get": ({"sessionKey": "main"}, "ProgressCardGetResult"),
            "sessions.companion.state": ({"sessionKey": "main"}, "SessionsCompanionStateResult"),
            "sessions.observer.visibility": ({"visible": True}, "SessionsObserverVisibilityResult"),
        }
        for method, (params, definition) in answers.items():
            schemas.validate(4, definition, await self.call(ws, method, params))
        self.assertEqual(await self.call(ws, "plugin.approval.list"), [])
        self.assertEqual(await self.call(ws, "openclaw.approval.list"), [])
        await self.refused(ws, "tasks.list", {"status": "bogus"}, "status")
        reader = await self.operator(scopes=("operator.read",))
        res = await reader.request("question.list", {})
        self.assertEqual(res["error"]["details"]["missingScope"], "operator.questions")
