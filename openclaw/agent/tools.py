# -*- test-case-name: tests.test_tools -*-
"""
The agent's tools: C{read}, C{write}, C{edit}, C{exec}, C{web_fetch},
C{sessions_list}, C{sessions_send}.

Paths are relative to the workspace; a sandboxed session cannot leave it.
The main session runs C{exec} on the host; other sessions run it in the
sandbox when C{gateway.sandbox.mode} is C{non-main} (all of them with C{all}).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred

from openclaw.agent.providers import ToolSpec
from openclaw.agent.sandbox import ISandbox, SandboxUnavailable
from openclaw.agent.webfetch import FetchRefused
from openclaw.process import run_process
from openclaw.store import atomic_write

READ_CAP = 256 * 1024
OUTPUT_CAP = 64 * 1024
EXEC_TIMEOUT = 120.0
SEND_TIMEOUT = 120.0
# Never callable over HTTP /tools/invoke unless allowed explicitly (spec §7).
HTTP_DENY = frozenset({"exec", "spawn", "shell", "fs_write", "fs_delete", "fs_move", "apply_patch", "sessions_spawn", "sessions_send", "cron", "gateway", "nodes"})


class ToolError(Exception):
    """A tool failed; the message goes back to the model as the tool result."""


@attrs.frozen
class ToolContext:
    workspace: Path
    session_key: str
    sandbox: ISandbox | None  # None: runs on the host
    runtime: Any
    reactor: Any

    @property
    def confined(self) -> bool:
        return self.sandbox is not None


def _path(ctx: ToolContext, raw: Any) -> Path:
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise ToolError("path is required")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = ctx.workspace / path
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(ctx.workspace))
    if ctx.confined and real != root and root not in real.parents:
        raise ToolError(f"path is outside the workspace: {raw}")
    return real


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... truncated {len(text) - limit} characters]"


async def tool_read(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(ctx, args.get("path"))
    try:
        data = path.read_bytes()[: READ_CAP * 4]
    except FileNotFoundError:
        raise ToolError(f"no such file: {args.get('path')}")
    except IsADirectoryError:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:500]
        return "\n".join(entries)
    except OSError as e:
        raise ToolError(f"cannot read {args.get('path')}: {e.strerror}")
    lines = data.decode("utf-8", "replace").splitlines()
    offset = max(int(args.get("offset") or 1), 1) - 1
    limit = int(args.get("limit") or 2000)
    return _cap("\n".join(lines[offset : offset + limit]), READ_CAP)


async def tool_write(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(ctx, args.get("path"))
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    atomic_write(path, content.encode("utf-8"), mode=0o644)
    return f"wrote {len(content.encode('utf-8'))} bytes to {args['path']}"


async def tool_edit(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = _path(ctx, args.get("path"))
    old, new = args.get("oldText"), args.get("newText")
    if not isinstance(old, str) or not old or not isinstance(new, str):
        raise ToolError("oldText (non-empty) and newText are required")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ToolError(f"cannot read {args.get('path')}: {e.strerror}")
    count = text.count(old)
    if count != 1:
        raise ToolError(f"oldText must occur exactly once (found {count} times)")
    atomic_write(path, text.replace(old, new, 1).encode("utf-8"), mode=0o644)
    return f"edited {args['path']}"


async def tool_exec(ctx: ToolContext, args: dict[str, Any]) -> str:
    command = args.get("command")
    if isinstance(command, str) and command.strip():
        argv = ["/bin/sh", "-c", command]
    elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise ToolError("command is required (a shell string or an argv list)")
    timeout = min(float(args.get("timeoutMs") or EXEC_TIMEOUT * 1000) / 1000, 600.0)
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if ctx.sandbox is not None:
        try:
            argv = ctx.sandbox.command(argv, ctx.workspace)
        except SandboxUnavailable as e:
            raise ToolError(f"exec refused: {e}")
        cwd = str(ctx.workspace)
    else:
        cwd = str(_path(ctx, args.get("cwd") or "."))
        if argv[0] != "/bin/sh":
            found = shutil.which(argv[0], path=path)
            if found is None:
                raise ToolError(f"command not found: {argv[0]}")
            argv[0] = found
    env = {"PATH": path, "HOME": os.environ.get("HOME", str(ctx.workspace)), "LANG": "C.UTF-8"}
    try:
        ran = await run_process(ctx.reactor, argv, timeout, env, cwd, cap=OUTPUT_CAP)
    except OSError as e:
        raise ToolError(f"cannot start {argv[0]}: {e.strerror}")
    parts = [f"exit code: {ran.code}" + (" (timed out)" if ran.timed_out else "")]
    if ran.stdout:
        parts.append("stdout:\n" + _cap(ran.stdout.decode("utf-8", "replace"), OUTPUT_CAP))
    if ran.stderr:
        parts.append("stderr:\n" + _cap(ran.stderr.decode("utf-8", "replace"), OUTPUT_CAP))
    return "\n".join(parts)


async def tool_web_fetch(ctx: ToolContext, args: dict[str, Any]) -> str:
    url = args.get("url")
    if not isinstance(url, str):
        raise ToolError("url is required")
    max_bytes = min(int(args.get("maxBytes") or 512 * 1024), 2 * 1024 * 1024)
    try:
        result = await ctx.runtime.fetcher.fetch(url, max_bytes)
    except FetchRefused as e:
        raise ToolError(str(e))
    except Exception as e:
        raise ToolError(f"fetch failed: {type(e).__name__}: {e}")
    note = " (truncated)" if result.truncated else ""
    return f"HTTP {result.status} {result.content_type}{note}\n\n{result.text}"


async def tool_sessions_list(ctx: ToolContext, args: dict[str, Any]) -> str:
    rows = ctx.runtime.store(ctx.session_key.split(":", 2)[1]).rows()[:100]
    return "\n".join(f"{key} ({entry.get('label', '')}) updated {entry.get('updatedAt')}" for key, entry in rows) or "no sessions"


async def tool_sessions_send(ctx: ToolContext, args: dict[str, Any]) -> str:
    target, message = args.get("sessionKey"), args.get("message")
    if not isinstance(target, str) or not isinstance(message, str) or not message:
        raise ToolError("sessionKey and message are required")
    if ctx.runtime.key(target, ctx.session_key.split(":", 2)[1]) == ctx.session_key:
        raise ToolError("a session cannot send to itself")
    run, _ = ctx.runtime.submit(target, message, f"send-{uuid.uuid4()}")
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
        Tool(_spec("exec", "Run a command (shell string or argv list) in the workspace.", {"command": {}, "cwd": {"type": "string"}, "timeoutMs": {"type": "integer"}}, ["command"]), tool_exec),
        Tool(_spec("web_fetch", "Fetch a public http(s) URL and return its text.", {"url": {"type": "string"}, "maxBytes": {"type": "integer"}}, ["url"]), tool_web_fetch),
        Tool(_spec("sessions_list", "List the agent's sessions.", {}, []), tool_sessions_list),
        Tool(_spec("sessions_send", "Send a message to another session and wait for its reply.", {"sessionKey": {"type": "string"}, "message": {"type": "string"}}, ["sessionKey", "message"]), tool_sessions_send),
    )
}


def tools_for(config: dict[str, Any], extra: dict[str, Any] | None = None) -> list[Tool]:
    """The tools an agent gets (with C{extra} ones, e.g. channels' C{message}): all, minus C{tools.deny}, or only C{tools.allow} when set."""
    section = config.get("tools") or {}
    allow = section.get("allow") if isinstance(section.get("allow"), list) else None
    deny = set(section.get("deny") or []) if isinstance(section.get("deny"), list) else set()
    return [t for name, t in {**TOOLS, **(extra or {})}.items() if name not in deny and (allow is None or name in allow)]


async def run_tool(tool: Tool, ctx: ToolContext, args: Any) -> tuple[str, bool]:
    """C{(text, is_error)}: a failing tool is a result the model can read, never a crash."""
    if not isinstance(args, dict):
        return "arguments must be an object", True
    try:
        return str(await tool.run(ctx, args)), False
    except ToolError as e:
        return str(e), True
    except Exception as e:
        return f"{tool.spec.name} failed: {type(e).__name__}: {e}", True
