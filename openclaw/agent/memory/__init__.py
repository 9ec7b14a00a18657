# -*- test-case-name: tests.test_memory -*-
"""
Agent memory: plain Markdown in the workspace (C{MEMORY.md}, C{memory/*.md}),
an index of it in SQLite (FTS5 BM25, plus vectors when an embedding provider
is configured), the C{memory_search} and C{memory_get} tools, and the
pre-compaction memory flush. docs/memory.md describes the behaviour.
"""

from openclaw.agent.memory.prompt import memory_prompt
from openclaw.agent.memory.service import Memory
from openclaw.agent.memory.settings import MemoryConfig, MemorySettings, memory_settings, resolve_memory, workspace_of

__all__ = ["Memory", "MemoryConfig", "MemorySettings", "memory_prompt", "memory_settings", "resolve_memory", "workspace_of"]
