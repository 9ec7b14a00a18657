# -*- test-case-name: tests.test_doctor -*-
"""
`openclaw doctor [--verbose] [--fix] [--yes] [--non-interactive]
[--generate-gateway-token] [--deep] [--json]`.

Exit codes: 0 nothing wrong is left (warnings may be), 1 errors are left,
78 the config is invalid (the gateway would exit 78 too), 2 usage.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Callable, Mapping

from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG
from openclaw.ops.doctor import ERROR, INFO, OK, WARN, Doctor, Finding, apply, http_live_call
from openclaw.paths import Layout

MARK = {OK: "ok   ", INFO: "info ", WARN: "WARN ", ERROR: "ERROR"}


class DoctorOptions(CommandOptions):
    synopsis = "[--fix] [--yes] [--non-interactive] [--generate-gateway-token] [--deep] [--verbose] [--json]"
    longdesc = (
        "Check the config, legacy keys and variables, permissions, auth, providers, channels, sandbox, ports, "
        "disk and memory, stale files and the service. --fix repairs what is safe (the config is backed up "
        "first to openclaw.json.bak); the rest is explained. Exit 0: nothing wrong left; 1: errors left; 78: invalid config."
    )
    optParameters = [["config", "c", None, "Config file."]]
    optFlags = [
        ["fix", None, "Apply the safe repairs without asking."],
        ["repair", None, "Same as --fix."],
        ["yes", "y", "Answer yes to every question."],
        ["non-interactive", None, "Ask nothing; apply only config migrations."],
        ["generate-gateway-token", None, "Store a new gateway token when none is configured."],
        ["deep", None, "Also make one tiny live call to the model provider."],
        ["verbose", "v", "Show the checks that passed too."],
        ["json", None, "Print JSON."],
    ]

    def __init__(self, prompt: Callable[[str], str] = input, isatty: Callable[[], bool] = lambda: sys.stdin.isatty()) -> None:
        super().__init__()
        self._prompt = prompt
        self._isatty = isatty

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        doctor = Doctor(layout, env, deep=self["deep"], live_call=http_live_call)
        findings = doctor.run()
        fix = self["fix"] or self["repair"] or self["yes"]
        tokens = [f for f in findings if f.check == "auth" and f.fixable]
        repaired: list[Finding] = []
        if self["generate-gateway-token"] and tokens:
            repaired += apply(doctor, tokens)
        fixable = [f for f in findings if f.fixable]
        if fixable and not fix and not self["non-interactive"] and not self["json"] and self._isatty():
            self.show(out, layout, findings, [])
            answer = self._prompt(f"Apply the {len(fixable)} safe repair(s) above? (the config is backed up first) [y/N] ").strip().lower()
            fix = answer in ("y", "yes")
        if fix:
            repaired += apply(doctor, findings)
        elif self["non-interactive"]:
            repaired += apply(doctor, findings, migrations_only=True)
        if repaired:
            findings = doctor.run()  # what is left, as the checks see it now
        left = [f for f in findings if f.level == ERROR]
        if self["json"]:
            out.write(json.dumps({"ok": not left, "findings": [f.as_json() for f in findings], "repaired": [f.as_json() for f in repaired]}, indent=2) + "\n")
        else:
            self.show(out, layout, findings, repaired)
        if any(f.check == "config" and f.level == ERROR for f in findings):
            return EX_CONFIG
        return 1 if left else 0

    def show(self, out: IO[str], layout: Layout, findings: list[Finding], repaired: list[Finding]) -> None:
        out.write(f"OpenClaw doctor: profile {layout.profile or 'default'}, state {layout.state_dir}\n")
        for f in findings:
            if f.level in (OK, INFO) and not self["verbose"]:
                continue
            line = f"  {MARK[f.level]} {f.title}: {f.detail}"
            if f.fix and f.level != OK:
                line += f"\n         fix: {f.fix}" + (" [doctor can fix this]" if f.fixable else "")
            out.write(line + "\n")
        if repaired:
            out.write(f"Repaired (config backed up to {layout.config_path.name}.bak):\n")
            out.write("".join(f"  done  {f.fixed}\n" for f in repaired))
        errors = sum(f.level == ERROR for f in findings)
        warnings = sum(f.level == WARN for f in findings)
        fixable = sum(f.fixable for f in findings)
        summary = f"{errors} error(s), {warnings} warning(s)"
        if fixable:
            summary += f"; {fixable} can be repaired: `openclaw doctor --fix`"
        if not errors and not warnings:
            summary = "No problems found."
        out.write(summary + "\n")
