# -*- test-case-name: tests.test_skills -*-
"""C{openclaw skills list|info|check}: the skills this machine's agent sees, and why one is not eligible."""

from __future__ import annotations

import json
from typing import IO, Any, Mapping

from openclaw.agent.memory.settings import workspace_of
from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG, ConfigError, load_valid
from openclaw.skills.loader import Context, report, skill_dirs, why_not


class _SkillsCommand(CommandOptions):
    optFlags = [["json", None, "Print JSON."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        try:
            loaded = load_valid(layout, env)
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        dirs = skill_dirs(loaded.config, workspace_of(loaded.config, layout.state_dir), layout.state_dir)
        return self.show(report(dirs, Context(loaded.config, loaded.env)), out, err)

    def show(self, found: dict[str, Any], out: IO[str], err: IO[str]) -> int:
        raise NotImplementedError


def _line(skill: dict[str, Any]) -> str:
    mark = "ready  " if skill["eligible"] else "missing" if not (skill["disabled"] or skill["blockedByAllowlist"]) else "off    "
    source = skill["source"].removeprefix("openclaw-")
    text = f"{mark}  {skill['name']:<20} {source:<10} {skill['description'][:70]}"
    why = why_not(skill)
    return text + (f"\n         ({why})" if why else "")


class SkillsListOptions(_SkillsCommand):
    synopsis = "[--eligible] [--json]"
    longdesc = "Every skill (workspace, managed, bundled, extra), ready or not, and why not."
    optFlags = [["eligible", None, "Only the skills the agent can use."]]

    def show(self, found: dict[str, Any], out: IO[str], err: IO[str]) -> int:
        skills = [s for s in found["skills"] if s["eligible"] or not self["eligible"]]
        if self["json"]:
            out.write(json.dumps({**found, "skills": skills}, indent=2, ensure_ascii=False) + "\n")
            return 0
        if not skills:
            out.write("No skills found.\n" if not self["eligible"] else "No eligible skills.\n")
        for skill in skills:
            out.write(_line(skill) + "\n")
        return 0


class SkillsInfoOptions(_SkillsCommand):
    synopsis = "NAME [--json]"
    longdesc = "One skill: where it is, what it needs, what is missing."

    def parseArgs(self, name: str) -> None:
        self["name"] = name

    def show(self, found: dict[str, Any], out: IO[str], err: IO[str]) -> int:
        skill = next((s for s in found["skills"] if self["name"] in (s["name"], s["skillKey"])), None)
        if skill is None:
            err.write(f"No skill named {self['name']!r}. `openclaw skills list` shows them all.\n")
            return 1
        if self["json"]:
            out.write(json.dumps(skill, indent=2, ensure_ascii=False) + "\n")
            return 0
        out.write(f"{skill.get('emoji', '')} {skill['name']}".strip() + f": {skill['description']}\n")
        out.write(f"  status: {'eligible' if skill['eligible'] else 'not eligible: ' + why_not(skill)}\n")
        out.write(f"  source: {skill['source']}\n  file: {skill['filePath']}\n  config key: skills.entries.{skill['skillKey']}\n")
        req = skill["requirements"]
        for label, key in (("bins", "bins"), ("any of bins", "anyBins"), ("env", "env"), ("config", "config"), ("os", "os")):
            if req[key]:
                missing = set(skill["missing"][key])
                shown = ", ".join(f"{v} (missing)" if v in missing else v for v in req[key])
                out.write(f"  needs {label}: {shown}\n")
        if skill.get("primaryEnv"):
            out.write(f"  api key env: {skill['primaryEnv']} (skills.entries.{skill['skillKey']}.apiKey)\n")
        if skill.get("homepage"):
            out.write(f"  homepage: {skill['homepage']}\n")
        return 0


class SkillsCheckOptions(_SkillsCommand):
    synopsis = "[--json]"
    longdesc = "Which skills are ready, and what the others are missing."

    def show(self, found: dict[str, Any], out: IO[str], err: IO[str]) -> int:
        skills = found["skills"]
        ready = [s["name"] for s in skills if s["eligible"]]
        off = [s["name"] for s in skills if s["disabled"] or s["blockedByAllowlist"]]
        missing = {s["name"]: why_not(s) for s in skills if not s["eligible"] and s["name"] not in off}
        if self["json"]:
            out.write(json.dumps({"total": len(skills), "eligible": ready, "disabled": off, "missingRequirements": missing}, indent=2) + "\n")
            return 0
        out.write(f"Skills: {len(skills)} found, {len(ready)} ready, {len(off)} turned off, {len(missing)} missing requirements\n")
        if ready:
            out.write(f"Ready: {', '.join(ready)}\n")
        if off:
            out.write(f"Turned off: {', '.join(off)}\n")
        for name, why in missing.items():
            out.write(f"Missing for {name}: {why}\n")
        return 0


class SkillsOptions(CommandOptions):
    synopsis = "list|info|check"
    longdesc = "Skills (SKILL.md folders): which the agent can use, and what the others need."
    subCommands = [
        ["list", None, SkillsListOptions, "List skills."],
        ["info", None, SkillsInfoOptions, "Show one skill."],
        ["check", None, SkillsCheckOptions, "Summarise what is ready and what is missing."],
    ]
