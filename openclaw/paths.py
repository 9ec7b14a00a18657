# -*- test-case-name: tests.test_paths -*-
"""
Where a gateway keeps its files and which ports it uses.

Pure functions of (environment, flags): nothing here reads the disk.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Mapping

import attrs

DEFAULT_PORT = 18789
DEV_PORT = 19001
BRIDGE_OFFSET = 1
CANVAS_OFFSET = 4
PROFILE_PORT_STEP = 20  # upstream: leave at least 20 ports between two gateways' base ports
PROFILE_PORT_SLOTS = 49  # named profiles default to 18809 ... 19769, never 19001 (dev)

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ProfileError(ValueError):
    """A profile name that cannot name a directory safely."""


@attrs.frozen
class Layout:
    """The state directory, config file and default base port of one gateway."""

    profile: str | None
    state_dir: Path
    config_path: Path
    default_port: int

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "gateway.log"


@attrs.frozen
class Ports:
    gateway: int
    bridge: int
    canvas: int


def derive_ports(gateway_port: int) -> Ports:
    """Bridge on P+1 and canvas on P+4, as upstream derives them."""
    return Ports(gateway_port, gateway_port + BRIDGE_OFFSET, gateway_port + CANVAS_OFFSET)


def check_profile(name: str) -> str:
    if not _PROFILE_NAME.match(name):
        raise ProfileError(
            f"invalid profile name {name!r}: use letters, digits, '-' or '_' "
            "(at most 64 characters, starting with a letter or digit)"
        )
    return name


def home_dir(env: Mapping[str, str]) -> Path:
    if env.get("OPENCLAW_HOME"):
        return Path(env["OPENCLAW_HOME"]).expanduser()
    if env.get("HOME"):
        return Path(env["HOME"])
    return Path.home()


def resolve_layout(
    env: Mapping[str, str],
    profile: str | None = None,
    dev: bool = False,
    config_path: str | None = None,
) -> Layout:
    """
    Resolve the layout: flags first, then the environment, then defaults.

    C{--dev} is the profile C{dev} with base port 19001.
    """
    if profile is None and dev:
        profile = "dev"
    if profile is None and env.get("OPENCLAW_PROFILE"):
        profile = env["OPENCLAW_PROFILE"]
    if profile == "default":
        profile = None
    if profile is not None:
        check_profile(profile)

    if env.get("OPENCLAW_STATE_DIR"):
        state = Path(env["OPENCLAW_STATE_DIR"]).expanduser()
    elif profile is not None:
        state = home_dir(env) / f".openclaw-{profile}"
    else:
        state = home_dir(env) / ".openclaw"
    state = Path(os.path.abspath(state))

    if config_path is not None:
        config = Path(config_path).expanduser()
    elif env.get("OPENCLAW_CONFIG_PATH"):
        config = Path(env["OPENCLAW_CONFIG_PATH"]).expanduser()
    else:
        config = state / "openclaw.json"
    config = Path(os.path.abspath(config))

    return Layout(profile=profile, state_dir=state, config_path=config, default_port=profile_port(profile))


def profile_port(profile: str | None) -> int:
    """
    A profile's default base port: 18789, 19001 for C{dev}, and for a named
    profile a slot 20 apart derived from its name, so two profiles started
    without any config do not clash (`openclaw setup` stores a port that is
    free among this machine's profiles).
    """
    if profile is None:
        return DEFAULT_PORT
    if profile == "dev":
        return DEV_PORT
    return DEFAULT_PORT + PROFILE_PORT_STEP * (1 + zlib.crc32(profile.encode()) % PROFILE_PORT_SLOTS)
