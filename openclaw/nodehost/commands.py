# -*- test-case-name: tests.test_nodehost -*-
"""
What a Linux/macOS node host can do: C{system.run} (argv only, no shell,
behind C{exec-approvals.json}), C{system.which}, C{system.notify},
C{location.get}, C{system.execApprovals.get|set}.
Anything else is answered C{UNAVAILABLE "command not supported"}.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from twisted.logger import Logger

from openclaw.agent.execpolicy import FILE_NAME, ApprovalsFile, Check, PolicyFileError, analyze_argv, analyze_shell, check, needs_approval, resolve, safe_bins_from, view
from openclaw.nodehost.errors import CommandError
from openclaw.nodehost.media import FfmpegMedia
from openclaw.process import OUTPUT_CAP, ProcessResult, run_process

__all__ = ["COMMANDS", "OUTPUT_CAP", "ApprovalPolicy", "CommandError", "NodeCommands"]

log = Logger(namespace="openclaw.nodehost")

DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 10 * 60 * 1000
COMMANDS = ("system.run", "system.which", "system.notify", "location.get", "system.execApprovals.get", "system.execApprovals.set")


class ApprovalPolicy:
    """
    This host's C{exec-approvals.json} (upstream's format, shared with the
    gateway: L{openclaw.agent.execpolicy}) applied to one C{system.run}.
    Without a file: C{allowlist} + C{on-miss} (C{node.json} C{exec.security}
    / C{exec.ask} change the fallback), so anything not allowlisted needs the
    invoke's C{approvalDecision}; C{allow-always} remembers the program's path.
    """

    def __init__(self, path: Path, settings: dict[str, Any] | None = None) -> None:
        self.file = ApprovalsFile(path)
        block = (settings or {}).get("exec")
        self.settings = block if isinstance(block, dict) else {}

    @property
    def path(self) -> Path:
        return self.file.path

    def decide(self, argv: list[str], raw_command: str | None, cwd: str | None, path_env: str, agent_id: str | None, decision: str | None) -> tuple[str, str]:
        """C{("allow", "")} or C{(code, reason)}: C{SYSTEM_RUN_DISABLED} or C{SYSTEM_RUN_DENIED}."""
        security = str(self.settings.get("security")) if self.settings.get("security") in ("deny", "allowlist", "full") else "allowlist"
        ask = str(self.settings.get("ask")) if self.settings.get("ask") in ("off", "on-miss", "always") else "on-miss"
        policy = resolve(self.file.read().file, agent_id, security, ask)
        if policy.security == "deny":
            return "SYSTEM_RUN_DISABLED", "security=deny"
        analysis = analyze_shell(raw_command, cwd, path_env) if raw_command else analyze_argv(argv, cwd, path_env)
        found = check(analysis, policy.allowlist, safe_bins_from(self.settings.get("safeBins")), cwd) if policy.security == "allowlist" else Check(True)
        approved = decision in ("allow-once", "allow-always")
        if needs_approval(policy.ask, policy.security, analysis.ok, found.satisfied) and not approved:
            return "SYSTEM_RUN_DENIED", "approval required (send approvalDecision, or add its path to exec-approvals.json)"
        if decision == "allow-always" and policy.security == "allowlist" and analysis.ok:
            self.file.change(agent_id or "main", add=[s.resolved for s in analysis.segments if s.resolved])
        elif policy.security == "allowlist" and not (analysis.ok and found.satisfied) and not approved:
            return "SYSTEM_RUN_DENIED", f"allowlist miss ({analysis.reason or 'not in exec-approvals.json'})"
        if found.matched:
            resolved = analysis.segments[0].resolved if analysis.segments else None
            self.file.change(agent_id or "main", used={str(e["pattern"]): (raw_command or " ".join(argv), resolved) for e in found.matched})
        return "allow", ""


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
        self.policy = ApprovalPolicy(self.state_dir / FILE_NAME, self.settings)
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
            "system.execApprovals.get": self.approvals_get,
            "system.execApprovals.set": self.approvals_set,
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
        raw = params.get("rawCommand") if isinstance(params.get("rawCommand"), str) and params["rawCommand"].strip() else None
        agent_id = params.get("agentId") if isinstance(params.get("agentId"), str) and params["agentId"].strip() else None
        session = {"sessionKey": params.get("sessionKey") or "main", "runId": params.get("runId"), "command": argv, "host": "node"}

        decision = params.get("approvalDecision")
        if decision not in ("allow-once", "allow-always") and params.get("approved") is True:
            decision = "allow-once"
        verdict, reason = self.policy.decide(argv, raw, cwd, self.path_env, agent_id, decision)
        if verdict != "allow":
            self.emit("exec.denied", {**session, "reason": reason})
            raise CommandError(verdict, f"{verdict}: {reason}")
        resolved = shutil.which(argv[0], path=self.path_env) if "/" not in argv[0] else argv[0]
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

    # -- system.execApprovals.get / set (the gateway's exec.approvals.node.get / set)

    def _snapshot(self, snapshot: Any) -> dict[str, Any]:
        return {"path": str(snapshot.path), "exists": snapshot.exists, "hash": snapshot.hash, "file": view(snapshot.file)}

    async def approvals_get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._snapshot(self.policy.file.read())

    async def approvals_set(self, params: dict[str, Any]) -> dict[str, Any]:
        file, base_hash = params.get("file"), params.get("baseHash")
        if not isinstance(file, dict) or file.get("version") != 1:
            raise CommandError("INVALID_REQUEST", "INVALID_REQUEST: exec approvals file required (version 1)")
        try:
            return self._snapshot(self.policy.file.replace(file, base_hash if isinstance(base_hash, str) else None))
        except PolicyFileError as e:
            raise CommandError("INVALID_REQUEST", f"INVALID_REQUEST: {e}")

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

