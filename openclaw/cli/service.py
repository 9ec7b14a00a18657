# -*- test-case-name: tests.test_daemon,tests.test_supervisor -*-
"""
`openclaw gateway start|stop|restart|install|uninstall|reset`.

With a service installed for this profile (systemd unit, launchd agent) the
lifecycle commands drive it; without one, `start` runs a detached background
gateway (L{openclaw.ops.daemon}) and `stop` ends it.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw.cli.base import CommandOptions
from openclaw.config import EX_CONFIG, ConfigError, GatewayRefused, load_for
from openclaw.config.firstrun import needs_token, new_token, store_or_explain
from openclaw.config.schema import BIND_MODES
from openclaw.ops import daemon
from openclaw.ops.reset import reset_state
from openclaw.ops.supervisor import Installed, SupervisorError, installed_supervisor, supervisor_for
from openclaw.ops.units import ServiceSpec
from openclaw.paths import Layout, ProfileError
from openclaw.store import ensure_dir
from openclaw.tap import settings_from_options

TAILSCALE_MODES = ("off", "serve", "funnel")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise usage.UsageError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise usage.UsageError(f"--port: expected a port from 1 to 65535, got {value!r}")
    return int(value)


def root_flags(layout: Layout) -> list[str]:
    """The flags that select this profile, for a command we spawn or a unit we write."""
    if layout.profile == "dev":
        return ["--dev"]
    return ["--profile", layout.profile] if layout.profile else []


def emit(out: IO[str], as_json: bool, value: dict[str, Any], text: str) -> None:
    out.write(json.dumps(value) + "\n" if as_json else text)


class _Lifecycle(CommandOptions):
    """Options shared by the lifecycle commands."""

    optFlags = [["json", None, "Print JSON."]]

    def spec(self, env: Mapping[str, str], system: bool = False, run_flags: tuple[str, ...] = ()) -> ServiceSpec:
        layout = self.layout(env)
        try:
            config = load_for(layout, env).config
        except ConfigError:
            config = {}
        defaults = (config.get("agents") or {}).get("defaults") or {}
        logfile = (config.get("logging") or {}).get("file")
        wanted = [
            defaults.get("workspace"),  # the agent's workspace
            str(Path(logfile).expanduser().parent) if isinstance(logfile, str) and logfile else None,
            (config.get("canvasHost") or {}).get("root"),
        ]
        writable = [
            Path(p).expanduser().absolute()
            for p in wanted
            if isinstance(p, str) and p and not Path(p).expanduser().absolute().is_relative_to(layout.state_dir)
        ]
        user = None
        if system:
            try:
                user = pwd.getpwuid(os.stat(layout.state_dir).st_uid).pw_name
            except (OSError, KeyError):
                user = pwd.getpwuid(os.getuid()).pw_name
        argv = (sys.executable, "-m", "openclaw", *root_flags(layout), "gateway", "run", *run_flags)
        return ServiceSpec(argv=argv, state_dir=layout.state_dir, config_path=layout.config_path, profile=layout.profile if layout.profile else None, system=system, user=user, writable=tuple(writable))

    def prepare(self, env: Mapping[str, str], err: IO[str], options: Mapping[str, Any]) -> int | None:
        """
        What the gateway would check at start, here where the user sees it: a
        valid config (else 78), a local mode, auth (first run: a token is stored).
        """
        try:
            settings = settings_from_options(options, env)
            if needs_token(settings.auth):
                store_or_explain(load_for(settings.layout, env), new_token())
                err.write(f"Generated a gateway token and stored it in {settings.layout.config_path} (gateway.auth.token).\n")
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        except (GatewayRefused, ProfileError) as e:
            err.write(f"{e}\nRun `openclaw setup` to write a minimal config.\n" if "gateway.mode" in str(e) else f"{e}\n")
            return 1
        return None


class GatewayStartOptions(_Lifecycle):
    synopsis = "[--port P] [--bind MODE] [--force] [--allow-unconfigured] [--tailscale MODE] [--timeout S] [--json]"
    longdesc = "Start the gateway: through its service when one is installed, else as a background process."
    optParameters = [
        ["port", "p", None, "Gateway port.", _port],
        ["bind", "b", None, "Bind mode: " + "|".join(BIND_MODES) + "."],
        ["tailscale", None, None, "Tailscale exposure: off|serve|funnel."],
        ["timeout", None, daemon.START_TIMEOUT, "Seconds to wait until it is ready.", _seconds],
        ["config", "c", None, "Config file."],
    ]
    optFlags = [
        ["force", None, "Stop whatever listens on the gateway port first."],
        ["allow-unconfigured", None, "Start even when gateway.mode is not \"local\"."],
        ["verbose", "v", "Debug output in the gateway's log."],
    ]

    def postOptions(self) -> None:
        if self["bind"] is not None and self["bind"] not in BIND_MODES:
            raise usage.UsageError(f"--bind: one of {', '.join(BIND_MODES)}")
        if self["tailscale"] is not None and self["tailscale"] not in TAILSCALE_MODES:
            raise usage.UsageError(f"--tailscale: one of {', '.join(TAILSCALE_MODES)}")

    def run_flags(self) -> list[str]:
        flags: list[str] = []
        for name in ("port", "bind", "tailscale", "config"):
            if self[name] is not None:
                flags += [f"--{name}", str(self[name])]
        for name in ("force", "allow-unconfigured", "verbose"):
            if self[name]:
                flags.append(f"--{name}")
        return flags

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        supervisor = installed_supervisor(self.spec(env), env)
        if supervisor is not None:
            if self.run_flags():
                err.write(f"note: the installed {supervisor.kind} service runs with the config; options given here are not passed to it\n")
            try:
                supervisor.start()
                state = supervisor.state()
            except SupervisorError as e:
                err.write(f"Cannot start the {supervisor.kind} service: {e}\n")
                return 1
            emit(out, self["json"], {"ok": True, "manager": supervisor.kind, "state": state.active, "pid": state.pid}, f"Started the {supervisor.kind} service {supervisor.path.name}: {state.detail}" + (f", pid {state.pid}" if state.pid else "") + "\n")
            return 0
        options = {"profile": layout.profile, "dev": layout.profile == "dev", "config": self["config"], "port": self["port"], "bind": self["bind"], "allow-unconfigured": self["allow-unconfigured"], "force": self["force"]}
        refused = self.prepare(env, err, options)
        if refused is not None:
            return refused
        argv = [sys.executable, "-m", "openclaw", *root_flags(layout), "gateway", "run", "--quiet", *self.run_flags()]
        try:
            started = daemon.start(layout.state_dir, argv, env, self["timeout"])
        except daemon.DaemonError as e:
            err.write(f"Cannot start the gateway: {e}\n")
            return 1
        except OSError as e:
            err.write(f"Cannot start the gateway: {e}\n")
            return 1
        emit(
            out,
            self["json"],
            {"ok": True, "manager": "background", "pid": started.pid, "status": started.status, "outLog": str(started.out_log)},
            f"Gateway started in the background (pid {started.pid}): {started.status}\n"
            f"  logs: `openclaw {' '.join(root_flags(layout) + ['gateway', 'logs', '-f'])}`; stop: `openclaw {' '.join(root_flags(layout) + ['gateway', 'stop'])}`\n",
        )
        return 0


class GatewayStopOptions(_Lifecycle):
    synopsis = "[--timeout S] [--json]"
    longdesc = "Stop the gateway (its service, or the background or foreground process on this profile's state dir)."
    optParameters = [["timeout", None, daemon.STOP_TIMEOUT, "Seconds to wait for a clean exit before SIGKILL.", _seconds], ["config", "c", None, "Config file."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        supervisor = installed_supervisor(self.spec(env), env)
        if supervisor is not None:
            try:
                supervisor.stop()
            except SupervisorError as e:
                err.write(f"Cannot stop the {supervisor.kind} service: {e}\n")
                return 1
            emit(out, self["json"], {"ok": True, "manager": supervisor.kind}, f"Stopped the {supervisor.kind} service {supervisor.path.name}.\n")
            return 0
        try:
            stopped = daemon.stop(layout.state_dir, self["timeout"])
        except daemon.DaemonError as e:
            err.write(f"Cannot stop the gateway: {e}\n")
            return 1
        if stopped.pid is None:
            emit(out, self["json"], {"ok": True, "pid": None, "wasRunning": False}, f"The gateway is not running (state dir {layout.state_dir}).\n")
            return 0
        how = f"killed after {self['timeout']:g} s without a clean exit" if stopped.killed else f"stopped cleanly in {stopped.seconds:.1f} s"
        emit(out, self["json"], {"ok": True, "pid": stopped.pid, "wasRunning": True, "killed": stopped.killed}, f"Gateway pid {stopped.pid} {how}.\n")
        return 0


class GatewayRestartOptions(GatewayStartOptions):
    longdesc = "Restart the gateway: its service, or the background process (with the options it was started with unless new ones are given)."

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        supervisor = installed_supervisor(self.spec(env), env)
        if supervisor is not None:
            try:
                supervisor.restart()
                state = supervisor.state()
            except SupervisorError as e:
                err.write(f"Cannot restart the {supervisor.kind} service: {e}\n")
                return 1
            emit(out, self["json"], {"ok": True, "manager": supervisor.kind, "state": state.active, "pid": state.pid}, f"Restarted the {supervisor.kind} service {supervisor.path.name}: {state.detail}" + (f", pid {state.pid}" if state.pid else "") + "\n")
            return 0
        previous = daemon.read_record(layout.state_dir).get("argv")
        try:
            stopped = daemon.stop(layout.state_dir, daemon.STOP_TIMEOUT)
        except daemon.DaemonError as e:
            err.write(f"Cannot stop the gateway: {e}\n")
            return 1
        if stopped.pid is not None and not self["json"]:
            out.write(f"Stopped pid {stopped.pid}.\n")
        if isinstance(previous, list) and not self.run_flags():
            try:
                i = previous.index("--quiet")
                self._previous = [str(a) for a in previous[i + 1 :]]
            except ValueError:
                self._previous = []
        return super().run(env, out, err)

    _previous: list[str] = []

    def run_flags(self) -> list[str]:
        return super().run_flags() or list(self._previous)


class GatewayInstallOptions(_Lifecycle):
    synopsis = "[--force] [--system] [--port P] [--json]"
    longdesc = (
        "Install the gateway as a service that starts at boot and restarts on failure: a systemd user unit "
        "(--system: a system unit) on Linux, a LaunchAgent on macOS. It runs `openclaw gateway run` with this profile."
    )
    optParameters = [["port", "p", None, "Gateway port (passed to the service).", _port], ["config", "c", None, "Config file."]]
    optFlags = [["force", None, "Rewrite a unit that differs."], ["system", None, "A system unit (/etc/systemd/system) instead of a user unit."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        options = {"profile": layout.profile, "dev": layout.profile == "dev", "config": self["config"], "port": self["port"]}
        refused = self.prepare(env, err, options)
        if refused is not None:
            return refused
        ensure_dir(layout.state_dir)
        flags = ("--port", str(self["port"])) if self["port"] else ()
        spec = self.spec(env, self["system"], flags)
        supervisor = supervisor_for(spec, env)
        running = daemon.running_pid(layout.state_dir)
        if running is not None and installed_supervisor(spec, env) is None:
            err.write(f"A gateway is running on {layout.state_dir} (pid {running}) outside a service; stopping it first.\n")
            try:
                daemon.stop(layout.state_dir)
            except daemon.DaemonError as e:
                err.write(f"Cannot stop it: {e}\n")
                return 1
        try:
            installed: Installed = supervisor.install(self["force"])
            state = supervisor.state()
        except SupervisorError as e:
            err.write(f"Cannot install the service: {e}\n")
            return 1
        except OSError as e:
            err.write(f"Cannot install the service: {e.strerror}: {e.filename}\n")
            return 1
        result = {"ok": True, "manager": supervisor.kind, "path": str(installed.path), "changed": installed.changed, "state": state.active, "pid": state.pid, "notes": list(installed.notes)}
        scope = "" if spec.system else "--user "
        text = f"{'Installed' if installed.changed else 'Already installed (unchanged)'}: {installed.path}\n  state: {state.detail}" + (f", pid {state.pid}" if state.pid else "") + "\n"
        if supervisor.kind == "systemd":
            text += f"  logs: journalctl {scope}-u {spec.unit_name} -f   (or `openclaw gateway logs -f`)\n"
        text += "".join(f"  {note}\n" for note in installed.notes)
        emit(out, self["json"], result, text)
        return 0


class GatewayUninstallOptions(_Lifecycle):
    synopsis = "[--system] [--json]"
    optFlags = [["system", None, "Remove the system unit instead of the user unit."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        spec = self.spec(env, self["system"])
        supervisor = supervisor_for(spec, env)
        try:
            removed = supervisor.uninstall()
        except SupervisorError as e:
            err.write(f"Cannot uninstall the service: {e}\n")
            return 1
        except OSError as e:
            err.write(f"Cannot uninstall the service: {e.strerror}: {e.filename}\n")
            return 1
        emit(out, self["json"], {"ok": True, "removed": removed, "path": str(supervisor.path)}, f"Removed {supervisor.path} (the service is stopped and disabled).\n" if removed else f"No service installed at {supervisor.path}.\n")
        return 0


class GatewayResetOptions(_Lifecycle):
    synopsis = "--state [--json]"
    longdesc = (
        "Emergency recovery: --state removes the gateway's runtime state (lock and pid files, pending pairing "
        "requests, the derived session index, stray temp files, gateway-state/). The config, credentials, paired "
        "devices and nodes, transcripts and the workspace are kept. The gateway must be stopped."
    )
    optFlags = [["state", None, "Clear the runtime state (required)."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        if not self["state"]:
            err.write("Say what to reset: `openclaw gateway reset --state`.\n")
            return 2
        layout = self.layout(env)
        pid = daemon.running_pid(layout.state_dir)
        if pid is not None:
            err.write(f"The gateway is running (pid {pid}); stop it first: `openclaw {' '.join(root_flags(layout) + ['gateway', 'stop'])}`.\n")
            return 1
        try:
            removed = reset_state(layout.state_dir)
        except OSError as e:
            err.write(f"Cannot reset {layout.state_dir}: {e.strerror}: {e.filename}\n")
            return 1
        text = f"Reset the runtime state of {layout.state_dir}:\n" + "".join(f"  removed {p}\n" for p in removed) if removed else f"Nothing to reset in {layout.state_dir}.\n"
        text += "Kept: the config, .env, credentials, identity, paired devices and nodes, transcripts, workspace, logs.\n"
        emit(out, self["json"], {"ok": True, "removed": [str(p) for p in removed]}, text)
        return 0
