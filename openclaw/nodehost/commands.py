# -*- test-case-name: tests.test_nodehost -*-
"""
What a Linux/macOS node host can do: C{system.run} (argv only, no shell,
behind an approval policy), C{system.which}, C{system.notify}, C{location.get}.
Anything else is answered C{UNAVAILABLE "command not supported"}.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from twisted.logger import Logger

from openclaw.nodehost.errors import CommandError
from openclaw.nodehost.media import FfmpegMedia
from openclaw.process import OUTPUT_CAP, ProcessResult, run_process
from openclaw.store import read_json, write_json

__all__ = ["COMMANDS", "OUTPUT_CAP", "ApprovalPolicy", "CommandError", "NodeCommands"]

log = Logger(namespace="openclaw.nodehost")

DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 10 * 60 * 1000
COMMANDS = ("system.run", "system.which", "system.notify", "location.get")


class ApprovalPolicy:
    """
    C{exec-approvals.json}: C{{"version": 1, "default": "deny"|"allow"|"ask",
    "allow": [patterns], "deny": [patterns]}}. A pattern matches the program
    name or its resolved path (shell globs). Deny wins over allow; "ask"
    needs the invoke's C{approvalDecision}, and C{allow-always} remembers it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        stored = read_json(self.path, None)
        policy = stored if isinstance(stored, dict) else {}
        default = policy.get("default") if policy.get("default") in ("deny", "allow", "ask") else "ask"
        strings = lambda key: [p for p in policy.get(key) or [] if isinstance(p, str)]  # noqa: E731
        return {"version": 1, "default": default, "allow": strings("allow"), "deny": strings("deny")}

    def decide(self, program: str, resolved: str | None, decision: str | None) -> str:
        """C{"allow"} or the reason it is not."""
        policy = self.load()
        names = {program, os.path.basename(program)} | ({resolved} if resolved else set())
        matches = lambda patterns: any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)  # noqa: E731
        if matches(policy["deny"]):
            return "denied by policy"
        if matches(policy["allow"]) or policy["default"] == "allow":
            return "allow"
        if policy["default"] == "deny":
            return "not in the allow list"
        if decision == "allow-always":
            policy["allow"].append(resolved or program)
            write_json(self.path, policy)
            return "allow"
        if decision == "allow-once":
            return "allow"
        return "approval required (send approvalDecision, or add it to exec-approvals.json)"


class NodeCommands:
    def __init__(
        self,
        reactor: Any,
        state_dir: Path,
        settings: dict[str, Any] | None = None,
        emit: Callable[[str, dict[str, Any]], None] = lambda event, payload: None,
    ) -> None:
        self.reactor = reactor
        self.state_dir = Path(state_dir)
        self.settings = settings or {}
        self.policy = ApprovalPolicy(self.state_dir / "exec-approvals.json")
        self.emit = emit
        self.path_env = self.settings.get("pathEnv") or os.environ.get("PATH", "/usr/bin:/bin")
        self.media = FfmpegMedia(self.run_process, self.path_env)

    def declared(self) -> list[str]:
        """What this host offers: the system commands, plus capture where ffmpeg can."""
        return [*COMMANDS, *self.media.commands()]

    async def run_process(self, argv: list[str], timeout: float, env: dict[str, str] | None = None, cwd: str | None = None, executable: str | None = None) -> ProcessResult:
        """L{openclaw.process.run_process} with this host's PATH (and display) by default."""
        if env is None:
            env = {"PATH": self.path_env, **{k: v for k, v in os.environ.items() if k in ("HOME", "DISPLAY", "LANG")}}
        return await run_process(self.reactor, argv, timeout, env, cwd, executable)

    async def handle(self, command: str, params: Any) -> Any:
        params = params if isinstance(params, dict) else {}
        handler = {
            "system.run": self.system_run,
            "system.which": self.system_which,
            "system.notify": self.system_notify,
            "location.get": self.location_get,
            "camera.list": self.media.camera_list,
            "camera.snap": self.media.camera_snap,
            "screen.record": self.media.screen_record,
        }.get(command)
        if handler is None or (command not in COMMANDS and command not in self.media.commands()):
            raise CommandError("UNAVAILABLE", "command not supported")
        return await handler(params)

    # -- system.which

    async def system_which(self, params: dict[str, Any]) -> dict[str, Any]:
        bins = params.get("bins")
        if not isinstance(bins, list) or not bins or not all(isinstance(b, str) for b in bins):
            raise CommandError("INVALID_REQUEST", "bins required")
        found = {}
        for name in bins[:64]:
            path = shutil.which(name, path=self.path_env)
            if path:
                found[name] = os.path.abspath(path)
        return {"bins": found}

    # -- system.run

    async def system_run(self, params: dict[str, Any]) -> dict[str, Any]:
        argv = params.get("command")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise CommandError("INVALID_REQUEST", "command required (an argv list of strings)")
        timeout_ms = params.get("timeoutMs", DEFAULT_TIMEOUT_MS)
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
            raise CommandError("INVALID_REQUEST", "timeoutMs must be a positive integer")
        timeout = min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        cwd = params.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not os.path.isdir(cwd)):
            raise CommandError("INVALID_REQUEST", f"cwd is not a directory: {cwd}")
        extra_env = params.get("env") or {}
        if not isinstance(extra_env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra_env.items()):
            raise CommandError("INVALID_REQUEST", "env must map strings to strings")
        session = {"sessionKey": params.get("sessionKey") or "main", "runId": params.get("runId"), "command": argv}

        resolved = shutil.which(argv[0], path=self.path_env) if "/" not in argv[0] else argv[0]
        verdict = self.policy.decide(argv[0], os.path.abspath(resolved) if resolved else None, params.get("approvalDecision"))
        if verdict != "allow":
            self.emit("exec.denied", {**session, "reason": verdict})
            raise CommandError("SYSTEM_RUN_DENIED", f"SYSTEM_RUN_DENIED: {verdict}")
        if resolved is None or not os.access(resolved, os.X_OK):
            raise CommandError("INVALID_REQUEST", f"command not found: {argv[0]}")

        env = {"PATH": self.path_env, "HOME": os.environ.get("HOME", "/"), "LANG": os.environ.get("LANG", "C.UTF-8"), **extra_env}
        self.emit("exec.started", session)
        try:
            ran = await self.run_process(argv, timeout, env=env, cwd=cwd or str(self.state_dir), executable=resolved)
        except OSError as e:
            raise CommandError("UNAVAILABLE", f"cannot start {argv[0]}: {e.strerror}")
        code, out, err, truncated, timed_out = ran.code, ran.stdout, ran.stderr, ran.truncated, ran.timed_out
        result: dict[str, Any] = {
            "exitCode": code,
            "timedOut": timed_out,
            "success": code == 0 and not timed_out,
            "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"),
            "error": f"timed out after {timeout_ms} ms" if timed_out else None,
            "truncated": truncated,
        }
        self.emit("exec.finished", {**session, "exitCode": code, "timedOut": timed_out, "output": result["stdout"][-2000:]})
        return result

    # -- system.notify

    async def system_notify(self, params: dict[str, Any]) -> dict[str, Any]:
        body = params.get("body")
        if not isinstance(body, str) or not body:
            raise CommandError("INVALID_REQUEST", "body required")
        notify = shutil.which("notify-send", path=self.path_env)
        if notify is None:
            raise CommandError("UNAVAILABLE", "system.notify unavailable: notify-send not found on this host")
        title = params["title"] if isinstance(params.get("title"), str) else "OpenClaw"
        urgency = {"timeSensitive": "critical", "active": "normal", "passive": "low"}.get(str(params.get("priority")), "normal")
        env = {"PATH": self.path_env, **{k: v for k, v in os.environ.items() if k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}}
        ran = await self.run_process([notify, "-u", urgency, title, body], 10, env=env)
        if ran.code != 0:
            raise CommandError("UNAVAILABLE", f"notify-send failed: {ran.stderr.decode('utf-8', 'replace').strip()[:200]}")
        return {"ok": True}

    # -- location.get

    async def location_get(self, params: dict[str, Any]) -> dict[str, Any]:
        fixed = self.settings.get("location")
        if not isinstance(fixed, dict) or not isinstance(fixed.get("lat"), (int, float)) or not isinstance(fixed.get("lon"), (int, float)):
            raise CommandError("LOCATION_DISABLED", "LOCATION_DISABLED: no location configured for this node host")
        return {
            "lat": fixed["lat"],
            "lon": fixed["lon"],
            "accuracyMeters": fixed.get("accuracyMeters", 1000),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
            "isPrecise": bool(fixed.get("isPrecise", False)),
            "source": "unknown",
        }

