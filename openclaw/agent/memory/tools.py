# -*- test-case-name: tests.test_memory -*-
"""
The C{memory_search} and C{memory_get} tools. Both work on the session's
workspace (a sandboxed session's own, with its own index); C{memory_get}
reads C{MEMORY.md} and C{memory/**.md} only (plus C{memorySearch.extraPaths}
for sessions on the host), through L{openclaw.agent.fsjail} in confined
mode: no symbolic links, no way out. Results are JSON for the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openclaw.agent.fsjail import Jail
from openclaw.agent.memory.embeddings import EmbeddingError
from openclaw.agent.memory.service import MemoryClosed

if TYPE_CHECKING:
    from openclaw.agent.tools import ToolContext

MAX_LINES = 2000


def _refuse(message: str) -> Exception:
    # Imported here: openclaw.agent.tools imports this module for its table.
    from openclaw.agent.tools import ToolError

    return ToolError(message)


def _agent(ctx: ToolContext) -> str:
    return ctx.session_key.split(":", 2)[1]


def _count(args: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _refuse(f"{name} must be a whole number from {low}")
    return min(value, high)


async def tool_memory_search(ctx: ToolContext, args: dict[str, Any]) -> str:
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _refuse("query is required")
    min_score = args.get("minScore")
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1):
        raise _refuse("minScore must be a number from 0 to 1")
    memory = ctx.runtime.memory
    if not memory.enabled(_agent(ctx)):
        raise _refuse("memory search is off for this agent (agents.defaults.memorySearch.enabled)")
    try:
        result = await memory.manager(_agent(ctx), ctx.workspace).search(query, _count(args, "maxResults", 1, 50), min_score)
    except (EmbeddingError, MemoryClosed) as e:
        raise _refuse(str(e))
    return json.dumps(result, ensure_ascii=False)


def memory_file(raw: Any, workspace: Path, extra: tuple[str, ...]) -> tuple[Path, str]:
    """The folder to read from and the path inside it, for a path C{memory_get} may read."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise _refuse("path is required")
    text = raw.strip()
    inside = text
    if text.startswith("/"):
        prefix = str(workspace).rstrip("/") + "/"
        inside = text[len(prefix) :] if text.startswith(prefix) else ""
    parts = [p for p in inside.split("/") if p not in ("", ".")]
    if inside and ".." not in parts and parts[-1].lower().endswith(".md"):
        if parts in (["MEMORY.md"], ["memory.md"]) or (len(parts) > 1 and parts[0] == "memory"):
            return workspace, "/".join(parts)
    target = Path(os.path.normpath(Path(text).expanduser() if text.startswith(("/", "~")) else workspace / text))
    for entry in extra:
        root = Path(os.path.normpath(Path(entry).expanduser() if entry.startswith(("/", "~")) else workspace / entry))
        if target == root and target.suffix.lower() == ".md":
            return target.parent, target.name
        if target.is_relative_to(root) and target != root and target.suffix.lower() == ".md":
            return root, target.relative_to(root).as_posix()
    raise _refuse(f"memory_get reads MEMORY.md and memory/**/*.md only (and memorySearch.extraPaths): {text[:200]}")


async def tool_memory_get(ctx: ToolContext, args: dict[str, Any]) -> str:
    memory = ctx.runtime.memory
    agent = _agent(ctx)
    if not memory.enabled(agent):
        raise _refuse("memory is off for this agent (agents.defaults.memorySearch.enabled)")
    extra = () if ctx.confined else memory.config(agent).extra_paths
    root, inner = memory_file(args.get("path"), ctx.workspace, extra)
    start = _count(args, "from", 1, 10**9) or 1
    lines = _count(args, "lines", 1, MAX_LINES) or MAX_LINES
    text = await ctx.in_thread(Jail(root, confined=True).read, inner, start, lines)
    return json.dumps({"path": args["path"].strip(), "from": start, "text": text}, ensure_ascii=False)
