# -*- test-case-name: tests.test_config_edit -*-
"""
C{openclaw setup} and C{openclaw onboard}: a minimal valid config for this
profile (C{gateway.mode: "local"}, a token, a workspace, and for a named
profile a base port no other profile here uses), and the workspace folder.

An existing config keeps everything it has; only what is missing is added.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from twisted.python import usage

from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG, ConfigError
from openclaw.config.edit import NotEditable, check_raw, lookup, read_raw, set_value, write_raw
from openclaw.config.firstrun import new_token
from openclaw.config.loader import load_dotenv
from openclaw.config.schema import BIND_MODES
from openclaw.config.settings import dotenv_files
from openclaw.paths import PROFILE_PORT_STEP, Layout, home_dir
from openclaw.store import ensure_dir

PORT_GAP = 5  # a base port and its derived ports (P+1, P+4) must not meet another's


def _has(raw: Any, path: str) -> bool:
    try:
        lookup(raw, path)
        return True
    except KeyError:
        return False


def other_ports(layout: Layout, env: Mapping[str, str]) -> set[int]:
    """Base ports the other profiles on this machine have in their configs (or by default)."""
    from openclaw.paths import profile_port

    ports: set[int] = set()
    home = home_dir(env)
    try:
        entries = [p for p in home.iterdir() if p.name == ".openclaw" or p.name.startswith(".openclaw-")]
    except OSError:
        return ports
    for state in entries:
        if state.resolve() == layout.state_dir.resolve() or not state.is_dir():
            continue
        name = None if state.name == ".openclaw" else state.name[len(".openclaw-") :]
        port = None
        try:
            raw = read_raw(state / "openclaw.json")
            port = (raw.get("gateway") or {}).get("port")
        except (ConfigError, OSError, AttributeError):
            pass
        ports.add(port if isinstance(port, int) else profile_port(name))
    return ports


def free_base_port(start: int, taken: set[int]) -> int:
    """The first port from C{start} (in steps of 20) at least 5 away from every taken one."""
    port = start
    while any(abs(port - other) < PORT_GAP for other in taken) and port + PROFILE_PORT_STEP <= 65535 - 4:
        port += PROFILE_PORT_STEP
    return port


def setup_config(layout: Layout, env: Mapping[str, str], workspace: str | None = None, port: int | None = None, bind: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """
    The config with what a gateway needs to start added; and the keys added.

    @raise ConfigError: the existing file cannot be read.
    @raise NotEditable: a key sits in an include.
    """
    path = layout.config_path
    raw = read_raw(path)
    full_env = load_dotenv(dotenv_files(layout), env)
    added: list[str] = []

    def put(key: str, value: Any) -> None:
        nonlocal raw
        raw = set_value(raw, key, value, path)
        added.append(key)

    if not _has(raw, "gateway.mode"):
        put("gateway.mode", "local")
    has_secret = any(_has(raw, k) for k in ("gateway.auth.token", "gateway.auth.password")) or any(
        full_env.get(k) for k in ("OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD", "CLAWDBOT_GATEWAY_TOKEN")
    )
    if not has_secret and (_get(raw, "gateway.auth.mode") or "token") == "token":
        put("gateway.auth.mode", "token")
        put("gateway.auth.token", new_token())
    if port is not None:
        put("gateway.port", port)
    elif layout.profile is not None and not _has(raw, "gateway.port"):
        put("gateway.port", free_base_port(layout.default_port, other_ports(layout, env)))
    if bind is not None:
        put("gateway.bind", bind)
    if workspace is not None or not _has(raw, "agents.defaults.workspace"):
        put("agents.defaults.workspace", str(Path(workspace or layout.state_dir / "workspace").expanduser().absolute()))
    return raw, added


def _get(raw: Any, key: str) -> Any:
    try:
        return lookup(raw, key)
    except KeyError:
        return None


class SetupOptions(CommandOptions):
    synopsis = "[--workspace DIR] [--port P] [--bind MODE] [--json]"
    longdesc = (
        "Write a minimal valid config for this profile (gateway.mode local, a gateway token, a workspace) "
        "and create the workspace. An existing config keeps its values; only what is missing is added."
    )
    optParameters = [
        ["workspace", None, None, "Agent workspace folder (default: <state dir>/workspace)."],
        ["port", None, None, "Gateway base port.", int],
        ["bind", None, None, "Bind mode: " + "|".join(BIND_MODES) + "."],
        ["config", "c", None, "Config file."],
    ]
    optFlags = [["json", None, "Print the result as JSON."]]

    def postOptions(self) -> None:
        if self["bind"] is not None and self["bind"] not in BIND_MODES:
            raise usage.UsageError(f"--bind: one of {', '.join(BIND_MODES)}")
        if self["port"] is not None and not 1 <= self["port"] <= 65535:
            raise usage.UsageError("--port: a port from 1 to 65535")

    def ask(self, env: Mapping[str, str], out: IO[str]) -> None:
        """Interactive questions (only `onboard` on a terminal asks)."""

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        self.ask(env, out)
        existed = layout.config_path.exists()
        try:
            raw, added = setup_config(layout, env, self["workspace"], self["port"], self["bind"])
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        except NotEditable as e:
            err.write(f"Cannot complete the config: {e}\n")
            return 1
        issues = check_raw(raw, layout.config_path, load_dotenv(dotenv_files(layout), env))
        if issues:
            err.write(f"The config at {layout.config_path} is invalid; fix it first (`openclaw doctor`):\n")
            err.write("".join(f"  - {i}\n" for i in issues))
            return EX_CONFIG
        workspace = Path(lookup(raw, "agents.defaults.workspace"))
        try:
            ensure_dir(layout.state_dir)
            if added:
                write_raw(layout.config_path, raw)
            ensure_dir(workspace)
        except OSError as e:
            err.write(f"Cannot write {e.filename}: {e.strerror}\n")
            return 1
        port = _get(raw, "gateway.port")
        port = port if isinstance(port, int) else layout.default_port
        if self["json"]:
            out.write(json.dumps({"configPath": str(layout.config_path), "created": not existed, "added": added, "workspace": str(workspace), "port": port}) + "\n")
            return 0
        verb = "Updated" if existed and added else ("Created" if added else "Unchanged")
        out.write(f"{verb} {layout.config_path}\n")
        for key in added:
            shown = "(generated, stored in the config)" if key == "gateway.auth.token" else json.dumps(lookup(raw, key))
            out.write(f"  + {key} {shown}\n")
        out.write(f"Workspace: {workspace}\nGateway port: {port}\n")
        profile = f"--profile {layout.profile} " if layout.profile and layout.profile != "dev" else ("--dev " if layout.profile == "dev" else "")
        out.write(
            f"Next: `openclaw {profile}gateway start` (background) or `openclaw {profile}gateway install` (a service that starts at boot),\n"
            f"then `openclaw {profile}dashboard` for the browser link.\n"
        )
        return 0


class OnboardOptions(SetupOptions):
    synopsis = "[--non-interactive] [--workspace DIR] [--port P] [--bind MODE] [--json]"
    longdesc = "Set up this profile. With --non-interactive (or without a terminal) it is `openclaw setup`."
    optFlags = [["non-interactive", None, "Ask nothing; use the flags and defaults."]]
    optParameters = [["flow", None, "quickstart", "quickstart (the only flow: minimal questions, a generated token)."]]

    def __init__(self, prompt: Callable[[str], str] = input, isatty: Callable[[], bool] = lambda: sys.stdin.isatty()) -> None:
        super().__init__()
        self._prompt = prompt
        self._isatty = isatty

    def ask(self, env: Mapping[str, str], out: IO[str]) -> None:
        if self["non-interactive"] or not self._isatty():
            return
        layout = self.layout(env)
        raw = read_raw(layout.config_path) if layout.config_path.exists() else {}
        if self["port"] is None and not _has(raw, "gateway.port"):
            answer = self._prompt(f"Gateway port [{layout.default_port}]: ").strip()
            if answer:
                self["port"] = int(answer) if answer.isdigit() else None
        if self["bind"] is None and not _has(raw, "gateway.bind"):
            answer = self._prompt("Bind (loopback keeps it on this machine) [loopback]: ").strip()
            self["bind"] = answer if answer in BIND_MODES else None
        if self["workspace"] is None and not _has(raw, "agents.defaults.workspace"):
            default = layout.state_dir / "workspace"
            answer = self._prompt(f"Workspace [{default}]: ").strip()
            self["workspace"] = os.path.expanduser(answer) if answer else None
