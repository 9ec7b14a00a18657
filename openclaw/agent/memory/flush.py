# -*- test-case-name: tests.test_memory -*-
"""
The pre-compaction memory flush: before C{sessions.compact} summarises a
session, the model gets a silent agentic turn (its history, plus the flush
prompt) with the file and memory tools, to write durable notes to memory.

Silent: nothing is broadcast and nothing is added to the transcript; only
the files it writes remain. Once per compaction cycle (C{memoryFlushAt},
C{memoryFlushCompactionCount} in the session entry). Best effort: a failing
or slow model is logged and compaction goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from openclaw.agent.providers import ModelRef, ModelRequest, ProviderError, provider_for
from openclaw.agent.tools import Tool, ToolContext, run_tool

if TYPE_CHECKING:
    from openclaw.agent.runtime import AgentRuntime

log = Logger(namespace="openclaw.memory")

FLUSH_TOOLS = ("read", "write", "edit", "memory_search", "memory_get")
MAX_TURNS = 6
TIMEOUT = 180.0
HISTORY = 200


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.localtime())


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text}], "timestamp": int(time.time() * 1000)}


async def flush_memory(runtime: AgentRuntime, session_key: str, models: list[ModelRef]) -> bool:
    """Run the flush turn if it is due; True when it ran to the end."""
    agent = session_key.split(":", 2)[1]
    settings = runtime.memory.config(agent)
    if not settings.flush.enabled or not models:
        return False
    store = runtime.store(agent)
    entry = store.get(session_key) or {}
    cycle = entry.get("compactionCount", 0)
    if entry.get("memoryFlushAt") and entry.get("memoryFlushCompactionCount") == cycle:
        return False  # flushed already in this cycle
    context = runtime.tool_context(session_key)
    tools = {t.spec.name: t for t in runtime.tools(agent, context) if t.spec.name in FLUSH_TOOLS}
    if "write" not in tools and "edit" not in tools:
        return False  # nothing could be written
    today = _today()
    system = runtime.system_prompt(tools=list(tools)) + "\n\n" + settings.flush.system_prompt.replace("YYYY-MM-DD", today)
    messages = store.messages(session_key, HISTORY) + [_message("user", settings.flush.prompt.replace("YYYY-MM-DD", today))]
    turn = Deferred.fromCoroutine(_turns(runtime, models[0], system, messages, tools, context))
    try:
        await turn.addTimeout(TIMEOUT, runtime.reactor)
    except CancelledError:
        raise
    except ProviderError as e:
        log.warn("memory flush before compacting {key} failed: {error}", key=session_key, error=str(e))
        return False
    except Exception as e:
        log.warn("memory flush before compacting {key} failed: {error}", key=session_key, error=f"{type(e).__name__}: {e}")
        return False
    store.patch(session_key, {"memoryFlushAt": int(time.time() * 1000), "memoryFlushCompactionCount": cycle})
    return True


async def _turns(runtime: AgentRuntime, model: ModelRef, system: str, messages: list[dict[str, Any]], tools: dict[str, Tool], context: ToolContext) -> None:
    provider = provider_for(model.api, runtime.reactor, runtime.http)
    for _ in range(MAX_TURNS):
        request = ModelRequest(system=system, messages=messages, tools=[t.spec for t in tools.values()])
        reply = await provider.stream(model, request, lambda piece: None)
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [{"type": "toolCall", "id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in reply.tool_calls]
        messages.append({"role": "assistant", "content": content, "timestamp": int(time.time() * 1000)})
        if not reply.tool_calls:
            return
        for call in reply.tool_calls:
            tool = tools.get(call["name"])
            text, is_error = await run_tool(tool, context, call["arguments"]) if tool else (f"unknown tool: {call['name']}", True)
            log.info("memory flush: {tool} {outcome}", tool=call["name"], outcome="failed" if is_error else "ok")
            messages.append({"role": "toolResult", "toolCallId": call["id"], "toolName": call["name"], "content": [{"type": "text", "text": text}], "isError": is_error, "timestamp": int(time.time() * 1000)})
    log.warn("memory flush used {turns} tool turns without finishing", turns=MAX_TURNS)
