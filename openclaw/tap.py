# -*- test-case-name: tests.test_tap -*-
"""
C{twistd openclaw}: the options and L{makeService}.

All input is checked while parsing (L{Options.postOptions}); L{makeService}
only builds. Other Twisted applications embed the gateway with::

    options = Options()
    options.parseOptions(["--port", "18789", "--allow-unconfigured"])
    makeService(options).setServiceParent(application)
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from twisted.python import usage

from openclaw.config import ConfigError, Flags, GatewayRefused, load_for, resolve_settings
from openclaw.config.schema import BIND_MODES
from openclaw.config.settings import GatewaySettings
from openclaw.net.netinfo import tailnet_address
from openclaw.paths import ProfileError, resolve_layout


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--port: expected a port from 0 to 65535, got {value!r}")
    return port


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the OpenClaw Gateway: WebSocket + HTTP on the gateway port (default 18789). "
        "Refuses to start unless gateway.mode is \"local\" in the config, or --allow-unconfigured."
    )

    optParameters = [
        ["port", "p", None, "Gateway port (default: gateway.port, else 18789; 19001 with --dev).", _port],
        ["bind", "b", None, "Bind mode: " + "|".join(BIND_MODES) + " (default: gateway.bind, else loopback)."],
        ["config", "c", None, "Config file (default: $OPENCLAW_CONFIG_PATH, else <state dir>/openclaw.json)."],
        ["profile", None, None, "Profile NAME: state in ~/.openclaw-NAME."],
        ["token", None, None, "Shared gateway token (overrides gateway.auth.token)."],
        ["password", None, None, "Shared gateway password (overrides gateway.auth.password)."],
    ]
    optFlags = [
        ["dev", None, "Development profile: state in ~/.openclaw-dev, base port 19001."],
        ["allow-unconfigured", None, "Start even when gateway.mode is not \"local\"."],
        ["force", None, "Stop whatever listens on the gateway port first."],
        ["verbose", "v", "Debug output on the console."],
        ["mdns", None, "Announce the gateway on the LAN (mDNS _openclaw._tcp)."],
    ]

    def __init__(self, env: Mapping[str, str] | None = None, tailnet: Any = tailnet_address) -> None:
        super().__init__()
        self._env = dict(os.environ if env is None else env)
        self._tailnet = tailnet

    def opt_bind(self, value: str) -> None:
        if value not in BIND_MODES:
            raise usage.UsageError(f"--bind: invalid value {value!r}; allowed: {', '.join(BIND_MODES)}")
        self["bind"] = value

    opt_b = opt_bind

    def postOptions(self) -> None:
        try:
            self["settings"] = settings_from_options(self, self._env, self._tailnet)
        except (ConfigError, GatewayRefused, ProfileError) as e:
            raise usage.UsageError(str(e)) from e


def settings_from_options(options: Mapping[str, Any], env: Mapping[str, str], tailnet: Any = tailnet_address) -> GatewaySettings:
    """
    Resolve settings from parsed options and an environment.

    @raise ConfigError: invalid config (the CLI exits 78).
    @raise GatewayRefused: valid config this gateway must not run with.
    """
    layout = resolve_layout(env, profile=options.get("profile"), dev=bool(options.get("dev")), config_path=options.get("config"))
    loaded = load_for(layout, env)
    flags = Flags(
        port=options.get("port"),
        bind=options.get("bind"),
        token=options.get("token"),
        password=options.get("password"),
        allow_unconfigured=bool(options.get("allow-unconfigured")),
        verbose=bool(options.get("verbose")),
        force=bool(options.get("force")),
        mdns=bool(options.get("mdns")),
    )
    return resolve_settings(loaded, layout, flags, tailnet_address=tailnet)


def makeService(options: Mapping[str, Any], reactor: Any = None) -> Any:
    """Build the gateway's MultiService from parsed L{Options}."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    from openclaw.service import GatewayService

    return GatewayService(options["settings"], reactor)
