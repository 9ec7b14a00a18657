# -*- test-case-name: tests.test_approvals -*-
"""
Exec approvals policy: the C{exec-approvals.json} file (upstream's format,
one for the gateway host and the node host), and the decision for one
command: allowed, denied, or an operator must be asked.

The file::

    {"version": 1, "socket": {"path": ...},
     "defaults": {"security": "deny"|"allowlist"|"full", "ask": "off"|"on-miss"|"always",
                  "askFallback": "deny"|"allowlist"|"full", "autoAllowSkills": false},
     "agents": {"main": {..., "allowlist": [{"id", "pattern": "/usr/bin/git",
                                           "lastUsedAt", "lastUsedCommand", "lastResolvedPath"}]},
                "*": {...}}}

Allowlist patterns are case-insensitive globs over the B{resolved path} of a
command (C{*} within a folder, C{**} across folders, C{~} is the home
folder); a bare name such as C{git} matches nothing, as upstream has it, so a
binary of that name elsewhere on C{PATH} cannot slip through. A shell command
is allowed only when every segment of its pipelines (and of C{&&}, C{||},
C{;} chains) is allowlisted or a safe stdin-only bin; redirections,
subshells, backticks and C{$()} are never auto-allowed. The legacy
C{{"default", "allow", "deny"}} file of earlier node hosts is read as
defaults and a C{"*"} allowlist.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs
from twisted.logger import Logger

from openclaw.store import atomic_write

log = Logger(namespace="openclaw.approvals")

FILE_NAME = "exec-approvals.json"
SECURITY = ("deny", "allowlist", "full")
ASK = ("off", "on-miss", "always")
DECISIONS = ("allow-once", "allow-always", "deny")
DEFAULT_SAFE_BINS = ("jq", "grep", "cut", "sort", "uniq", "head", "tail", "tr", "wc")
MAX_FILE = 1024 * 1024
MAX_ALLOWLIST = 1000  # entries per agent
_POLICY_KEYS = ("security", "ask", "askFallback", "autoAllowSkills")
_ENTRY_KEYS_V3 = ("pattern", "lastUsedAt", "lastUsedCommand", "lastResolvedPath")
_ENTRY_KEYS = ("id", *_ENTRY_KEYS_V3, "source", "commandText", "argPattern")
_REJECTED = (">", "<", "`", "\n", "\r", "(", ")")


class PolicyFileError(ValueError):
    """An approvals file (or a replacement for it) that cannot be used."""


def stricter(a: str, b: str) -> str:
    """The stricter security (deny < allowlist < full)."""
    return a if SECURITY.index(a) <= SECURITY.index(b) else b


def louder(a: str, b: str) -> str:
    """The ask that asks more (off < on-miss < always)."""
    return a if ASK.index(a) >= ASK.index(b) else b


# -- the file


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _policy_fields(raw: Any) -> dict[str, Any]:
    block = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key in ("security", "ask", "askFallback"):
        if isinstance(block.get(key), str):
            out[key] = block[key]
    if isinstance(block.get("autoAllowSkills"), bool):
        out["autoAllowSkills"] = block["autoAllowSkills"]
    return out


def _entry(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not _text(raw.get("pattern")):
        return None
    out: dict[str, Any] = {"id": raw["id"] if _text(raw.get("id")) else str(uuid.uuid4()), "pattern": str(raw["pattern"]).strip()}
    for key in ("lastUsedCommand", "lastResolvedPath", "commandText", "argPattern"):
        if isinstance(raw.get(key), str):
            out[key] = raw[key]
    if isinstance(raw.get("lastUsedAt"), (int, float)) and not isinstance(raw.get("lastUsedAt"), bool) and raw["lastUsedAt"] >= 0:
        out["lastUsedAt"] = int(raw["lastUsedAt"])
    if raw.get("source") == "allow-always":
        out["source"] = "allow-always"
    return out


def _legacy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Earlier node hosts' C{{"default", "allow", "deny"}}: defaults plus a C{"*"} allowlist."""
    default = raw.get("default")
    defaults = {
        "allow": {"security": "full", "ask": "off"},
        "deny": {"security": "allowlist", "ask": "off"},
        "ask": {"security": "allowlist", "ask": "on-miss"},
    }.get(default if isinstance(default, str) else "ask", {})
    allow = [p for p in raw.get("allow") or [] if isinstance(p, str)]
    if raw.get("deny"):
        log.warn("exec-approvals.json: legacy deny patterns are not supported; anything not allowlisted needs approval")
    agents = {"*": {"allowlist": [{"pattern": p} for p in allow]}} if allow else {}
    return {"version": 1, "defaults": defaults, "agents": agents}


def normalize(raw: Any) -> dict[str, Any]:
    """
    The file in upstream's canonical shape: known keys only, types checked,
    allowlist entries with ids, the legacy C{default} key migrated,
    C{agents.default} merged into C{agents.main}.
    """
    if not isinstance(raw, dict):
        raw = {}
    if "defaults" not in raw and ("default" in raw or "allow" in raw):
        raw = {**raw, **_legacy(raw)}
    socket = raw.get("socket") if isinstance(raw.get("socket"), dict) else {}
    out: dict[str, Any] = {"version": 1}
    kept_socket = {k: socket[k].strip() for k in ("path", "token") if _text(socket.get(k))}
    if kept_socket:
        out["socket"] = kept_socket
    out["defaults"] = _policy_fields(raw.get("defaults"))
    agents: dict[str, Any] = {}
    raw_agents = raw.get("agents") if isinstance(raw.get("agents"), dict) else {}
    for name, block in raw_agents.items():
        if not isinstance(name, str) or not name or not isinstance(block, dict):
            continue
        target = "main" if name == "default" else name
        agent = agents.setdefault(target, {})
        for key, value in _policy_fields(block).items():
            agent.setdefault(key, value)
        entries = [e for e in (_entry(x) for x in block.get("allowlist") or []) if e is not None] if isinstance(block.get("allowlist"), list) else []
        if entries:
            seen = {e["pattern"].lower() for e in agent.get("allowlist", [])}
            merged = agent.setdefault("allowlist", [])
            for e in entries:
                if e["pattern"].lower() not in seen and len(merged) < MAX_ALLOWLIST:
                    seen.add(e["pattern"].lower())
                    merged.append(e)
        # upstream keys this gateway does not act on (e.g. MCP tool grants) are kept as they are
        for key, value in block.items():
            if key not in (*_POLICY_KEYS, "allowlist"):
                agent.setdefault(key, value)
    out["agents"] = agents
    return out


def view(file: Mapping[str, Any], version: int = 4) -> dict[str, Any]:
    """What clients see: no socket token; v3's closed schema has no entry ids and no extra agent keys."""
    out: dict[str, Any] = {"version": 1}
    socket = file.get("socket") or {}
    if socket.get("path"):
        out["socket"] = {"path": socket["path"]}
    out["defaults"] = dict(file.get("defaults") or {})
    agents: dict[str, Any] = {}
    keys = _ENTRY_KEYS if version >= 4 else _ENTRY_KEYS_V3
    for name, block in (file.get("agents") or {}).items():
        agent = {k: v for k, v in block.items() if k in _POLICY_KEYS or (version >= 4 and k == "mcpTools")}
        if block.get("allowlist"):
            agent["allowlist"] = [{k: e[k] for k in keys if k in e} for e in block["allowlist"]]
        agents[name] = agent
    out["agents"] = agents
    return out


@attrs.frozen
class Snapshot:
    """The file as read: whether it exists, its hash (of the bytes, as upstream), the normalized content."""

    path: Path
    exists: bool
    hash: str
    file: dict[str, Any]
    raw: dict[str, Any]  # as stored, so unknown keys survive a rewrite


def digest(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()


class ApprovalsFile:
    """C{<state>/exec-approvals.json}: read fresh each time (an operator may edit it), written crash-safe, 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> Snapshot:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE + 1)
        except FileNotFoundError:
            return Snapshot(self.path, False, digest(None), normalize({}), {})
        except OSError as e:
            log.warn("cannot read {path}: {error}; using the defaults", path=str(self.path), error=e.strerror)
            return Snapshot(self.path, True, digest(None), normalize({}), {})
        raw: Any = None
        if len(data) <= MAX_FILE:
            try:
                raw = json.loads(data)
            except ValueError:
                raw = None
        if not isinstance(raw, dict) or raw.get("version", 1) != 1:
            log.warn("{path} is not a version 1 approvals file; using the defaults", path=str(self.path))
            raw = {}
        return Snapshot(self.path, True, digest(data), normalize(raw), raw)

    def write(self, file: Mapping[str, Any], raw: Mapping[str, Any] | None = None) -> Snapshot:
        """Store C{file} (keeping keys of C{raw} it does not know) and read it back."""
        merged = {**{k: v for k, v in (raw or {}).items() if k not in ("version", "socket", "defaults", "agents", "default", "allow", "deny")}, **file}
        atomic_write(self.path, (json.dumps(merged, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        return self.read()

    def replace(self, incoming: Mapping[str, Any], base_hash: str | None) -> Snapshot:
        """
        C{exec.approvals.set}: the whole file, if nobody changed it since
        C{base_hash} was read (required once the file exists). The socket
        token stays what it was unless the new file names one.
        """
        current = self.read()
        if current.exists:
            if not base_hash:
                raise PolicyFileError("exec approvals base hash required; re-run exec.approvals.get and retry")
            if base_hash != current.hash:
                raise PolicyFileError("exec approvals changed since last load; re-run exec.approvals.get and retry")
        file = normalize(incoming)
        socket = {**(current.file.get("socket") or {}), **(file.get("socket") or {})}
        if socket:
            file["socket"] = socket
        return self.write(file, current.raw)

    def change(self, agent_id: str, add: Iterable[str] = (), remove: Iterable[str] = (), used: Mapping[str, tuple[str, str | None]] | None = None) -> Snapshot:
        """Add or remove allowlist patterns of one agent (C{"*"}: all), or note when patterns were last used."""
        current = self.read()
        file = json.loads(json.dumps(current.file))
        agent = file["agents"].setdefault(agent_id, {})
        entries: list[dict[str, Any]] = agent.setdefault("allowlist", [])
        lowered = {p.lower() for p in remove}
        entries[:] = [e for e in entries if e["pattern"].lower() not in lowered]
        known = {e["pattern"].lower() for e in entries}
        for pattern in add:
            if pattern.lower() not in known and len(entries) < MAX_ALLOWLIST:
                known.add(pattern.lower())
                entries.append({"id": str(uuid.uuid4()), "pattern": pattern, "source": "allow-always"})
        for entry in entries:
            if used and entry["pattern"] in used:
                command, resolved = used[entry["pattern"]]
                entry.update({"lastUsedAt": int(time.time() * 1000), "lastUsedCommand": command[:500]})
                if resolved:
                    entry["lastResolvedPath"] = resolved
        if not entries:
            del agent["allowlist"]
        if not agent:
            del file["agents"][agent_id]
        return self.write(file, current.raw)


@attrs.frozen
class Policy:
    """One agent's effective policy on one host."""

    security: str
    ask: str
    ask_fallback: str
    auto_allow_skills: bool
    allowlist: tuple[Mapping[str, Any], ...] = ()

    def defaults(self) -> dict[str, Any]:
        """v4's C{resolvedDefaults}."""
        return {"security": self.security, "ask": self.ask, "askFallback": self.ask_fallback, "autoAllowSkills": self.auto_allow_skills}


def _choice(value: Any, choices: tuple[str, ...], fallback: str) -> str:
    return value if value in choices else fallback


def resolve(file: Mapping[str, Any], agent_id: str | None, security: str = "deny", ask: str = "on-miss", ask_fallback: str = "deny") -> Policy:
    """
    The policy for C{agent_id} from the file: the agent's entry, else C{"*"},
    else the file's defaults, else the given fallbacks (the host's config).
    Allowlists of C{"*"} and the agent both apply.
    """
    defaults = file.get("defaults") or {}
    agents = file.get("agents") or {}
    agent = agents.get(agent_id or "main") or {}
    wildcard = agents.get("*") or {}
    base = Policy(
        _choice(defaults.get("security"), SECURITY, security),
        _choice(defaults.get("ask"), ASK, ask),
        _choice(defaults.get("askFallback"), SECURITY, ask_fallback),
        bool(defaults.get("autoAllowSkills", False)),
    )
    pick = lambda key: agent.get(key, wildcard.get(key))  # noqa: E731
    return Policy(
        _choice(pick("security"), SECURITY, base.security),
        _choice(pick("ask"), ASK, base.ask),
        _choice(pick("askFallback"), SECURITY, base.ask_fallback),
        bool(pick("autoAllowSkills") if pick("autoAllowSkills") is not None else base.auto_allow_skills),
        tuple(wildcard.get("allowlist") or []) + tuple(agent.get("allowlist") or []),
    )


# -- commands


@attrs.frozen
class Segment:
    """One command of a pipeline: its words, and the program it runs."""

    argv: tuple[str, ...]
    resolved: str | None  # the executable's path, if found

    @property
    def name(self) -> str:
        return os.path.basename(self.resolved or self.argv[0])


@attrs.frozen
class Analysis:
    """A command split into chains of pipelines; C{ok} false: it cannot be checked against an allowlist."""

    ok: bool
    chains: tuple[tuple[Segment, ...], ...] = ()
    reason: str = ""

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(s for chain in self.chains for s in chain)


def _quote_aware_split(text: str, separators: tuple[str, ...]) -> list[str] | None:
    """Split on any of C{separators} outside quotes; None if a quote or escape is left open."""
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch == "\\" and i + 1 < len(text):
            buf.append(text[i : i + 2])
            i += 2
            continue
        if quote is not None:
            if ch == quote:
                quote = None
            buf.append(ch)
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            buf.append(ch)
            i += 1
            continue
        sep = next((s for s in separators if text.startswith(s, i)), None)
        if sep is not None:
            parts.append("".join(buf))
            buf = []
            i += len(sep)
            continue
        buf.append(ch)
        i += 1
    if quote is not None:
        return None
    parts.append("".join(buf))
    return parts


def _words(segment: str) -> list[str] | None:
    """A segment's words with quotes and escapes removed (no expansion)."""
    words: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    started = False
    i = 0
    while i < len(segment):
        ch = segment[i]
        if quote is None and ch == "\\":
            if i + 1 >= len(segment):
                return None
            buf.append(segment[i + 1])
            started = True
            i += 2
            continue
        if quote is not None:
            if ch == quote:
                quote = None
            else:
                buf.append(ch)
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            started = True
        elif ch.isspace():
            if started:
                words.append("".join(buf))
                buf, started = [], False
        else:
            buf.append(ch)
            started = True
        i += 1
    if quote is not None:
        return None
    if started:
        words.append("".join(buf))
    return words


def _unquoted(text: str) -> str:
    """C{text} with quoted parts blanked: what the shell itself would interpret."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch == "\\":
            out.append("  ")
            i += 2
            continue
        if quote is not None:
            if ch == quote:
                quote = None
                out.append(" ")
            elif quote == '"' and text.startswith("$(", i):
                out.append("$(")  # double quotes still run $( ) and backticks
                i += 2
                continue
            elif quote == '"' and ch == "`":
                out.append(ch)
            else:
                out.append(" ")
        elif ch in ("'", '"'):
            quote = ch
            out.append(" ")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def which(name: str, cwd: str | None, path_env: str) -> str | None:
    """The executable a word runs: a path (relative to C{cwd}), or the first match on C{path_env}."""
    expanded = os.path.expanduser(name)
    if "/" in expanded:
        candidate = expanded if os.path.isabs(expanded) else os.path.join(cwd or os.getcwd(), expanded)
        return os.path.normpath(candidate) if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    for folder in path_env.split(os.pathsep):
        candidate = os.path.join(folder, expanded)
        if folder and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def analyze_shell(command: str, cwd: str | None, path_env: str) -> Analysis:
    """A shell command as chains (C{&&}, C{||}, C{;}) of pipelines (C{|})."""
    shell = _unquoted(command)
    bad = next((t for t in _REJECTED if t in shell), None)
    if bad is not None or "$(" in shell or "|&" in shell or re.search(r"(?<![&])&(?![&])", shell):
        token = bad if bad is not None else "$()" if "$(" in shell else "|&" if "|&" in shell else "&"
        return Analysis(False, reason=f"unsupported shell token: {token!r}")
    chains = _quote_aware_split(command, ("&&", "||", ";"))
    if chains is None:
        return Analysis(False, reason="unterminated shell quote or escape")
    out = []
    for chain in chains:
        pipeline = _quote_aware_split(chain, ("|",))
        if pipeline is None or not chain.strip():
            return Analysis(False, reason="empty command in a chain")
        segments = []
        for part in pipeline:
            words = _words(part)
            if not words:
                return Analysis(False, reason="unterminated shell quote or escape" if words is None else "empty pipeline segment")
            segments.append(Segment(tuple(words), which(words[0], cwd, path_env)))
        out.append(tuple(segments))
    return Analysis(True, tuple(out))


def analyze_argv(argv: list[str], cwd: str | None, path_env: str) -> Analysis:
    """An argv list runs one program, no shell."""
    if not argv or not argv[0].strip():
        return Analysis(False, reason="empty argv")
    return Analysis(True, ((Segment(tuple(argv), which(argv[0], cwd, path_env)),),))


def matches(pattern: str, path: str) -> bool:
    """Upstream's glob: case-insensitive; C{*} stays in a folder, C{**} crosses them, C{?} is one character."""
    pattern = os.path.expanduser(pattern.strip())
    if not pattern or "/" not in pattern:
        return False  # a bare name matches nothing
    regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else "." if part == "?" else re.escape(part) for part in re.split(r"(\*\*|\*|\?)", pattern))
    return re.fullmatch(regex, path, re.IGNORECASE) is not None


def _path_like(token: str) -> bool:
    return token.startswith(("/", "./", "../", "~")) and token != "-"


def safe_bin_use(segment: Segment, safe_bins: frozenset[str], cwd: str | None) -> bool:
    """A stdin-only filter (C{jq}, C{grep}, ...) with no argument that could name a file."""
    if segment.resolved is None or segment.name.lower() not in safe_bins:
        return False
    base = cwd or os.getcwd()
    for token in segment.argv[1:]:
        value = token.split("=", 1)[1] if token.startswith("-") and "=" in token else token if not token.startswith("-") else ""
        if value and (_path_like(value) or os.path.exists(os.path.join(base, value))):
            return False
    return True


@attrs.frozen
class Check:
    """An analysis held against an allowlist: satisfied, and the entries that matched."""

    satisfied: bool
    matched: tuple[Mapping[str, Any], ...] = ()


def check(analysis: Analysis, allowlist: Iterable[Mapping[str, Any]], safe_bins: frozenset[str], cwd: str | None, skill_bins: frozenset[str] = frozenset()) -> Check:
    if not analysis.ok or not analysis.segments:
        return Check(False)
    entries = list(allowlist)
    found: list[Mapping[str, Any]] = []
    for segment in analysis.segments:
        entry = next((e for e in entries if segment.resolved and matches(str(e.get("pattern", "")), segment.resolved)), None)
        if entry is not None:
            found.append(entry)
        elif not safe_bin_use(segment, safe_bins, cwd) and segment.name not in skill_bins:
            return Check(False)
    return Check(True, tuple(found))


def needs_approval(ask: str, security: str, analysis_ok: bool, satisfied: bool) -> bool:
    """Upstream's rule: C{always}; or C{on-miss} under an allowlist the command does not satisfy."""
    return ask == "always" or (ask == "on-miss" and security == "allowlist" and not (analysis_ok and satisfied))


def safe_bins_from(value: Any) -> frozenset[str]:
    """C{tools.exec.safeBins} (unset: upstream's defaults)."""
    if not isinstance(value, list):
        return frozenset(DEFAULT_SAFE_BINS)
    return frozenset(v.strip().lower() for v in value if isinstance(v, str) and v.strip())
