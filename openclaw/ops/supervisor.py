# -*- test-case-name: tests.test_supervisor -*-
"""
Driving the installed service: systemd (C{systemctl [--user]}) on Linux,
launchd (C{launchctl}) on macOS. The CLI runs these commands synchronously
(it is not the gateway's reactor), each with a timeout.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Protocol

import attrs

from openclaw.ops.units import ServiceSpec, launchd_plist, systemd_unit
from openclaw.store import atomic_write

COMMAND_TIMEOUT = 120.0  # `systemctl start` of a Type=notify unit waits for READY=1


class SupervisorError(Exception):
    """A service command failed; the message says which and why."""


@attrs.frozen
class ServiceState:
    """What the manager says: C{active} is C{running}, C{stopped}, C{failed}, C{activating}, ..."""

    active: str
    pid: int | None = None
    detail: str = ""
    restarts: int | None = None

    @property
    def running(self) -> bool:
        return self.active in ("running", "active", "reloading")


@attrs.frozen
class Installed:
    path: Path
    changed: bool
    notes: tuple[str, ...] = ()


class Supervisor(Protocol):
    kind: str
    path: Path
    spec: ServiceSpec

    def render(self) -> bytes: ...

    def installed(self) -> bool: ...

    def install(self, force: bool) -> Installed: ...

    def uninstall(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def state(self) -> ServiceState: ...


def _run(argv: list[str], env: Mapping[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SupervisorError(f"{argv[0]} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise SupervisorError(f"`{' '.join(argv)}` did not finish in {COMMAND_TIMEOUT:g} s") from None
    if check and result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise SupervisorError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {said[-1] if said else 'no output'}")
    return result


class Systemd:
    """A user unit (default) or a system unit (C{--system})."""

    kind = "systemd"

    def __init__(self, spec: ServiceSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.env = env
        self.path = unit_dir(env, spec.system) / spec.unit_name

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        scope = [] if self.spec.system else ["--user"]
        return _run(["systemctl", *scope, *args], self.env, check)

    def render(self) -> bytes:
        return systemd_unit(self.spec).encode()

    def installed(self) -> bool:
        return self.path.is_file()

    def install(self, force: bool) -> Installed:
        if shutil.which("systemctl", path=self.env.get("PATH")) is None:
            raise SupervisorError(
                "systemctl not found: this machine has no systemd. Run the gateway with `openclaw gateway start` "
                "(a background process) or under your own supervisor"
            )
        text = self.render()
        changed = True
        if self.path.exists():
            if self.path.read_bytes() == text:
                changed = False
            elif not force:
                raise SupervisorError(f"{self.path} exists and differs from what install would write; `openclaw gateway install --force` rewrites it")
        if changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text, 0o644)  # no secrets in it; systemd and the user read it
        self.systemctl("daemon-reload")
        self.systemctl("enable", self.spec.unit_name)
        self.systemctl("restart" if changed else "start", self.spec.unit_name)
        return Installed(self.path, changed, tuple(self.notes()))

    def notes(self) -> list[str]:
        """Advice after a user install: without lingering the service stops at logout."""
        if self.spec.system:
            return []
        user = pwd.getpwuid(os.getuid()).pw_name
        try:
            result = _run(["loginctl", "show-user", user, "--property=Linger"], self.env, check=False)
        except SupervisorError:
            return [f"To keep the gateway running after you log out (and start it at boot): sudo loginctl enable-linger {user}"]
        if result.stdout.strip() == "Linger=yes":
            return []
        return [f"To keep the gateway running after you log out (and start it at boot): sudo loginctl enable-linger {user}"]

    def uninstall(self) -> bool:
        if not self.path.exists():
            return False
        self.systemctl("disable", "--now", self.spec.unit_name, check=False)
        self.path.unlink()
        self.systemctl("daemon-reload", check=False)
        self.systemctl("reset-failed", self.spec.unit_name, check=False)
        return True

    def start(self) -> None:
        self.systemctl("start", self.spec.unit_name)

    def stop(self) -> None:
        self.systemctl("stop", self.spec.unit_name)

    def restart(self) -> None:
        self.systemctl("restart", self.spec.unit_name)

    def state(self) -> ServiceState:
        result = self.systemctl("show", self.spec.unit_name, "--property=ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,Result", check=False)
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            return ServiceState("unknown", detail=said[-1] if said else f"systemctl show exited {result.returncode}")
        props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        active = props.get("ActiveState", "unknown")
        sub = props.get("SubState", "")
        pid = int(props.get("MainPID", "0") or 0) or None
        restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else None
        state = {"active": "running", "inactive": "stopped"}.get(active, active)
        detail = f"{active} ({sub})" if sub else active
        if props.get("Result") not in (None, "", "success"):
            detail += f", last result {props['Result']} (exit status {props.get('ExecMainStatus', '?')})"
        return ServiceState(state, pid, detail, restarts)


class Launchd:
    """A LaunchAgent in C{~/Library/LaunchAgents}."""

    kind = "launchd"

    def __init__(self, spec: ServiceSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.env = env
        home = Path(env.get("HOME") or Path.home())
        self.path = Path(env.get("OPENCLAW_LAUNCHD_DIR") or home / "Library" / "LaunchAgents") / f"{spec.label}.plist"
        self.domain = f"gui/{os.getuid()}"

    def launchctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["launchctl", *args], self.env, check)

    def render(self) -> bytes:
        return launchd_plist(self.spec)

    def installed(self) -> bool:
        return self.path.is_file()

    def install(self, force: bool) -> Installed:
        data = self.render()
        changed = True
        if self.path.exists():
            if self.path.read_bytes() == data:
                changed = False
            elif not force:
                raise SupervisorError(f"{self.path} exists and differs from what install would write; `openclaw gateway install --force` rewrites it")
        if changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data, 0o644)
            self.launchctl("bootout", f"{self.domain}/{self.spec.label}", check=False)
            self.launchctl("bootstrap", self.domain, str(self.path))
        self.launchctl("kickstart", f"{self.domain}/{self.spec.label}")
        return Installed(self.path, changed)

    def uninstall(self) -> bool:
        if not self.path.exists():
            return False
        self.launchctl("bootout", f"{self.domain}/{self.spec.label}", check=False)
        self.path.unlink()
        return True

    def start(self) -> None:
        self.launchctl("bootstrap", self.domain, str(self.path), check=False)
        self.launchctl("kickstart", f"{self.domain}/{self.spec.label}")

    def stop(self) -> None:
        self.launchctl("bootout", f"{self.domain}/{self.spec.label}")

    def restart(self) -> None:
        self.launchctl("kickstart", "-k", f"{self.domain}/{self.spec.label}")

    def state(self) -> ServiceState:
        result = self.launchctl("print", f"{self.domain}/{self.spec.label}", check=False)
        if result.returncode != 0:
            return ServiceState("stopped", detail="not loaded")
        fields: dict[str, str] = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.strip().partition(" = ")
            if sep:
                fields.setdefault(key, value)
        pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
        state = fields.get("state", "unknown")
        return ServiceState("running" if state == "running" else state, pid, f"launchd state {state}")


def unit_dir(env: Mapping[str, str], system: bool) -> Path:
    """Where units go: C{OPENCLAW_SYSTEMD_DIR} if set, else the user or system unit folder."""
    if env.get("OPENCLAW_SYSTEMD_DIR"):
        return Path(env["OPENCLAW_SYSTEMD_DIR"])
    if system:
        return Path("/etc/systemd/system")
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "systemd" / "user"


def supervisor_for(spec: ServiceSpec, env: Mapping[str, str], platform: str = sys.platform) -> Systemd | Launchd:
    """The manager for this platform (launchd on macOS, else systemd)."""
    return Launchd(spec, env) if platform == "darwin" else Systemd(spec, env)


def installed_supervisor(spec: ServiceSpec, env: Mapping[str, str], platform: str = sys.platform) -> Systemd | Launchd | None:
    """The installed service for this profile (user unit first, then a system unit), or None."""
    if platform == "darwin":
        launchd = Launchd(spec, env)
        return launchd if launchd.installed() else None
    for system in (False, True):
        candidate = Systemd(attrs.evolve(spec, system=system), env)
        # The two folders may be one (OPENCLAW_SYSTEMD_DIR): the unit's target tells them apart.
        if candidate.installed() and ("WantedBy=multi-user.target" in candidate.path.read_text(errors="replace")) == system:
            return candidate
    return None
