"""
Memory: the index (BM25 alone, hybrid with a fake embedding endpoint,
incremental sync, cache), the memory tools through the agent loop, the system
prompt, the pre-compaction flush, and `openclaw memory` as a subprocess.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.memory.index import chunk_text, fts_query
from openclaw.agent.memory.service import Memory
from openclaw.agent.memory.settings import memory_settings, resolve_memory
from openclaw.agent.memory.tools import memory_file
from openclaw.agent.tools import HTTP_DENY, ToolError, tools_for
from openclaw.config.settings import ToolPolicy
from tests.fake_embeddings import start_embeddings
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.helpers import base_env, run_cli, scratch_home, write_config
from tests.test_agent import model_config
from tests.wsclient import GatewayMixin, connect_params

FACT = "The spare key to the garden shed is taped under the blue flowerpot."
DRINK = "Favourite beverage: jasmine tea, brewed strong."
WEATHER = "She likes the hot weather in July."


class ChunkTests(SynchronousTestCase):
    def test_chunks_follow_lines(self):
        """Chunks are line-aligned, 1-based, inclusive, and the next starts inside the previous (overlap)."""
        text = "\n".join(f"line {i} " + "x" * 30 for i in range(1, 41)) + "\n"
        chunks = chunk_text(text, tokens=100, overlap=20)
        self.assertEqual(chunks[0].start, 1)
        self.assertEqual(chunks[-1].end, 40)
        for before, after in zip(chunks, chunks[1:]):
            self.assertLess(after.start, before.end + 1)
            self.assertGreater(after.start, before.start)
        self.assertTrue(chunks[0].text.startswith("line 1 "))
        self.assertEqual(chunks[1].text.split("\n")[0].split()[0:2], ["line", str(chunks[1].start)])

    def test_fts_query_is_quoted(self):
        """Query words are quoted and OR-ed: FTS5 operators in a query are plain words."""
        self.assertEqual(fts_query('NEAR(a b) "x" OR -y*'), '"near" OR "a" OR "b" OR "x" OR "or" OR "y"')
        self.assertIsNone(fts_query("?!"))

    def test_config_resolution(self):
        """Provider selection, weights normalised, {agentId} in the store path, unsupported providers explained."""
        state = Path("/state")
        cfg = resolve_memory({}, {}, state)
        self.assertIsNone(cfg.embedding)
        self.assertIn("keyword (BM25) search only", cfg.note)
        self.assertEqual(cfg.store_path, state / "memory" / "main.sqlite")
        cfg = resolve_memory({}, {"OPENAI_API_KEY": "sk-x"}, state)
        self.assertEqual((cfg.embedding.provider, cfg.embedding.url), ("openai", "https://api.openai.com/v1/embeddings"))
        section = {"provider": "ollama", "store": {"path": "/m/{agentId}.db"}, "query": {"hybrid": {"vectorWeight": 2, "textWeight": 1}}}
        cfg = resolve_memory({"agents": {"defaults": {"memorySearch": section}}}, {}, state, "work")
        self.assertEqual(cfg.embedding.url, "http://127.0.0.1:11434/api/embed")
        self.assertEqual(cfg.store_path, Path("/m/work.db"))
        self.assertAlmostEqual(cfg.vector_weight + cfg.text_weight, 1.0)
        cfg = resolve_memory({"agents": {"defaults": {"memorySearch": {"provider": "gemini"}}}}, {}, state)
        self.assertIsNone(cfg.embedding)
        self.assertIn("'gemini' is not available", cfg.note)

    def test_memory_get_paths(self):
        """memory_get reads MEMORY.md and memory/**.md (and extra paths), nothing else."""
        ws = Path("/ws")
        self.assertEqual(memory_file("memory/2026-01-02.md", ws, ()), (ws, "memory/2026-01-02.md"))
        self.assertEqual(memory_file("/ws/MEMORY.md", ws, ()), (ws, "MEMORY.md"))
        self.assertEqual(memory_file("/srv/notes/a/b.md", ws, ("/srv/notes",)), (Path("/srv/notes"), "a/b.md"))
        for bad in ("AGENTS.md", "memory/../AGENTS.md", "memory/x.txt", "/etc/passwd", "../MEMORY.md", "memory", "/srv/other.md", ""):
            self.assertRaises(ToolError, memory_file, bad, ws, ("/srv/notes",))

    def test_memory_tools_listed(self):
        """Both tools are offered by default, denied over HTTP, and gone when memorySearch.enabled is false."""
        self.assertIn("memory_search", [t.spec.name for t in tools_for(ToolPolicy())])
        self.assertTrue({"memory_search", "memory_get"} <= HTTP_DENY)
        names = [t.spec.name for t in tools_for(ToolPolicy(), memory=False)]
        self.assertNotIn("memory_search", names)
        self.assertNotIn("memory_get", names)

    def test_enabled_per_agent(self):
        """memorySearch.enabled is read once per agent: the defaults, then the agent's own entry."""
        config = {"agents": {"defaults": {"memorySearch": {"enabled": False}}, "list": [{"id": "main"}, {"id": "work", "memorySearch": {"enabled": True}}]}}
        settings = memory_settings(config, {}, Path("/state"))
        self.assertEqual(sorted(settings.agents), ["main", "work"])
        self.assertEqual((settings.of("main").enabled, settings.of("work").enabled), (False, True))
        self.assertEqual(settings.workspace, Path("/state/workspace"))
        self.assertRaises(KeyError, settings.of, "ghost")


class IndexTests(TestCase):
    timeout = 30

    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.workspace = self.state / "workspace"
        (self.workspace / "memory").mkdir(parents=True)

    def memory(self, **section):
        config = {"agents": {"defaults": {"memorySearch": section}}} if section else {}
        memory = Memory(memory_settings(config, {}, self.state), reactor)
        self.addCleanup(memory.stop)
        return memory

    def write(self, rel, text):
        path = self.workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    async def test_bm25_alone_finds_a_fact(self):
        """With no embedding provider, a fact written to memory/ is found by its words (BM25), with its lines."""
        self.write("memory/2026-01-05.md", "# Monday\n\nCalled the plumber.\n" + FACT + "\n")
        self.write("MEMORY.md", "# Long term\n\nPrefers short answers.\n")
        result = await self.memory().manager().search("where is the shed key?")
        self.assertEqual(result["mode"], "keyword")
        self.assertIn("keyword (BM25) search only", result["note"])
        top = result["results"][0]
        self.assertEqual((top["path"], top["startLine"], top["endLine"]), ("memory/2026-01-05.md", 1, 4))
        self.assertIn(FACT, top["snippet"])
        self.assertNotIn("vectorScore", top)
        self.assertEqual((await self.memory().manager().search("flowerpot"))["results"][0]["path"], "memory/2026-01-05.md")
        self.assertEqual((await self.memory().manager().search("zeppelin"))["results"], [])

    async def test_incremental_reindex(self):
        """Only changed files are read again; a touched but unchanged file keeps its chunks; deletions go."""
        self.write("memory/a.md", "alpha notes\n")
        self.write("memory/b.md", "bravo notes\n")
        manager = self.memory().manager()
        first = await manager.sync()
        self.assertEqual(sorted(first.indexed), ["memory/a.md", "memory/b.md"])
        self.assertEqual((await manager.sync()).indexed, [])
        path = self.write("memory/b.md", "bravo changed: the meeting moved to Thursday\n")
        os.utime(path, ns=(1, 1_000_000_000_000_000_000))
        self.assertEqual((await manager.sync()).indexed, ["memory/b.md"])
        self.assertEqual((await manager.search("thursday"))["results"][0]["path"], "memory/b.md")
        os.utime(self.workspace / "memory/a.md", ns=(2, 2_000_000_000_000_000_000))
        touched = await manager.sync()
        self.assertEqual(touched.indexed, [])  # same hash: not re-chunked
        (self.workspace / "memory/a.md").unlink()
        gone = await manager.sync()
        self.assertEqual(gone.removed, ["memory/a.md"])
        self.assertEqual((await manager.search("alpha"))["results"], [])
        status = await manager.status()
        self.assertEqual((status["files"], status["chunks"]), (1, 1))

    async def test_symlinks_and_index_file(self):
        """Symbolic links are not indexed; the index is 0600 under <state>/memory, in WAL mode."""
        outside = self.state / "secret.md"
        outside.write_text("launch codes 1234\n")
        (self.workspace / "memory" / "link.md").symlink_to(outside)
        (self.workspace / "memory" / "dir").symlink_to(self.state)
        self.write("memory/real.md", "launch party on friday\n")
        manager = self.memory().manager()
        result = await manager.search("launch")
        self.assertEqual([r["path"] for r in result["results"]], ["memory/real.md"])
        store = self.state / "memory" / "main.sqlite"
        self.assertEqual(os.stat(store).st_mode & 0o777, 0o600)
        mode = await deferToThread(lambda: sqlite3.connect(store).execute("PRAGMA journal_mode").fetchone()[0])
        self.assertEqual(mode, "wal")

    async def test_damaged_index_is_rebuilt(self):
        """A damaged index file is moved aside and rebuilt from the Markdown files; search still answers."""
        self.write("memory/a.md", FACT + "\n")
        store = self.state / "memory" / "main.sqlite"
        store.parent.mkdir(parents=True)
        store.write_bytes(b"this is not a database" * 100)
        result = await self.memory().manager().search("flowerpot")
        self.assertEqual(result["results"][0]["path"], "memory/a.md")
        self.assertEqual(len(list(store.parent.glob("main.sqlite.damaged-*"))), 1)
        self.flushLoggedErrors()

    async def test_paraphrase_ranks_higher_with_embeddings(self):
        """BM25 alone misses a paraphrase; with a fake /v1/embeddings endpoint the paraphrase ranks first."""
        self.write("memory/weather.md", WEATHER + "\n")
        self.write("memory/drinks.md", DRINK + "\n")
        query = "what hot drink does she like"
        keyword = await self.memory().manager().search(query)
        self.assertEqual([r["path"] for r in keyword["results"]], ["memory/weather.md"])

        fake, url = await start_embeddings(self)
        memory = self.memory(provider="openai", model="embed-small", remote={"baseUrl": url, "apiKey": "sk-embed-secret-1", "headers": {"X-Team": "t1"}})
        manager = memory.manager()
        result = await manager.search(query)
        self.assertEqual(result["mode"], "hybrid")
        self.assertEqual((result["provider"], result["model"]), ("openai", "embed-small"))
        self.assertEqual(result["results"][0]["path"], "memory/drinks.md")
        self.assertGreater(result["results"][0]["vectorScore"], 0.9)
        request = fake.requests[0]
        self.assertEqual(request["path"], "/v1/embeddings")
        self.assertEqual(request["body"]["model"], "embed-small")
        self.assertEqual(request["headers"]["authorization"], "Bearer sk-embed-secret-1")
        self.assertEqual(request["headers"]["x-team"], "t1")
        self.assertEqual(sorted(fake.inputs()[:2]), sorted([DRINK, WEATHER]))

        # Incremental: only the changed chunk is embedded again; the cache serves unchanged text.
        before = len(fake.inputs())
        path = self.write("memory/weather.md", WEATHER + " Sunny days.\n")
        os.utime(path, ns=(1, 1_000_000_000_000_000_000))
        await manager.sync()
        self.assertEqual(fake.inputs()[before:], [WEATHER + " Sunny days."])
        status = await manager.status()
        self.assertEqual((status["vectors"], status["chunks"]), (2, 2))

        # A provider that fails: keyword results, and a note saying why (no key in it).
        fake.fail_with = 503
        self.patch(__import__("openclaw.agent.memory.embeddings", fromlist=["x"]).Backoff, "next", lambda self: 0.0)
        failed = await manager.search("jasmine")
        self.assertEqual(failed["mode"], "keyword")
        self.assertIn("HTTP 503", failed["note"])
        self.assertNotIn("sk-embed-secret-1", json.dumps(failed))
        self.assertEqual(failed["results"][0]["path"], "memory/drinks.md")

    async def test_ollama_wire_format(self):
        """provider "ollama" speaks /api/embed with {model, input} → {embeddings}."""
        fake, url = await start_embeddings(self)
        self.write("memory/car.md", "The car is parked in the garage.\n")
        manager = self.memory(provider="ollama", remote={"baseUrl": url.removesuffix("/v1")}).manager()
        result = await manager.search("vehicle")
        self.assertEqual(fake.requests[0]["path"], "/api/embed")
        self.assertEqual(fake.requests[0]["body"]["model"], "nomic-embed-text")
        self.assertEqual(result["results"][0]["path"], "memory/car.md")
        self.assertEqual(result["mode"], "hybrid")


def tool_calls(fake):
    """The tool results the model saw, by tool name."""
    out = {}
    for request in fake.requests:
        for message in request["body"]["messages"]:
            if message.get("role") == "tool":
                out.setdefault(message.get("tool_call_id"), message.get("content"))
    return out


class AgentMemoryTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def run_turn(self, message="hi", key="main"):
        ws, res = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        self.assertTrue(res["ok"], res)
        ws.protocol.send_json({"type": "req", "id": "a", "method": "agent", "params": {"message": message, "idempotencyKey": f"k-{message}", "sessionKey": key}})
        await ws.response("a")
        final = await ws.response("a", timeout=30)
        return ws, final

    def workspace(self):
        return self.service.settings.state_dir / "workspace"

    async def test_memory_search_through_the_agent(self):
        """The model calls memory_search and gets the fact (BM25 alone) as JSON; then memory_get reads its lines."""
        self.fake.replies += [
            openai_tool_call("memory_search", {"query": "shed key"}, "c1"),
            openai_tool_call("memory_get", {"path": "memory/2026-01-05.md", "from": 2, "lines": 1}, "c2"),
            openai_tool_call("memory_get", {"path": "AGENTS.md"}, "c3"),
            openai_text("It is under the blue flowerpot."),
        ]
        await self.gateway(**model_config(self.url))
        (self.workspace() / "memory").mkdir(parents=True)
        (self.workspace() / "memory" / "2026-01-05.md").write_text("# Monday\n" + FACT + "\nmore\n")
        (self.workspace() / "AGENTS.md").write_text("be nice\n")
        _, final = await self.run_turn("where is the shed key")
        self.assertEqual(final["payload"]["status"], "ok", final)
        results = tool_calls(self.fake)
        found = json.loads(results["c1"])
        self.assertEqual(found["results"][0]["path"], "memory/2026-01-05.md")
        self.assertIn(FACT, found["results"][0]["snippet"])
        self.assertEqual(json.loads(results["c2"])["text"], FACT)
        self.assertIn("memory_get reads MEMORY.md and memory/", results["c3"])
        system = self.fake.requests[0]["body"]["messages"][0]
        self.assertEqual(system["role"], "system")
        self.assertIn("## Memory", system["content"])
        self.assertIn("MEMORY.md", system["content"])
        names = [t["function"]["name"] for t in self.fake.requests[0]["body"]["tools"]]
        self.assertIn("memory_search", names)

    async def test_flush_before_compaction(self):
        """sessions.compact: first a silent turn writes memory (write tool), then the summary; once per cycle."""
        await self.gateway(**model_config(self.url))
        store = self.service.core.agent.store("main")
        for i in range(8):
            store.append_message("agent:main:main", {"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": f"message {i}: the boat is called Wavelet"}], "timestamp": 0})
        self.fake.replies += [
            openai_tool_call("write", {"path": "memory/flushed.md", "content": "The boat is called Wavelet.\n"}, "w1"),
            openai_text("NO_REPLY"),
            openai_text("Summary: a boat named Wavelet."),
        ]
        ws, res = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        out = await ws.request("sessions.compact", {"key": "main"})
        self.assertTrue(out["ok"], out)
        self.assertEqual((self.workspace() / "memory" / "flushed.md").read_text(), "The boat is called Wavelet.\n")
        flush = self.fake.requests[0]["body"]["messages"]
        self.assertIn("Pre-compaction memory flush", flush[0]["content"])
        self.assertIn("memory/", flush[-1]["content"])
        self.assertIn("NO_REPLY", flush[-1]["content"])
        self.assertIn("compact summaries", self.fake.requests[2]["body"]["messages"][0]["content"])
        entry = store.get("agent:main:main")
        self.assertEqual((entry["memoryFlushCompactionCount"], entry["compactionCount"]), (0, 1))
        # The flush left no trace in the transcript.
        texts = json.dumps(store.messages("agent:main:main"))
        self.assertNotIn("flushed.md", texts)
        # Already flushed in this cycle: the next compaction summarises at once.
        store.patch("agent:main:main", {"memoryFlushCompactionCount": 1})
        for i in range(8):
            store.append_message("agent:main:main", {"role": "user", "content": [{"type": "text", "text": f"more {i}"}], "timestamp": 0})
        self.fake.replies.append(openai_text("Summary two."))
        out = await ws.request("sessions.compact", {"key": "main"})
        self.assertTrue(out["ok"], out)
        self.assertEqual(len(self.fake.requests), 4)
        self.assertIn("compact summaries", self.fake.requests[3]["body"]["messages"][0]["content"])

    async def test_flush_failure_does_not_stop_compaction(self):
        """A model that fails the flush turn: compaction still happens."""
        from tests.fakes import Reply

        await self.gateway(**model_config(self.url))
        store = self.service.core.agent.store("main")
        for i in range(8):
            store.append_message("agent:main:main", {"role": "user", "content": [{"type": "text", "text": f"m{i}"}], "timestamp": 0})
        self.fake.replies += [Reply([b'{"error":{"message":"bad request"}}'], status=400), openai_text("Summary.")]
        ws, _ = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        out = await ws.request("sessions.compact", {"key": "main"})
        self.assertTrue(out["ok"], out)
        self.assertTrue(out["payload"]["compacted"])
        self.assertNotIn("memoryFlushAt", store.get("agent:main:main"))


class MemoryCLITests(TestCase):
    timeout = 60

    def test_status_index_search(self):
        """`openclaw memory index|search|status` against a workspace, as a user runs them."""
        home = scratch_home(self)
        env = base_env(home)
        workspace = home / ".openclaw" / "workspace"
        (workspace / "memory").mkdir(parents=True)
        (workspace / "memory" / "2026-02-01.md").write_text("Dentist appointment moved to the 14th.\n")
        (workspace / "MEMORY.md").write_text("Allergic to peanuts.\n")
        done = run_cli("memory", "index", "--verbose", env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("main: 2 files, 2 indexed", done.stdout)
        self.assertIn("indexed memory/2026-02-01.md", done.stdout)
        found = run_cli("memory", "search", "dentist", "appointment", "--json", env=env)
        self.assertEqual(found.returncode, 0, found.stderr)
        self.assertEqual(json.loads(found.stdout)["results"][0]["path"], "memory/2026-02-01.md")
        plain = run_cli("memory", "search", "peanuts", env=env)
        self.assertIn("MEMORY.md:1-1", plain.stdout)
        status = run_cli("memory", "status", "--json", env=env)
        self.assertEqual(status.returncode, 0, status.stderr)
        parsed = json.loads(status.stdout)
        self.assertEqual((parsed["files"], parsed["chunks"], parsed["provider"]), (2, 2, None))
        self.assertTrue(parsed["fts"])
        text = run_cli("memory", "status", "--deep", env=env)
        self.assertIn("probe: no embedding provider", text.stdout)
        bad = run_cli("memory", "status", "--agent", "nobody", env=env)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("unknown agent id 'nobody'", bad.stderr)
        empty = run_cli("memory", "search", env=env)
        self.assertNotEqual(empty.returncode, 0)

    def test_bad_config_exits_78(self):
        """A config memory cannot use: the command says where and exits 78."""
        home = scratch_home(self)
        write_config(home / ".openclaw" / "openclaw.json", {"agents": {"defaults": {"memorySearch": {"provider": "nope"}}}})
        done = run_cli("memory", "status", env=base_env(home))
        self.assertEqual(done.returncode, 78, done.stdout + done.stderr)
        self.assertIn("agents.defaults.memorySearch.provider", done.stderr)
