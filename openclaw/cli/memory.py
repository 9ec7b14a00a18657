# -*- test-case-name: tests.test_memory -*-
"""
C{openclaw memory status|index|search}: the memory index of each agent,
read and written here (no gateway needed; SQLite's locking lets a running
gateway share the index).
"""

from __future__ import annotations

import json
from typing import IO, Any, Mapping

from twisted.internet.defer import Deferred
from twisted.python import usage

from openclaw.agent.memory.embeddings import EmbeddingError
from openclaw.agent.memory.service import Memory, MemoryManager
from openclaw.agent.memory.settings import memory_settings
from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG, ConfigError, load_valid


class _MemoryCommand(CommandOptions):
    optParameters = [["agent", None, None, "Only this agent (default: every configured agent)."]]
    optFlags = [["json", None, "Print JSON."], ["verbose", "v", "Say more."]]

    def agents(self, config: Mapping[str, Any]) -> list[str]:
        listed = (config.get("agents") or {}).get("list") if isinstance(config.get("agents"), dict) else None
        known = ["main"] + [e["id"] for e in listed or () if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] != "main"]
        if self["agent"]:
            if self["agent"] not in known:
                raise usage.UsageError(f"unknown agent id {self['agent']!r} (configured: {', '.join(known)})")
            return [self["agent"]]
        return known

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        from twisted.internet import task

        try:
            loaded = load_valid(self.layout(env), env)
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        try:
            agents = self.agents(loaded.config)
        except usage.UsageError as e:
            err.write(f"{e}\n")
            return 2
        code = [0]

        async def main(reactor: Any) -> None:
            memory = Memory(memory_settings(loaded.config, loaded.env, self.layout(env).state_dir, agents=agents), reactor)
            try:
                code[0] = await self.go(memory, agents, out, err)
            finally:
                memory.stop()

        try:
            task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
        except SystemExit as e:  # react always exits; a failure it reported is 1
            return code[0] or int(e.code or 0)
        return code[0]

    async def go(self, memory: Memory, agents: list[str], out: IO[str], err: IO[str]) -> int:
        raise NotImplementedError


def _sync_line(agent: str, report: dict[str, Any]) -> str:
    return f"{agent}: {report['files']} files, {len(report['indexed'])} indexed, {len(report['removed'])} removed, {report['chunks']} chunks"


class MemoryStatusOptions(_MemoryCommand):
    synopsis = "[--agent ID] [--deep] [--index] [--json]"
    longdesc = "The memory index of each agent: files, chunks, vectors, the embedding provider."
    optFlags = [["deep", None, "Probe the embedding provider."], ["index", None, "Index what changed first."]]

    async def go(self, memory: Memory, agents: list[str], out: IO[str], err: IO[str]) -> int:
        rows = []
        for agent in agents:
            manager = memory.manager(agent)
            if self["index"]:
                await manager.sync()
            status = {"agentId": agent, **await manager.status()}
            if self["deep"]:
                status["embeddingProbe"] = await _probe(manager)
            rows.append(status)
        if self["json"]:
            out.write(json.dumps(rows if len(rows) > 1 else rows[0], indent=2) + "\n")
            return 0
        for s in rows:
            out.write(f"Memory ({s['agentId']}): {'enabled' if s['enabled'] else 'disabled'}\n")
            out.write(f"  workspace: {s['workspace']}\n  index: {s['store']}\n")
            out.write(f"  files: {s['files']}  chunks: {s['chunks']}  vectors: {s['vectors']}  cached embeddings: {s['cacheEntries']}\n")
            out.write(f"  keyword search (FTS5): {'yes' if s['fts'] else 'no (SQLite without FTS5)'}\n")
            provider = f"{s['provider']} ({s['model']})" if s["provider"] else "none"
            out.write(f"  embeddings: {provider}\n")
            for key in ("note", "embeddingError"):
                if s.get(key):
                    out.write(f"  {key}: {s[key]}\n")
            if s["extraPaths"]:
                out.write(f"  extra paths: {', '.join(s['extraPaths'])}\n")
            if "embeddingProbe" in s:
                out.write(f"  probe: {s['embeddingProbe']}\n")
            if self["verbose"] and s.get("lastSync"):
                out.write("  " + _sync_line(s["agentId"], s["lastSync"]) + "\n")
        return 0


async def _probe(manager: MemoryManager) -> str:
    if manager.embedder is None:
        return "no embedding provider"
    try:
        vectors = await manager.embedder.embed(["ping"])
    except EmbeddingError as e:
        return f"failed: {e}"
    return f"ok ({len(vectors[0])} dimensions)"


class MemoryIndexOptions(_MemoryCommand):
    synopsis = "[--agent ID] [--verbose] [--json]"
    longdesc = "Index the memory files that changed (MEMORY.md, memory/**/*.md, extra paths)."

    async def go(self, memory: Memory, agents: list[str], out: IO[str], err: IO[str]) -> int:
        reports: dict[str, Any] = {}
        code = 0
        for agent in agents:
            manager = memory.manager(agent)
            synced = await manager.sync()
            report = reports[agent] = synced.as_json()
            if self["json"]:
                continue
            out.write(_sync_line(agent, report) + "\n")
            if self["verbose"]:
                for path in synced.indexed:
                    out.write(f"  indexed {path}\n")
                for path in synced.removed:
                    out.write(f"  removed {path}\n")
            for why in synced.skipped:
                out.write(f"  skipped {why}\n")
            if manager.embedding_error:
                err.write(f"{agent}: embeddings failed: {manager.embedding_error}\n")
                code = 1
        if self["json"]:
            out.write(json.dumps(reports, indent=2) + "\n")
        return code


class MemorySearchOptions(_MemoryCommand):
    synopsis = "QUERY [--agent ID] [--max-results N] [--min-score X] [--json]"
    longdesc = "Search the memory files as memory_search does (syncing first)."
    optParameters = [["max-results", "n", None, "How many results (1-50).", int], ["min-score", None, None, "Lowest score shown (0-1).", float]]

    def parseArgs(self, *words: str) -> None:
        if not words or not " ".join(words).strip():
            raise usage.UsageError("give a query: openclaw memory search \"what to find\"")
        self["query"] = " ".join(words)

    def postOptions(self) -> None:
        if self["max-results"] is not None and not 1 <= self["max-results"] <= 50:
            raise usage.UsageError("--max-results must be from 1 to 50")
        if self["min-score"] is not None and not 0 <= self["min-score"] <= 1:
            raise usage.UsageError("--min-score must be from 0 to 1")

    async def go(self, memory: Memory, agents: list[str], out: IO[str], err: IO[str]) -> int:
        results = {}
        for agent in agents:
            results[agent] = await memory.manager(agent).search(self["query"], self["max-results"], self["min-score"])
        if self["json"]:
            out.write(json.dumps(results if len(results) > 1 else next(iter(results.values())), indent=2, ensure_ascii=False) + "\n")
            return 0
        for agent, result in results.items():
            if len(results) > 1:
                out.write(f"[{agent}]\n")
            if result.get("note"):
                out.write(f"({result['note']})\n")
            if not result["results"]:
                out.write("No matches.\n")
            for hit in result["results"]:
                out.write(f"{hit['score']:.3f}  {hit['path']}:{hit['startLine']}-{hit['endLine']}\n")
                for line in hit["snippet"].splitlines()[:6]:
                    out.write(f"    {line}\n")
        return 0


class MemoryOptions(CommandOptions):
    synopsis = "status|index|search"
    longdesc = "Memory files (MEMORY.md, memory/*.md): the search index."
    subCommands = [
        ["status", None, MemoryStatusOptions, "Show the index of each agent."],
        ["index", None, MemoryIndexOptions, "Index what changed."],
        ["search", None, MemorySearchOptions, "Search memory."],
    ]
