# -*- test-case-name: tests.test_tools -*-
"""
The agent's tools: C{read}, C{write}, C{edit}, C{exec}, C{web_fetch},
C{sessions_list}, C{sessions_send}, C{memory_search}, C{memory_get}
(L{openclaw.agent.memory.tools}).

Paths are relative to the workspace; a sandboxed session cannot leave it
(see L{openclaw.agent.fsjail}). The main session runs C{exec} on the host;
other sessions run it in the sandbox when C{gateway.sandbox.mode} is
C{non-main} (all of them with C{all}). File work runs in a thread pool, never
on the reactor. docs/security.md says what each tool may touch.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from openclaw.agent.approvals import ExecCall, ExecDenied
from openclaw.agent.fsjail import Jail, JailError
from openclaw.agent.memory.tools import tool_memory_get, tool_memory_search
from openclaw.agent.providers import ToolSpec
from openclaw.agent.sandbox import ISandbox, Launch, SandboxUnavailable, inner_cwd
from openclaw.agent.webfetch import FetchRefused
from openclaw.config.settings import ToolPolicy
from openclaw.process import run_process

if TYPE_CHECKING:
    from openclaw.agent.runtime import AgentRuntime, Run

log = Logger(namespace="openclaw.tools")

OUTPUT_CAP = 64 * 1024
EXEC_TIMEOUT = 120.0
MAX_EXEC_TIMEOUT = 600.0
EXEC_GRACE = 1.0  # SIGTERM, then SIGKILL this much later
CLEANUP_TIMEOUT = 30.0
SEND_TIMEOUT = 120.0
MAX_READ_LINES = 100_000
# Never callable over HTTP /tools/invoke unless gateway.tools.allow names them:
# spec §7's list, and every tool here that reads, writes or executes files.
HTTP_DENY = frozenset({"exec", "spawn", "shell", "fs_write", "fs_delete", "fs_move", "apply_patch", "sessions_spawn", "sessions_send", "cron", "gateway", "nodes", "read", "write", "edit", "memory_search", "memory_get"})


class ToolError(Exception):
    """A tool failed; the message goes back to the model as the tool result."""


@attrs.frozen
class ToolContext:
    workspace: Path
    session_key: str
    sandbox: ISandbox | None  # None: runs on the host
    runtime: AgentRuntime
    reactor: Any
    pool: ThreadPool | None = None  # the thread pool for file work (default: the reactor's)
    run: Run | None = None  # the run calling the tool (None: an HTTP tool call)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # what eligible skills bring to host commands

    @property
    def confined(self) -> bool:
        return self.sandbox is not None

    def jail(self) -> Jail:
        return Jail(self.workspace, self.confined, self.sandbox.owner() if self.sandbox is not None else None)

    def in_thread(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool or self.reactor.getThreadPool(), f, *args)


def _whole(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ToolError(f"{name} must be a whole number from {low}")
    return min(value, high)


def exec_timeout(value: Any) -> float:
    """C{timeoutMs} as seconds; anything but a positive finite number is refused."""
    if value is None:
        return EXEC_TIMEOUT
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ToolError(f"timeoutMs must be a positive number of milliseconds, not {value[:40]!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ToolError(f"timeoutMs must be a positive number of milliseconds, not {value!r}")
    return min(value / 1000, MAX_EXEC_TIMEOUT)


async def tool_read(ctx: ToolContext, args: dict[str, Any]) -> str:
    offset = _whole(args, "offset", 1, 1, 10**9)
    limit = _whole(args, "limit", 2000, 1, MAX_READ_LINES)
    return await ctx.in_thread(ctx.jail().read, args.get("path"), offset, limit)


async def tool_write(ctx: ToolContext, args: dict[str, Any]) -> str:
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    data = content.encode("utf-8")
    await ctx.in_thread(ctx.jail().write, args.get("path"), data)
    return f"wrote {len(data)} bytes to {args['path']}"


def _edit(jail: Jail, path: Any, old: str, new: str) -> None:
    place, text = jail.read_text(path)
    with place:
        count = text.count(old)
        if count != 1:
            raise ToolError(f"oldText must occur exactly once (found {count} times)")
        jail.replace(place, text.replace(old, new, 1).encode("utf-8"))


async def tool_edit(ctx: ToolContext, args: dict[str, Any]) -> str:
    old, new = args.get("oldText"), args.get("newText")
    if not isinstance(old, str) or not old or not isinstance(new, str):
        raise ToolError("oldText (non-empty) and newText are required")
    await ctx.in_thread(_edit, ctx.jail(), args.get("path"), old, new)
    return f"edited {args['path']}"


def _command(args: dict[str, Any]) -> list[str]:
    command = args.get("command")
    if isinstance(command, str) and command.strip() and "\x00" not in command:
        return ["/bin/sh", "-c", command]
    if isinstance(command, list) and command and all(isinstance(a, str) and "\x00" not in a for a in command):
        return list(command)
    raise ToolError("command is required (a shell string or an argv list)")


def _host_launch(ctx: ToolContext, argv: list[str], cwd: Any) -> Launch:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    folder = Path(cwd).expanduser() if isinstance(cwd, str) and cwd.strip() else ctx.workspace
    folder = folder if folder.is_absolute() else ctx.workspace / folder
    if not folder.is_dir():
        raise ToolError(f"cwd is not a folder: {cwd}")
    if argv[0] != "/bin/sh":
        found = shutil.which(argv[0], path=path)
        if found is None:
            raise ToolError(f"command not found: {argv[0]}")
        argv = [found, *argv[1:]]
    env = {**ctx.env, "PATH": path, "HOME": os.environ.get("HOME", str(ctx.workspace)), "LANG": "C.UTF-8"}
    return Launch(argv, str(folder), env)


def _report(ran: Any, timeout: float) -> str:
    if ran.timed_out:
        head = f"exit code: {ran.code} (timed out after {timeout:g} s: the command and everything it started were stopped)"
    elif ran.code is not None and ran.code < 0:
        head = f"exit code: {ran.code} (killed by signal {-ran.code})"
    else:
        head = f"exit code: {ran.code}"
    parts = [head]
    for name, data, dropped in (("stdout", ran.stdout, ran.stdout_dropped), ("stderr", ran.stderr, ran.stderr_dropped)):
        if data:
            parts.append(f"{name}:\n" + data.decode("utf-8", "replace"))
        if dropped:
            parts.append(f"[{name} cut: the first {OUTPUT_CAP // 1024} KiB are shown, {dropped} more bytes were dropped]")
    return "\n".join(parts)


def _node_report(result: dict[str, Any]) -> str:
    """A node's C{system.run} result as the model reads an exec."""
    head = f"exit code: {result.get('exitCode')}" + (" (timed out)" if result.get("timedOut") else "")
    parts = [head]
    for name in ("stdout", "stderr"):
        if isinstance(result.get(name), str) and result[name]:
            parts.append(f"{name}:\n{result[name]}")
    if result.get("truncated"):
        parts.append("[output cut by the node]")
    return "\n".join(parts)


async def tool_exec(ctx: ToolContext, args: dict[str, Any]) -> str:
    # Everything is checked before anything starts.
    argv = _command(args)
    timeout = exec_timeout(args.get("timeoutMs"))
    agent_id = _agent(ctx.session_key)
    gate = ctx.runtime.exec_gate if ctx.runtime is not None else None
    command = args["command"] if isinstance(args["command"], str) else argv
    run = ctx.run
    run_id, deadline, unattended = (run.run_id, run.deadline(), run.unattended) if run is not None else (None, None, False)
    try:
        host = gate.host(agent_id, args.get("host")) if gate is not None else "sandbox"
        if host == "node" and gate is not None:
            cwd = args.get("cwd") if isinstance(args.get("cwd"), str) and args["cwd"].strip() else None
            call = ExecCall(command, cwd or "", agent_id, ctx.session_key, timeout, args.get("node") if isinstance(args.get("node"), str) else None, run_id, deadline, unattended)
            return _node_report(await gate.run_on_node(ctx.runtime.nodes, call))
        if host == "gateway" and gate is not None:
            launch = _host_launch(ctx, argv, args.get("cwd"))
            await gate.approve_gateway(ExecCall(command, launch.cwd, agent_id, ctx.session_key, timeout, None, run_id, deadline, unattended), launch.env["PATH"])
            return await _run(ctx, launch, argv, timeout)
    except ExecDenied as e:
        if run is not None:
            run.note("exec", "warn", str(e), tool="exec")  # cron's run log shows it
        raise ToolError(str(e))
    if ctx.sandbox is not None:
        try:
            cwd = inner_cwd(args.get("cwd"))
            ctx.workspace.mkdir(parents=True, exist_ok=True)
            launch = ctx.sandbox.prepare(argv, ctx.workspace, cwd)
        except SandboxUnavailable as e:
            raise ToolError(f"exec refused: {e}")
        except ValueError as e:
            raise ToolError(str(e))
    else:
        launch = _host_launch(ctx, argv, args.get("cwd"))
    return await _run(ctx, launch, argv, timeout)


async def _run(ctx: ToolContext, launch: Launch, argv: list[str], timeout: float) -> str:
    try:
        ran = await run_process(ctx.reactor, launch.argv, timeout, launch.env, launch.cwd, cap=OUTPUT_CAP, grace=EXEC_GRACE, limits=launch.limits, fds=launch.fds)
    except CancelledError:
        _clean_up(ctx, launch)
        raise
    except OSError as e:
        raise ToolError(f"cannot start {argv[0]}: {e.strerror}")
    if ran.timed_out:
        _clean_up(ctx, launch)
    return _report(ran, timeout)


def _clean_up(ctx: ToolContext, launch: Launch) -> None:
    """After a stopped sandboxed command: whatever its backend needs (a container to remove)."""
    if launch.cleanup:
        d = Deferred.fromCoroutine(run_process(ctx.reactor, launch.cleanup, CLEANUP_TIMEOUT, launch.env))
        d.addErrback(lambda f: log.warn("sandbox clean-up failed: {error}", error=f.getErrorMessage()))


async def tool_web_fetch(ctx: ToolContext, args: dict[str, Any]) -> str:
    if ctx.sandbox is not None and not ctx.sandbox.allow_network:
        raise ToolError("web_fetch is not available in this sandboxed session: it has no network (gateway.sandbox.allowNetwork is false)")
    url = args.get("url")
    if not isinstance(url, str):
        raise ToolError("url is required")
    max_bytes = _whole(args, "maxBytes", 512 * 1024, 1, 2 * 1024 * 1024)
    try:
        result = await ctx.runtime.fetcher.fetch(url, max_bytes)
    except FetchRefused as e:
        raise ToolError(str(e))
    except CancelledError:
        raise
    except Exception as e:
        raise ToolError(f"fetch failed: {type(e).__name__}: {e}")
    note = " (truncated)" if result.truncated else ""
    return f"HTTP {result.status} {result.content_type}{note}\n\n{result.text}"


def _agent(session_key: str) -> str:
    return session_key.split(":", 2)[1]


async def tool_sessions_list(ctx: ToolContext, args: dict[str, Any]) -> str:
    rows = ctx.runtime.store(_agent(ctx.session_key)).rows()
    if ctx.confined:  # a sandboxed session sees only sessions sandboxed like it
        rows = [(key, entry) for key, entry in rows if ctx.runtime.confined(key)]
    return "\n".join(f"{key} ({entry.get('label', '')}) updated {entry.get('updatedAt')}" for key, entry in rows[:100]) or "no sessions"


async def tool_sessions_send(ctx: ToolContext, args: dict[str, Any]) -> str:
    target, message = args.get("sessionKey"), args.get("message")
    if not isinstance(target, str) or not isinstance(message, str) or not message:
        raise ToolError("sessionKey and message are required")
    runtime = ctx.runtime
    sender_agent = _agent(ctx.session_key)
    try:
        key = runtime.key(target, sender_agent)
    except Exception as e:
        raise ToolError(f"cannot send to {target[:200]}: {e}")
    if key == ctx.session_key:
        raise ToolError("a session cannot send to itself")
    if _agent(key) != sender_agent and not runtime.settings.agents.tools.agent_to_agent_allowed(sender_agent, _agent(key)):
        raise ToolError(f"sending to another agent's sessions is off (tools.agentToAgent): {key}")
    if ctx.confined and not runtime.confined(key):
        raise ToolError(f"a sandboxed session may only message sessions that are sandboxed too; {key} runs its tools on the host")
    run, _ = runtime.submit(key, message, f"send-{uuid.uuid4()}", source={"sessionKey": ctx.session_key, "sandboxed": ctx.confined})
    waited: Deferred[Any] = run.outcome.wait()
    summary = await waited.addTimeout(SEND_TIMEOUT, ctx.reactor)
    if summary.get("status") != "ok":
        raise ToolError(f"the other session's run ended {summary.get('status')}: {summary.get('error', '')}")
    return run.text


@attrs.frozen
class Tool:
    spec: ToolSpec
    run: Callable[[ToolContext, dict[str, Any]], Any]


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    return ToolSpec(name, description, {"type": "object", "properties": properties, "required": required})


TOOLS = {
    t.spec.name: t
    for t in (
        Tool(_spec("read", "Read a text file (or list a folder) in the workspace.", {"path": {"type": "string"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}, ["path"]), tool_read),
        Tool(_spec("write", "Create or replace a file in the workspace.", {"path": {"type": "string"}, "content": {"type": "string"}}, ["path", "content"]), tool_write),
        Tool(_spec("edit", "Replace one exact occurrence of oldText with newText in a file.", {"path": {"type": "string"}, "oldText": {"type": "string"}, "newText": {"type": "string"}}, ["path", "oldText", "newText"]), tool_edit),
        Tool(
            _spec(
                "exec",
                "Run a command (shell string or argv list) in the workspace. It ends, with everything it started, when it exits or times out. "
                "host (sandbox, gateway, node) must be the configured one (tools.exec.host); on gateway and node an operator may have to approve it first.",
                {"command": {}, "cwd": {"type": "string"}, "timeoutMs": {"type": "integer"}, "host": {"type": "string", "enum": ["sandbox", "gateway", "node"]}, "node": {"type": "string"}},
                ["command"],
            ),
            tool_exec,
        ),
        Tool(_spec("web_fetch", "Fetch a public http(s) URL and return its text.", {"url": {"type": "string"}, "maxBytes": {"type": "integer"}}, ["url"]), tool_web_fetch),
        Tool(_spec("sessions_list", "List the agent's sessions.", {}, []), tool_sessions_list),
        Tool(_spec("sessions_send", "Send a message to another session and wait for its reply.", {"sessionKey": {"type": "string"}, "message": {"type": "string"}}, ["sessionKey", "message"]), tool_sessions_send),
        Tool(_spec("memory_search", "Search your memory (MEMORY.md, memory/*.md) by keywords and meaning; returns snippets with file and line ranges.", {"query": {"type": "string"}, "maxResults": {"type": "integer"}, "minScore": {"type": "number"}}, ["query"]), tool_memory_search),
        Tool(_spec("memory_get", "Read lines of a memory file (MEMORY.md or memory/*.md), from a line, for some lines.", {"path": {"type": "string"}, "from": {"type": "integer"}, "lines": {"type": "integer"}}, ["path"]), tool_memory_get),
    )
}


def tools_for(policy: ToolPolicy, sandbox: ISandbox | None = None, extra: Mapping[str, Tool] | None = None, memory: bool = True) -> list[Tool]:
    """The tools an agent gets (L{TOOLS} and the C{extra} ones other parts add): all, minus
    C{tools.deny}, or only C{tools.allow} when set; a sandbox without network gets no C{web_fetch};
    an agent whose C{memorySearch.enabled} is false (C{memory}) no memory tools."""
    deny = set(policy.deny)
    if sandbox is not None and not sandbox.allow_network:
        deny.add("web_fetch")
    if not memory:
        deny |= {"memory_search", "memory_get"}
    return [t for name, t in {**TOOLS, **(extra or {})}.items() if name not in deny and (policy.allow is None or name in policy.allow)]


async def run_tool(tool: Tool, ctx: ToolContext, args: Any) -> tuple[str, bool]:
    """C{(text, is_error)}: a failing tool is a result the model can read, never a crash.
    Cancellation (the run was aborted or timed out) passes through."""
    if not isinstance(args, dict):
        return "arguments must be an object", True
    try:
        return str(await tool.run(ctx, args)), False
    except CancelledError:
        raise
    except (ToolError, JailError) as e:
        return str(e), True
    except OSError as e:
        return f"{tool.spec.name} failed: {e.strerror or type(e).__name__}", True
    except Exception as e:
        return f"{tool.spec.name} failed: {type(e).__name__}: {e}", True
