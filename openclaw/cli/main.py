# -*- test-case-name: tests.test_cli -*-
"""
The C{openclaw} command.

Each command is a C{usage.Options} class with a C{run(env, out, err)} that
returns the exit code; L{main} parses and dispatches, and never lets a
traceback reach the user for an expected failure.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Mapping

from twisted.python import usage

from openclaw import __version__
from openclaw.cli.base import EX_USAGE, CommandOptions
from openclaw.cli.agent import AgentOptions, ChatOptions, SessionsOptions
from openclaw.cli.approvals import ApprovalsOptions
from openclaw.cli.config import ConfigOptions
from openclaw.cli.setup import OnboardOptions, SetupOptions
from openclaw.cli.service import GatewayInstallOptions, GatewayResetOptions, GatewayRestartOptions, GatewayStartOptions, GatewayStopOptions, GatewayUninstallOptions
from openclaw.cli.dashboard import DashboardOptions
from openclaw.cli.channels import ChannelsOptions, MessageOptions, PairingOptions
from openclaw.cli.memory import MemoryOptions
from openclaw.cli.skills import SkillsOptions
from openclaw.cli.doctor import DoctorOptions
from openclaw.cli.cron import CronOptions, RemindOptions, SystemOptions
from openclaw.cli.nodes import NodeOptions, NodesOptions
from openclaw.cli.remote import GATEWAY_CLIENT_COMMANDS, DevicesOptions, HealthOptions, LogsOptions
from openclaw.cli.status import GatewayLogsOptions, GatewayStatusOptions, ProbeOptions, StatusOptions
from openclaw.config import EX_CONFIG, ConfigError, GatewayRefused, load_for
from openclaw.config.firstrun import needs_token, new_token, store_or_explain
from openclaw.ops.tailscale import MODES as TAILSCALE_MODES
from openclaw.ops.tailscale import TailscaleRefused, check_mode, tailscale_settings
from openclaw.paths import ProfileError
from openclaw.tap import Options as TapOptions
from openclaw.tap import settings_from_options


class GatewayRunOptions(TapOptions, CommandOptions):
    synopsis = "[options]"
    longdesc = "Run the gateway in the foreground (Ctrl-C stops it)."
    optFlags = [
        ["quiet", None, "No console log (the JSON-lines log file has everything)."],
        ["tailscale-reset-on-exit", None, "Undo tailscale serve/funnel when the gateway stops."],
    ]
    optParameters = [["tailscale", None, None, "Expose through Tailscale: off|serve|funnel (default gateway.tailscale.mode)."]]

    def opt_tailscale(self, value: str) -> None:
        if value not in TAILSCALE_MODES:
            raise usage.UsageError(f"--tailscale: one of {', '.join(TAILSCALE_MODES)}")
        self["tailscale"] = value

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
        tailscale = tailscale_settings(settings.config, self["tailscale"], self["tailscale-reset-on-exit"])
        try:
            check_mode(tailscale, settings.auth.mode, bool(settings.auth.password))
        except TailscaleRefused as e:
            err.write(f"{e}\n")
            return 1
        return run_gateway(settings, out, err, quiet=self["quiet"], tailscale=tailscale)


class GatewayOptions(GatewayRunOptions):
    synopsis = "[run] [options]"
    longdesc = "Run the gateway in the foreground (same as `openclaw gateway run`)."
    subCommands = [
        ["run", None, GatewayRunOptions, "Run the gateway in the foreground."],
        ["start", None, GatewayStartOptions, "Start it (its service, else in the background)."],
        ["stop", None, GatewayStopOptions, "Stop it (clean exit, SIGKILL after a bound)."],
        ["restart", None, GatewayRestartOptions, "Restart it."],
        ["install", None, GatewayInstallOptions, "Install the service (systemd unit / LaunchAgent)."],
        ["uninstall", None, GatewayUninstallOptions, "Stop and remove the service."],
        ["reset", None, GatewayResetOptions, "Clear runtime state (--state); keeps config and data."],
        ["status", None, GatewayStatusOptions, "Service state, pid, ports, reachability (--deep: more)."],
        ["probe", None, ProbeOptions, "Probe gateways (remote and local) with timings."],
        ["logs", None, GatewayLogsOptions, "Read the log file (--tail N, -f)."],
        *GATEWAY_CLIENT_COMMANDS,
    ]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        sub = getattr(self, "subOptions", None)
        if sub is not None:
            return sub.run(env, out, err)
        return super().run(env, out, err)


class OpenClawOptions(CommandOptions):
    synopsis = "[--profile NAME] [--dev] <command> [options]"
    longdesc = "OpenClaw Gateway (Twisted): run it, configure it, and talk to it."
    optParameters = [["profile", None, None, "Profile NAME: state in ~/.openclaw-NAME."]]
    optFlags = [["dev", None, "Development profile (~/.openclaw-dev, port 19001)."]]
    subCommands = [
        ["gateway", None, GatewayOptions, "Run the gateway (and talk to it)."],
        ["setup", None, SetupOptions, "Write a minimal valid config (mode local, token, workspace)."],
        ["onboard", None, OnboardOptions, "Set up this profile (--non-interactive for scripts)."],
        ["config", None, ConfigOptions, "Check, read and edit the config file."],
        ["doctor", None, DoctorOptions, "Check this machine's gateway setup and repair what is safe (--fix)."],
        ["health", None, HealthOptions, "Ask the running gateway for its health."],
        ["status", None, StatusOptions, "Gateway status (--deep: more; --all: everything, redacted, for bug reports)."],
        ["logs", None, LogsOptions, "Read the gateway log (-f to follow)."],
        ["devices", None, DevicesOptions, "List, approve and manage paired devices."],
        ["nodes", None, NodesOptions, "List nodes and run commands on them."],
        ["approvals", None, ApprovalsOptions, "Exec approvals: policy, allowlists, waiting requests."],
        ["agent", None, AgentOptions, "Run one agent turn and print the reply."],
        ["chat", None, ChatOptions, "Chat with the agent in the terminal."],
        ["sessions", None, SessionsOptions, "List sessions (local store)."],
        ["node", None, NodeOptions, "Run this machine as a node host."],
        ["dashboard", None, DashboardOptions, "Print (--open: open) the Control UI's address with your token."],
        ["channels", None, ChannelsOptions, "Messaging channels: status, login, logout."],
        ["pairing", None, PairingOptions, "Approve who may DM the assistant (DM pairing)."],
        ["message", None, MessageOptions, "Send a message through a channel."],
        ["memory", None, MemoryOptions, "Memory search index: status, index, search."],
        ["skills", None, SkillsOptions, "Skills: list, info, check."],
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
