# -*- test-case-name: tests.test_memory -*-
"""What the system prompt tells the model about its memory files and tools."""

from __future__ import annotations

from typing import Iterable


def memory_prompt(tools: Iterable[str], today: str) -> list[str]:
    """The C{## Memory} section when the memory tools are available (else nothing)."""
    names = set(tools)
    if "memory_search" not in names:
        return []
    recall = (
        "Before answering anything about earlier work, decisions, dates, people, preferences or to-dos, "
        "run memory_search over your memory; then memory_get only the lines you need."
        if "memory_get" in names
        else "Before answering anything about earlier work, decisions, dates, people, preferences or to-dos, run memory_search over your memory."
    )
    return [
        "## Memory\n"
        "You remember only what is written in your workspace; nothing else survives a new session or a compaction.\n"
        f"- memory/YYYY-MM-DD.md: the daily log (append; today is memory/{today}.md). Running context and day-to-day notes go here.\n"
        "- MEMORY.md: curated long-term memory: decisions, preferences, durable facts. Keep it tidy.\n"
        "When someone says \"remember this\", write it down with write or edit (do not keep it in your head). "
        + recall
    ]
