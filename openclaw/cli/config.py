# -*- test-case-name: tests.test_config_edit -*-
"""
C{openclaw config validate|get|set|unset|file}: read and edit the config file.

Edits change the file as written (C{${VAR}} stays, includes stay), refuse to
introduce an error the gateway would refuse (exit 78, nothing written), and
write crash-safe as readable JSON5.
"""

from __future__ import annotations

import json
import re
from typing import IO, Any, Mapping

from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG, ConfigError, load_for, load_valid
from openclaw.config.edit import NotEditable, check_raw, has_comments, lookup, parse_value, read_raw, set_value, unset_value, write_raw
from openclaw.config.loader import load_dotenv, read_text
from openclaw.config.settings import dotenv_files

_SECRET_KEY = re.compile(r"(token|password|secret|api[-_]?key|private[-_]?key|credential)$", re.I)


def is_secret_path(path: str) -> bool:
    last = re.split(r"[.\[\]]", path.rstrip("]"))[-1]
    return bool(_SECRET_KEY.search(last))


class ConfigValidateOptions(CommandOptions):
    synopsis = "[--config PATH] [--json]"
    optParameters = [["config", "c", None, "Config file to check."]]
    optFlags = [["json", None, "Print the result as JSON."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        path = layout.config_path
        try:
            loaded = load_valid(layout, env)
        except ConfigError as e:
            if self["json"]:
                out.write(json.dumps({"valid": False, "path": str(path), "issues": [i.as_json() for i in e.issues]}) + "\n")
            else:
                err.write(e.describe() + "\n")
            return EX_CONFIG
        warnings = loaded.warnings
        if self["json"]:
            out.write(
                json.dumps(
                    {"valid": True, "path": str(path), "exists": loaded.exists, "warnings": [w.as_json() for w in warnings]}
                )
                + "\n"
            )
        else:
            state = "" if loaded.exists else " (file missing: defaults apply)"
            out.write(f"Config valid: {path}{state}\n")
            for warning in warnings:
                out.write(f"  warning: {warning}\n")
        return 0


class ConfigGetOptions(CommandOptions):
    synopsis = "<path> [--config PATH] [--json] [--raw]"
    optParameters = [["config", "c", None, "Config file to read."]]
    optFlags = [["json", None, "Always print JSON (strings quoted)."], ["raw", None, "The value as written (${VAR} not resolved)."]]

    def parseArgs(self, path: str) -> None:
        self["path"] = path

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        try:
            config = read_raw(layout.config_path) if self["raw"] else load_for(layout, env).config
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        try:
            value = lookup(config, self["path"])
        except KeyError:
            err.write(f"Config path not found: {self['path']}\n")
            return 1
        if isinstance(value, str) and not self["json"]:
            out.write(value + "\n")
        else:
            out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        return 0


class _EditOptions(CommandOptions):
    optParameters = [["config", "c", None, "Config file to edit."]]

    def edit(self, env: Mapping[str, str], out: IO[str], err: IO[str], change: Any, done: str) -> int:
        layout = self.layout(env)
        path = layout.config_path
        try:
            text = read_text(path)
        except FileNotFoundError:
            text = ""
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        try:
            raw = read_raw(path)
            edited = change(raw)
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        except KeyError:
            err.write(f"Config path not found: {self['path']}\n")
            return 1
        except NotEditable as e:
            err.write(f"Cannot change {self['path']}: {e}\n")
            return 1
        full_env = load_dotenv(dotenv_files(layout), env)
        before = {str(i) for i in check_raw(raw, path, full_env)}
        new = [i for i in check_raw(edited, path, full_env) if str(i) not in before]
        if new:
            err.write(f"Not changed: the config would be invalid ({path}):\n")
            err.write("".join(f"  - {issue}\n" for issue in new))
            return EX_CONFIG
        try:
            write_raw(path, edited)
        except OSError as e:
            err.write(f"Cannot write {path}: {e.strerror}\n")
            return 1
        out.write(f"{done} in {path}. Restart the gateway to apply it (`openclaw gateway restart`).\n")
        if has_comments(text):
            out.write("  note: the file's comments were not kept (it is rewritten as plain JSON5)\n")
        return 0


class ConfigSetOptions(_EditOptions):
    synopsis = "<path> <value> [--json] [--config PATH]"
    longdesc = "Set one value. VALUE is read as JSON5 when it parses (numbers, true, objects), else as a string."
    optFlags = [["json", None, "VALUE must be JSON5 (no string fallback)."]]

    def parseArgs(self, path: str, value: str) -> None:
        self["path"] = path
        self["value"] = value

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        try:
            value = parse_value(self["value"], strict=self["json"])
        except ValueError as e:
            err.write(f"--json: the value is not JSON5: {e}\n")
            return 1
        shown = "(value hidden)" if is_secret_path(self["path"]) else json.dumps(value, ensure_ascii=False)
        path = self["path"]
        return self.edit(env, out, err, lambda raw: set_value(raw, path, value, self.layout(env).config_path), f"Set {path} = {shown}")


class ConfigUnsetOptions(_EditOptions):
    synopsis = "<path> [--config PATH]"

    def parseArgs(self, path: str) -> None:
        self["path"] = path

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        path = self["path"]
        return self.edit(env, out, err, lambda raw: unset_value(raw, path, self.layout(env).config_path), f"Removed {path}")


class ConfigFileOptions(CommandOptions):
    synopsis = "[--config PATH] [--json]"
    optParameters = [["config", "c", None, "Config file."]]
    optFlags = [["json", None, "Print JSON."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        path = self.layout(env).config_path
        if self["json"]:
            out.write(json.dumps({"path": str(path), "exists": path.exists()}) + "\n")
        else:
            out.write(f"{path}\n")
        return 0


class ConfigOptions(CommandOptions):
    synopsis = "validate|get|set|unset|file"
    subCommands = [
        ["validate", None, ConfigValidateOptions, "Check the config file (exit 78 when invalid)."],
        ["get", None, ConfigGetOptions, "Print one config value by dotted path."],
        ["set", None, ConfigSetOptions, "Set one value (JSON5 or a string)."],
        ["unset", None, ConfigUnsetOptions, "Remove one value."],
        ["file", None, ConfigFileOptions, "Print the config file's path."],
    ]
