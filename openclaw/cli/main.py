# -*- test-case-name: tests.test_cli -*-
"""
The C{openclaw} command.

Each command is a C{usage.Options} class with a C{run(env, out, err)} that
returns the exit code; L{main} parses and dispatches, and never lets a
traceback reach the user for an expected failure.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw import __version__
from openclaw.cli.base import EX_USAGE, CommandOptions
from openclaw.cli.agent import AgentOptions, ChatOptions, SessionsOptions
from openclaw.cli.approvals import ApprovalsOptions
from openclaw.cli.dashboard import DashboardOptions
from openclaw.cli.cron import CronOptions, RemindOptions, SystemOptions
from openclaw.cli.nodes import NodeOptions, NodesOptions
from openclaw.cli.remote import GATEWAY_CLIENT_COMMANDS, DevicesOptions, HealthOptions, LogsOptions, StatusOptions
from openclaw.config import EX_CONFIG, ConfigError, GatewayRefused, load_for, load_valid
from openclaw.config.firstrun import needs_token, new_token, store_or_explain
from openclaw.paths import ProfileError
from openclaw.tap import Options as TapOptions
from openclaw.tap import settings_from_options

class GatewayRunOptions(TapOptions, CommandOptions):
    synopsis = "[options]"
    longdesc = "Run the gateway in the foreground (Ctrl-C stops it)."

    def __init__(self) -> None:
        super().__init__(env={})

    def postOptions(self) -> None:
        # Settings are resolved in run(), so config errors get exit code 78.
        root = self.root() if getattr(self, "parent", None) is not None else None
        if root is not None:
            self["profile"] = self["profile"] or root["profile"]
            self["dev"] = self["dev"] or root["dev"]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        from openclaw.cli.gateway import run_gateway

        try:
            settings = settings_from_options(self, env)
            if needs_token(settings.auth):
                # First run: a token in the config, so the local CLI and browser can connect.
                store_or_explain(load_for(settings.layout, env), new_token())
                settings = settings_from_options(self, env)
                out.write(
                    f"Generated a gateway token and stored it in {settings.layout.config_path} (gateway.auth.token).\n"
                    "Local `openclaw` commands read it from there; `openclaw dashboard` prints the browser link with it.\n"
                )
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        except (GatewayRefused, ProfileError) as e:
            err.write(f"{e}\n")
            return 1
        return run_gateway(settings, out, err)


class GatewayOptions(GatewayRunOptions):
    synopsis = "[run] [options]"
    longdesc = "Run the gateway in the foreground (same as `openclaw gateway run`)."
    subCommands = [["run", None, GatewayRunOptions, "Run the gateway in the foreground."], *GATEWAY_CLIENT_COMMANDS]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        sub = getattr(self, "subOptions", None)
        if sub is not None:
            return sub.run(env, out, err)
        return super().run(env, out, err)


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
    synopsis = "<path> [--config PATH] [--json]"
    optParameters = [["config", "c", None, "Config file to read."]]
    optFlags = [["json", None, "Always print JSON (strings quoted)."]]

    def parseArgs(self, path: str) -> None:
        self["path"] = path

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        try:
            loaded = load_for(layout, env)
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        try:
            value = lookup(loaded.config, self["path"])
        except KeyError:
            err.write(f"Config path not found: {self['path']}\n")
            return 1
        if isinstance(value, str) and not self["json"]:
            out.write(value + "\n")
        else:
            out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        return 0


def split_path(path: str) -> list[str | int]:
    """C{"agents.list[0].id"} to C{["agents", "list", 0, "id"]}."""
    parts: list[str | int] = []
    for chunk in path.split("."):
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise KeyError(path)
            parts.append(int(index))
            rest = rest.removeprefix("[")
    if not parts:
        raise KeyError(path)
    return parts


def lookup(config: Any, path: str) -> Any:
    node = config
    for part in split_path(path):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


class ConfigOptions(CommandOptions):
    synopsis = "validate|get"
    subCommands = [
        ["validate", None, ConfigValidateOptions, "Check the config file (exit 78 when invalid)."],
        ["get", None, ConfigGetOptions, "Print one config value by dotted path."],
    ]


class OpenClawOptions(CommandOptions):
    synopsis = "[--profile NAME] [--dev] <command> [options]"
    longdesc = "OpenClaw Gateway (Twisted): run it, configure it, and talk to it."
    optParameters = [["profile", None, None, "Profile NAME: state in ~/.openclaw-NAME."]]
    optFlags = [["dev", None, "Development profile (~/.openclaw-dev, port 19001)."]]
    subCommands = [
        ["gateway", None, GatewayOptions, "Run the gateway (and talk to it)."],
        ["config", None, ConfigOptions, "Check and read the config file."],
        ["health", None, HealthOptions, "Ask the running gateway for its health."],
        ["status", None, StatusOptions, "Gateway status (--deep adds local checks)."],
        ["logs", None, LogsOptions, "Read the gateway log (-f to follow)."],
        ["devices", None, DevicesOptions, "List, approve and manage paired devices."],
        ["nodes", None, NodesOptions, "List nodes and run commands on them."],
        ["approvals", None, ApprovalsOptions, "Exec approvals: policy, allowlists, waiting requests."],
        ["agent", None, AgentOptions, "Run one agent turn and print the reply."],
        ["chat", None, ChatOptions, "Chat with the agent in the terminal."],
        ["sessions", None, SessionsOptions, "List sessions (local store)."],
        ["node", None, NodeOptions, "Run this machine as a node host."],
        ["dashboard", None, DashboardOptions, "Print (--open: open) the Control UI's address with your token."],
        ["cron", None, CronOptions, "Scheduled jobs: list, add, edit, run, history."],
        ["remind", None, RemindOptions, 'A one-shot reminder: remind "TEXT" --in 20m.'],
        ["system", None, SystemOptions, "System controls: heartbeat last|enable|disable."],
    ]

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(__version__)
        sys.exit(0)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ if env is None else env)
    options = OpenClawOptions()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"openclaw: {e}\nRun `openclaw --help` for usage.\n")
        return EX_USAGE
    return options.run(env, sys.stdout, sys.stderr)


def entry() -> None:
    sys.exit(main())
