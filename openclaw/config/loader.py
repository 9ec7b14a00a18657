# -*- test-case-name: tests.test_config -*-
"""
Reading C{openclaw.json}: JSON5, C{$include}, C{.env} files and C{${VAR}}.

Everything takes the environment as a mapping and returns a new one, so a
caller (and a test) decides whether the process environment changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import json5

from openclaw.config.errors import ConfigError, Issue

MAX_INCLUDE_DEPTH = 10
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # for each file: the config, an included file, a .env file

_VAR = re.compile(r"\$(\$?)\{([A-Z_][A-Z0-9_]*)\}")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


@attrs.frozen
class LoadedConfig:
    """One config file as read from disk, before validation."""

    path: Path
    exists: bool
    raw: str | None
    hash: str | None
    config: dict[str, Any]
    env: Mapping[str, str]
    warnings: tuple[Issue, ...] = ()


def config_hash(raw: str | None) -> str | None:
    """The hash clients pass back as C{baseHash}: sha256 of the file text."""
    if raw is None:
        return None
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse C{KEY=VALUE} lines; C{#} comments, C{export}, and quotes allowed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if m is None:
            continue
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        out[key] = value
    return out


def load_dotenv(paths: list[Path], env: Mapping[str, str]) -> dict[str, str]:
    """Apply C{.env} files in order; nothing overrides a variable already set."""
    result = dict(env)
    for path in paths:
        if path.is_dir():
            continue  # a virtualenv called .env is common; it is not ours
        try:
            text = read_text(path, ".env file")
        except FileNotFoundError:
            continue
        for key, value in parse_dotenv(text).items():
            result.setdefault(key, value)
    return result


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_irregular(mode: int, path: Path, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise ConfigError([Issue("", f"{what} {path} is {kind}, not a regular file")])


def read_text(path: Path, what: str = "config file") -> str:
    """
    The UTF-8 text of a config, included or C{.env} file.

    Only a regular file (or a link to one) of at most L{MAX_CONFIG_BYTES} is
    read: a FIFO would block forever and a device could be endless.

    @raise FileNotFoundError: nothing is there.
    @raise ConfigError: anything else that stops the read.
    """
    try:
        _refuse_irregular(os.stat(path).st_mode, path, what)
        # O_NONBLOCK: should the path turn into a FIFO after the stat, open must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError([Issue("", f"cannot read {what} {path}: {e.strerror}")])
    try:
        st = os.fstat(fd)
        _refuse_irregular(st.st_mode, path, what)
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([Issue("", f"{what} {path} is {st.st_size} bytes; the limit is {MAX_CONFIG_BYTES}")])
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_CONFIG_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ConfigError([Issue("", f"cannot read {what} {path}: {e.strerror}")])
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([Issue("", f"{what} {path} is larger than the limit of {MAX_CONFIG_BYTES} bytes")])
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([Issue("", f"{what} {path} is not UTF-8 text (byte {e.start})")])


def _read_json5(path: Path, chain: tuple[Path, ...]) -> Any:
    try:
        text = read_text(path, "included file" if chain else "config file")
    except FileNotFoundError:
        where = f" (included from {chain[-1]})" if chain else ""
        raise ConfigError([Issue("$include" if chain else "", f"file not found: {path}{where}")])
    return parse_json5(text, path)


def parse_json5(text: str, path: Path | str) -> Any:
    if not text.strip():
        return {}
    try:
        return json5.loads(text)
    except ValueError as e:
        # json5 names the position as "<string>:LINE"; name the file instead.
        msg = str(e).replace("<string>", str(path))
        raise ConfigError([Issue("", f"JSON5 parse error in {msg}")])
    except RecursionError:
        raise ConfigError([Issue("", f"{path} is nested too deeply")])


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for k, v in over.items():
            merged[k] = _deep_merge(merged[k], v) if k in merged else v
        return merged
    return over


def resolve_includes(value: Any, here: Path, chain: tuple[Path, ...], keypath: str = "") -> Any:
    """Replace every C{{"$include": ...}} with the included files, recursively."""
    if isinstance(value, list):
        return [resolve_includes(v, here, chain, f"{keypath}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "$include" not in value:
        return {k: resolve_includes(v, here, chain, _join(keypath, k)) for k, v in value.items()}

    spec = value["$include"]
    targets = [spec] if isinstance(spec, str) else spec
    where = _join(keypath, "$include")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ConfigError([Issue(where, "expected a file path or a list of file paths")])
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise ConfigError([Issue(where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")])

    result: Any = None
    for target in targets:
        path = (here.parent / Path(target).expanduser()).resolve()
        if path in chain:
            loop = " -> ".join(str(p) for p in (*chain, path))
            raise ConfigError([Issue(where, f"circular include: {loop}")])
        included = resolve_includes(_read_json5(path, chain), path, (*chain, path), keypath)
        result = included if result is None else _deep_merge(result, included)

    siblings = {k: v for k, v in value.items() if k != "$include"}
    if siblings:
        if not isinstance(result, dict):
            raise ConfigError([Issue(where, "sibling keys need the included file to hold an object")])
        result = _deep_merge(result, resolve_includes(siblings, here, chain, keypath))
    return result


def _join(keypath: str, key: str) -> str:
    return f"{keypath}.{key}" if keypath else key


def config_env_vars(config: Mapping[str, Any]) -> dict[str, str]:
    """C{env.vars} and plain string entries under C{env}."""
    block = config.get("env")
    if not isinstance(block, dict):
        return {}
    found = {k: v for k, v in block.items() if isinstance(v, str) and k != "shellEnv"}
    vars_ = block.get("vars")
    if isinstance(vars_, dict):
        found.update({k: v for k, v in vars_.items() if isinstance(v, str)})
    return found


def substitute_env(value: Any, env: Mapping[str, str]) -> Any:
    """
    Replace C{${VAR}} in every string; C{$${VAR}} stays as a literal C{${VAR}}.

    Every missing or empty variable is reported, naming its key.
    """
    issues: list[Issue] = []
    out = _substitute(value, env, "", issues)
    if issues:
        raise ConfigError(issues)
    return out


def _substitute(value: Any, env: Mapping[str, str], keypath: str, issues: list[Issue]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, env, _join(keypath, k), issues) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{keypath}[{i}]", issues) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            return "${" + m.group(2) + "}"
        found = env.get(m.group(2))
        if not found:
            issues.append(Issue(keypath, f"environment variable {m.group(2)} is missing or empty"))
            return m.group(0)
        return found

    return _VAR.sub(replace, value)


def load_config(path: Path, env: Mapping[str, str], dotenv: Sequence[Path] = ()) -> LoadedConfig:
    """
    Read a config file with its includes, and resolve its environment.

    A missing file is an empty config. Order: C{.env} files (never overriding),
    then the config's own C{env} block (never overriding), then C{${VAR}}.
    """
    env = load_dotenv(list(dotenv), env)
    try:
        raw = read_text(path)
    except FileNotFoundError:
        return LoadedConfig(path=path, exists=False, raw=None, hash=None, config={}, env=env)

    parsed = parse_json5(raw, path)
    if not isinstance(parsed, dict):
        raise ConfigError([Issue("", f"{path} must hold a JSON5 object at the top level")])
    parsed = resolve_includes(parsed, path.resolve(), (path.resolve(),))
    if not isinstance(parsed, dict):
        raise ConfigError([Issue("", "the top-level $include must hold an object")])
    env = dict(env)
    for key, value in config_env_vars(parsed).items():
        env.setdefault(key, value)
    config = substitute_env(parsed, env)
    return LoadedConfig(path=path, exists=True, raw=raw, hash=config_hash(raw), config=config, env=env)
