# -*- test-case-name: tests.test_skills -*-
"""
Skills: folders with a C{SKILL.md} (frontmatter C{name}, C{description},
C{metadata} with C{openclaw.requires.{bins,anyBins,env,config}} and
C{openclaw.os}), found in C{skills.load.extraDirs} (lowest precedence), the
bundled skills, C{<state>/skills} (managed) and C{<workspace>/skills}
(highest): a name found twice is the higher one's.

Blocking (it reads folders and probes C{PATH}): run it in a thread.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

import attrs
import json5

BUNDLED = Path(__file__).resolve().parent / "bundled"
MAX_SKILLS = 200  # per folder
MAX_SKILL_BYTES = 256 * 1024
INLINE_CHARS = 4000  # per skill, when its file cannot be read from the session (sandboxed)
INLINE_TOTAL = 24_000
MAX_ENV = 100
SOURCES = ("openclaw-extra", "openclaw-bundled", "openclaw-managed", "openclaw-workspace")  # lowest first
_KEY_LINE = re.compile(r"^([A-Za-z0-9_.-]+):(.*)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


# -- SKILL.md


def parse_frontmatter(text: str) -> tuple[dict[str, str], str]:
    """The C{---} block's keys (values as written, continuation lines joined) and the body after it."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return {}, text
    block = lines[1:end]
    fields: dict[str, str] = {}
    i = 0
    while i < len(block):
        line = block[i].rstrip("\r")
        i += 1
        found = _KEY_LINE.match(line)
        if not found:
            continue
        key, value = found.group(1), found.group(2).strip()
        more = []
        while i < len(block) and (block[i][:1] in (" ", "\t") or not block[i].strip()):
            more.append(block[i].rstrip("\r"))
            i += 1
        if more and value in ("", "|", ">"):
            value = "\n".join(more)
        elif more:
            value = value + "\n" + "\n".join(more)
        fields[key] = value.strip()
    return fields, "\n".join(lines[end + 1 :])


def _scalar(value: str) -> Any:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if value[:1] in "[{":
        try:
            return json5.loads(value)
        except ValueError:
            if value.startswith("[") and value.endswith("]"):
                return [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
            return value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _yaml(text: str) -> Any:
    """The small YAML subset skills use for C{metadata}: nested mappings, C{- item} lists, flow lists."""
    rows = [(len(line) - len(line.lstrip(" ")), line.strip()) for line in text.split("\n") if line.strip() and not line.strip().startswith("#")]

    def block(at: int, indent: int) -> tuple[Any, int]:
        if at < len(rows) and rows[at][1].startswith("- "):
            items = []
            while at < len(rows) and rows[at][0] == indent and rows[at][1].startswith("- "):
                items.append(_scalar(rows[at][1][2:]))
                at += 1
            return items, at
        mapping: dict[str, Any] = {}
        while at < len(rows) and rows[at][0] == indent:
            key, sep, rest = rows[at][1].partition(":")
            if not sep:
                raise ValueError(f"not a mapping line: {rows[at][1][:40]}")
            at += 1
            if rest.strip():
                mapping[_scalar(key)] = _scalar(rest)
            elif at < len(rows) and rows[at][0] > indent:
                mapping[_scalar(key)], at = block(at, rows[at][0])
            else:
                mapping[_scalar(key)] = None
        return mapping, at

    if not rows:
        return {}
    value, used = block(0, rows[0][0])
    if used != len(rows):
        raise ValueError("inconsistent indentation")
    return value


def parse_metadata(raw: str | None) -> dict[str, Any]:
    """C{metadata}: JSON/JSON5 (one line or a block) or a YAML mapping; anything else is empty."""
    if not raw:
        return {}
    for parse in (json5.loads, _yaml):
        try:
            value = parse(raw)
        except (ValueError, TypeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    return [v.strip() for v in value if isinstance(v, str) and v.strip()][:64] if isinstance(value, list) else []


@attrs.frozen
class Requirements:
    bins: tuple[str, ...] = ()
    any_bins: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    os: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {"bins": list(self.bins), "anyBins": list(self.any_bins), "env": list(self.env), "config": list(self.config), "os": list(self.os)}


@attrs.frozen
class Skill:
    name: str
    description: str
    source: str
    file_path: Path
    body: str = attrs.field(repr=False)
    key: str = ""
    requires: Requirements = Requirements()
    always: bool = False
    primary_env: str | None = None
    emoji: str | None = None
    homepage: str | None = None
    model_invocable: bool = True
    install: tuple[dict[str, Any], ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.file_path.parent


def _flag(value: str | None, default: bool) -> bool:
    parsed = _scalar(value) if value is not None else default
    return parsed if isinstance(parsed, bool) else default


def read_skill(path: Path, source: str) -> Skill | None:
    """One C{SKILL.md}; None when it is not a readable, bounded text file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SKILL_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_SKILL_BYTES:
        return None
    text = data.decode("utf-8", "replace")
    fields, body = parse_frontmatter(text)
    name = str(_scalar(fields["name"]) if fields.get("name") else path.parent.name).strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        return None
    meta = parse_metadata(fields.get("metadata"))
    own: dict[str, Any] = meta["openclaw"] if isinstance(meta.get("openclaw"), dict) else {}
    requires: dict[str, Any] = own["requires"] if isinstance(own.get("requires"), dict) else {}
    description = _scalar(fields.get("description", "")) if fields.get("description") else ""
    homepage = own.get("homepage") if isinstance(own.get("homepage"), str) else (_scalar(fields["homepage"]) if fields.get("homepage") else None)
    install = tuple(i for i in own.get("install") or () if isinstance(i, dict))[:16] if isinstance(own.get("install"), list) else ()
    return Skill(
        name=name,
        description=" ".join(str(description or "").split())[:1024],
        source=source,
        file_path=path,
        body=body,
        key=str(own["skillKey"]) if isinstance(own.get("skillKey"), str) and own["skillKey"].strip() else name,
        requires=Requirements(
            bins=tuple(_strings(requires.get("bins"))),
            any_bins=tuple(_strings(requires.get("anyBins"))),
            env=tuple(e for e in _strings(requires.get("env")) if _ENV_NAME.match(e)),
            config=tuple(_strings(requires.get("config"))),
            os=tuple(_strings(own.get("os"))),
        ),
        always=own.get("always") is True,
        primary_env=own["primaryEnv"] if isinstance(own.get("primaryEnv"), str) and _ENV_NAME.match(own["primaryEnv"]) else None,
        emoji=own["emoji"] if isinstance(own.get("emoji"), str) else None,
        homepage=homepage if isinstance(homepage, str) else None,
        model_invocable=not _flag(fields.get("disable-model-invocation"), False),
        install=install,
    )


# -- finding


@attrs.frozen
class SkillDirs:
    workspace: Path
    managed: Path
    bundled: Path = BUNDLED
    extra: tuple[Path, ...] = ()

    def ordered(self) -> list[tuple[str, Path]]:
        """Folders with their source, lowest precedence first."""
        return [*(("openclaw-extra", d) for d in self.extra), ("openclaw-bundled", self.bundled), ("openclaw-managed", self.managed), ("openclaw-workspace", self.workspace / "skills")]


def skill_dirs(config: Mapping[str, Any], workspace: Path, state_dir: Path) -> SkillDirs:
    load = (config.get("skills") or {}).get("load") if isinstance(config.get("skills"), dict) else None
    extra = load.get("extraDirs") if isinstance(load, dict) else None
    dirs = tuple(Path(d).expanduser() for d in extra if isinstance(d, str) and d.strip())[:16] if isinstance(extra, list) else ()
    return SkillDirs(Path(workspace), Path(state_dir) / "skills", BUNDLED, dirs)


def load_skills(dirs: SkillDirs) -> list[Skill]:
    """Every skill, one per name (the highest-precedence folder's), sorted by name."""
    found: dict[str, Skill] = {}
    for source, folder in dirs.ordered():
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        count = 0
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            skill = read_skill(Path(entry.path) / "SKILL.md", source)
            if skill is None:
                continue
            found[skill.name] = skill
            count += 1
            if count >= MAX_SKILLS:
                break
    return [found[name] for name in sorted(found)]


# -- eligibility


def _truthy(config: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return bool(node), node


def platform_name() -> str:
    return {"darwin": "darwin", "win32": "win32"}.get(sys.platform, "linux" if sys.platform.startswith("linux") else sys.platform)


@attrs.frozen
class Context:
    """What eligibility is judged against."""

    config: Mapping[str, Any]
    env: Mapping[str, str]
    platform: str = attrs.field(factory=platform_name)
    which: Callable[[str, str | None], str | None] = lambda name, path: shutil.which(name, path=path)

    def has_bin(self, name: str) -> bool:
        return bool(name) and len(name) <= 255 and "\x00" not in name and self.which(name, self.env.get("PATH") or os.defpath) is not None

    def entry(self, skill: Skill) -> dict[str, Any]:
        entries = (self.config.get("skills") or {}).get("entries") if isinstance(self.config.get("skills"), dict) else None
        found = entries.get(skill.key) if isinstance(entries, dict) else None
        return found if isinstance(found, dict) else {}


def status_entry(skill: Skill, ctx: Context) -> dict[str, Any]:
    """One skill as C{skills.status} reports it: what it needs, what is missing, and whether it is eligible."""
    entry = ctx.entry(skill)
    entry_env: dict[str, Any] = entry["env"] if isinstance(entry.get("env"), dict) else {}
    api_key = entry.get("apiKey") if isinstance(entry.get("apiKey"), str) and entry.get("apiKey") else None
    skills = ctx.config.get("skills")
    allow = skills.get("allowBundled") if isinstance(skills, dict) else None
    disabled = entry.get("enabled") is False
    blocked = skill.source == "openclaw-bundled" and isinstance(allow, list) and skill.name not in allow and skill.key not in allow
    req = skill.requires

    def env_ok(name: str) -> bool:
        return bool(ctx.env.get(name)) or isinstance(entry_env.get(name), str) and bool(entry_env[name]) or (api_key is not None and skill.primary_env == name)

    checks: list[dict[str, Any]] = []
    for path in req.config:
        satisfied, value = _truthy(ctx.config, path)
        checks.append({"path": path, "value": value if isinstance(value, (bool, int, float)) or value is None else "(set)", "satisfied": satisfied})
    missing = Requirements(
        bins=tuple(b for b in req.bins if not ctx.has_bin(b)),
        any_bins=req.any_bins if req.any_bins and not any(ctx.has_bin(b) for b in req.any_bins) else (),
        env=tuple(e for e in req.env if not env_ok(e)),
        config=tuple(c["path"] for c in checks if not c["satisfied"]),
        os=req.os if req.os and ctx.platform not in req.os else (),
    )
    unmet = any(missing.as_json().values())
    out: dict[str, Any] = {
        "name": skill.name,
        "description": skill.description,
        "source": skill.source,
        "bundled": skill.source == "openclaw-bundled",
        "filePath": str(skill.file_path),
        "baseDir": str(skill.base_dir),
        "skillKey": skill.key,
        "always": skill.always,
        "disabled": disabled,
        "blockedByAllowlist": blocked,
        "eligible": not disabled and not blocked and (skill.always or not unmet),
        "requirements": req.as_json(),
        "missing": missing.as_json(),
        "configChecks": checks,
        "install": [_install_option(i, n) for n, i in enumerate(skill.install) if ctx.platform in (_strings(i.get("os")) or [ctx.platform])],
    }
    for name, value in (("primaryEnv", skill.primary_env), ("emoji", skill.emoji), ("homepage", skill.homepage)):
        if value:
            out[name] = value
    return out


def _install_option(spec: dict[str, Any], n: int) -> dict[str, Any]:
    kind = spec.get("kind") if isinstance(spec.get("kind"), str) else "download"
    return {"id": str(spec.get("id") or f"{kind}-{n}"), "kind": kind, "label": str(spec.get("label") or kind), "bins": _strings(spec.get("bins"))}


def why_not(status: Mapping[str, Any]) -> str:
    """Why a skill is not eligible, in words (empty when it is)."""
    if status["eligible"]:
        return ""
    reasons = []
    if status["disabled"]:
        reasons.append("disabled in config (skills.entries.%s.enabled)" % status["skillKey"])
    if status["blockedByAllowlist"]:
        reasons.append("not in skills.allowBundled")
    missing = status["missing"]
    for label, key in (("missing bin", "bins"), ("needs one of the bins", "anyBins"), ("missing env", "env"), ("config not set", "config"), ("only for os", "os")):
        if missing[key]:
            reasons.append(f"{label}{'s' if len(missing[key]) > 1 and label.startswith('missing') else ''}: {', '.join(missing[key])}")
    return "; ".join(reasons)


def report(dirs: SkillDirs, ctx: Context) -> dict[str, Any]:
    """The C{skills.status} payload."""
    return {"workspaceDir": str(dirs.workspace), "managedSkillsDir": str(dirs.managed), "skills": [status_entry(s, ctx) for s in load_skills(dirs)]}


def collect_bins(skills: Iterable[Skill]) -> list[str]:
    """Every binary any skill asks for (C{skills.bins}: nodes report which they have)."""
    bins: set[str] = set()
    for skill in skills:
        bins.update(skill.requires.bins, skill.requires.any_bins)
        for spec in skill.install:
            bins.update(_strings(spec.get("bins")))
    return sorted(bins)


def eligible(dirs: SkillDirs, ctx: Context) -> list[tuple[Skill, dict[str, Any]]]:
    return [(s, st) for s in load_skills(dirs) if (st := status_entry(s, ctx))["eligible"]]


# -- the run: prompt and environment


def skills_prompt(chosen: Sequence[tuple[Skill, dict[str, Any]]], inline: bool = False) -> list[str]:
    """The C{## Skills} section: eligible skills the model may use. With C{inline} (a sandboxed
    session, which cannot read files outside its workspace) the instructions are included."""
    shown = [skill for skill, _ in chosen if skill.model_invocable]
    if not shown:
        return []
    rows = []
    budget = INLINE_TOTAL
    for skill in shown:
        row = f"  <skill>\n    <name>{escape(skill.name)}</name>\n    <description>{escape(skill.description)}</description>\n"
        if inline:
            body = skill.body.strip()[: min(INLINE_CHARS, max(0, budget))]
            budget -= len(body)
            row += f"    <instructions>{escape(body)}</instructions>\n"
        else:
            row += f"    <location>{escape(str(skill.file_path))}</location>\n"
        rows.append(row + "  </skill>")
    how = (
        "Each skill's instructions are included below; follow them when a task matches its description."
        if inline
        else "When a task matches a skill's description, read its SKILL.md at the location given (with the read tool) before acting, "
        "and follow it; {baseDir} in a skill means the folder its SKILL.md is in. Read only the skill you need."
    )
    return ["## Skills\nSkills teach you how to do specific tasks with your tools. " + how + "\n<available_skills>\n" + "\n".join(rows) + "\n</available_skills>"]


def skills_env(chosen: Sequence[tuple[Skill, dict[str, Any]]], ctx: Context) -> dict[str, str]:
    """
    The environment eligible skills bring to commands run on the host:
    C{skills.entries.<key>.env} and C{apiKey} (as the skill's C{primaryEnv})
    where the gateway's environment does not set them, and the variables a
    skill requires that the gateway's environment does set.
    """
    out: dict[str, str] = {}
    for skill, _ in chosen:
        entry = ctx.entry(skill)
        for name in skill.requires.env:
            if ctx.env.get(name):
                out[name] = ctx.env[name]
        env: dict[str, Any] = entry["env"] if isinstance(entry.get("env"), dict) else {}
        for name, value in env.items():
            if isinstance(name, str) and _ENV_NAME.match(name) and isinstance(value, str) and not ctx.env.get(name):
                out[name] = value
        key = entry.get("apiKey")
        if skill.primary_env and isinstance(key, str) and key and not ctx.env.get(skill.primary_env):
            out[skill.primary_env] = key
    return dict(list(out.items())[:MAX_ENV])


@attrs.frozen
class RunSkills:
    """What one run gets from skills: its prompt section and its host environment."""

    prompt: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)




@attrs.frozen
class SkillScope:
    """Where one gateway finds skills and what it judges them by, read once; every method is blocking."""

    dirs: SkillDirs
    context: Context

    def for_run(self, inline: bool = False) -> RunSkills:
        """The prompt section and host environment of one run (C{inline}: a sandboxed session)."""
        chosen = eligible(self.dirs, self.context)
        return RunSkills(tuple(skills_prompt(chosen, inline)), {} if inline else skills_env(chosen, self.context))

    def report(self) -> dict[str, Any]:
        return report(self.dirs, self.context)

    def bins(self) -> list[str]:
        return collect_bins(load_skills(self.dirs))


def skill_scope(config: Mapping[str, Any], env: Mapping[str, str], workspace: Path, state_dir: Path) -> SkillScope:
    """The L{SkillScope} of a config (folders from C{skills.load}); no file is read."""
    return SkillScope(skill_dirs(config, workspace, state_dir), Context(config, env))


def for_run(config: Mapping[str, Any], env: Mapping[str, str], workspace: Path, state_dir: Path, inline: bool = False) -> RunSkills:
    return skill_scope(config, env, workspace, state_dir).for_run(inline)
