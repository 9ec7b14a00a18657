# -*- test-case-name: tests.test_config_edit -*-
"""
Editing C{openclaw.json} as written: the raw JSON5 (C{${VAR}} references
stay as they are, includes are not expanded), changed by dotted path, and
written back crash-safe as readable JSON5 (unquoted keys, trailing commas,
2-space indent). Comments cannot survive a rewrite; L{has_comments} lets a
command say so.

Nothing here validates: callers check the edited config (L{check_raw}) before
they write it.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Mapping

import json5

from openclaw.config.errors import ConfigError, Issue
from openclaw.config.loader import parse_json5, read_text, resolve_includes, substitute_env
from openclaw.config.schema import validate
from openclaw.store import FILE_MODE, atomic_write

BACKUP_SUFFIX = ".bak"


class NotEditable(Exception):
    """The path cannot be changed in this file (an include, a scalar in the way); the message says why."""


def split_path(path: str) -> list[str | int]:
    """C{"agents.list[0].id"} to C{["agents", "list", 0, "id"]}; a bad path is a C{KeyError}."""
    parts: list[str | int] = []
    for chunk in path.split("."):
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(name)
        elif not rest:
            raise KeyError(path)  # "a..b", ".a", "a."
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise KeyError(path)
            parts.append(int(index))
            if rest and not rest.startswith("["):
                raise KeyError(path)
            rest = rest.removeprefix("[")
    if not parts:
        raise KeyError(path)
    return parts


def lookup(config: Any, path: str) -> Any:
    """The value at C{path}; C{KeyError} when there is none."""
    node = config
    for part in split_path(path):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def read_raw(path: Path) -> dict[str, Any]:
    """The file as written (an empty object when it does not exist)."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        return {}
    raw = parse_json5(text, path)
    if not isinstance(raw, dict):
        raise ConfigError([Issue("", f"{path} must hold a JSON5 object at the top level")], path=path)
    return raw


def _include_guard(node: Any, where: str, path: Path) -> None:
    if isinstance(node, dict) and "$include" in node:
        raise NotEditable(f"{where or 'the top level'} in {path} comes from an $include; edit the included file instead")


def set_value(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> dict[str, Any]:
    """A copy of C{raw} with C{value} at C{dotted}; objects on the way are created."""
    out = copy.deepcopy(raw)
    parts = split_path(dotted)
    node: Any = out
    walked = ""
    for i, part in enumerate(parts):
        _include_guard(node, walked, path)
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list):
                raise NotEditable(f"{walked} is not a list")
            if part > len(node):
                raise NotEditable(f"{walked}[{part}]: the list has {len(node)} items (append with index {len(node)})")
            if part == len(node):
                node.append({} if not last else None)
            if last:
                node[part] = value
            else:
                if not isinstance(node[part], (dict, list)):
                    node[part] = [] if isinstance(parts[i + 1], int) else {}
                node = node[part]
            walked = f"{walked}[{part}]"
        else:
            if not isinstance(node, dict):
                raise NotEditable(f"{walked} is not an object")
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, (dict, list)):
                    child = [] if isinstance(parts[i + 1], int) else {}
                    node[part] = child
                node = child
            walked = f"{walked}.{part}" if walked else part
    return out


def unset_value(raw: dict[str, Any], dotted: str, path: Path) -> dict[str, Any]:
    """A copy of C{raw} without C{dotted}; C{KeyError} when it is not there."""
    out = copy.deepcopy(raw)
    parts = split_path(dotted)
    node: Any = out
    walked = ""
    for part in parts[:-1]:
        _include_guard(node, walked, path)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise KeyError(dotted) from None
        walked = f"{walked}.{part}" if walked else str(part)
    _include_guard(node, walked, path)
    last = parts[-1]
    if isinstance(last, int) and isinstance(node, list) and last < len(node):
        del node[last]
    elif isinstance(last, str) and isinstance(node, dict) and last in node:
        del node[last]
    else:
        raise KeyError(dotted)
    return out


def dumps(raw: Mapping[str, Any]) -> str:
    """Readable JSON5: unquoted keys where they are identifiers, trailing commas, 2-space indent."""
    return json5.dumps(raw, indent=2, quote_keys=False, trailing_commas=True, ensure_ascii=False) + "\n"


def parse_value(text: str, strict: bool = False) -> Any:
    """A command-line value: JSON5 when it parses, else the text itself (C{strict}: JSON5 or an error)."""
    try:
        return json5.loads(text)
    except ValueError:
        if strict:
            raise
        return text


def has_comments(text: str) -> bool:
    """Whether JSON5 text has a comment outside its strings (a rewrite would drop it)."""
    i, n = 0, len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "/" and i + 1 < n and text[i + 1] in "/*":
            return True
        i += 1
    return False


def check_raw(raw: Mapping[str, Any], path: Path, env: Mapping[str, str]) -> list[Issue]:
    """
    The errors the edited config would have: includes expanded and
    C{${VAR}} resolved as the gateway will see them. Warnings are not errors.
    """
    try:
        expanded = resolve_includes(dict(raw), path.resolve(), (path.resolve(),))
        resolved = substitute_env(expanded, env)
    except ConfigError as e:
        return list(e.issues)
    errors, _ = validate(resolved)
    return errors


def backup(path: Path) -> Path | None:
    """Copy the config to C{<name>.bak} (0600, crash-safe); None when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    target = path.with_name(path.name + BACKUP_SUFFIX)
    atomic_write(target, data, FILE_MODE)
    shutil.copystat(path, target, follow_symlinks=True)
    target.chmod(FILE_MODE)
    return target


def write_raw(path: Path, raw: Mapping[str, Any]) -> None:
    """Write the config crash-safe (0600 in a 0700 folder)."""
    atomic_write(path, dumps(raw).encode("utf-8"))
