# -*- test-case-name: tests.test_supervisor -*-
"""
The service definitions `openclaw gateway install` writes, as pure functions
of a L{ServiceSpec}: a systemd unit (user or system) and a launchd plist.

No secret is ever written into them: the gateway reads its token from the
config or from C{<state dir>/.env} (the unit's C{EnvironmentFile}).
"""

from __future__ import annotations

import plistlib
from pathlib import Path

import attrs

WATCHDOG_SEC = 60
RESTART_SEC = 5


@attrs.frozen
class ServiceSpec:
    """What to run, for which profile, with which files writable."""

    argv: tuple[str, ...]
    state_dir: Path
    config_path: Path
    profile: str | None = None
    system: bool = False
    user: str | None = None  # system units: the account the gateway runs as
    writable: tuple[Path, ...] = ()  # beyond the state dir: workspace, log folder
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def unit_name(self) -> str:
        return f"openclaw-gateway-{self.profile}.service" if self.profile else "openclaw-gateway.service"

    @property
    def label(self) -> str:
        """launchd label, as upstream names it."""
        return f"ai.openclaw.{self.profile}" if self.profile else "ai.openclaw.gateway"

    @property
    def description(self) -> str:
        return f"OpenClaw Gateway (profile {self.profile})" if self.profile else "OpenClaw Gateway"


def _quote(arg: str) -> str:
    """One ExecStart word: specifiers (%) and variables ($) escaped, quoted when it has spaces."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in " \t\n\"'\\;"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env_line(key: str, value: str) -> str:
    value = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'Environment="{key}={value}"'


def _paths(state_dir: Path, extra: tuple[Path, ...]) -> str:
    """The state dir (install creates it), then the others with "-": a missing one must not stop the start."""
    words = [_quote(str(state_dir))]
    for p in extra:
        word = _quote("-" + str(p))
        if p != state_dir and word not in words:
            words.append(word)
    return " ".join(words)


def systemd_unit(spec: ServiceSpec) -> str:
    """The unit file's text; the same spec always gives the same bytes."""
    env = [("OPENCLAW_STATE_DIR", str(spec.state_dir)), ("OPENCLAW_CONFIG_PATH", str(spec.config_path)), ("PYTHONUNBUFFERED", "1"), *spec.environment]
    lines = [
        "# Written by `openclaw gateway install`; `openclaw gateway install --force` rewrites it.",
        "[Unit]",
        f"Description={spec.description}",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(_quote(a) for a in spec.argv),
        f"WorkingDirectory={spec.state_dir}",
        *(_env_line(k, v) for k, v in env),
        f"EnvironmentFile=-{spec.state_dir / '.env'}",
    ]
    if spec.system and spec.user:
        lines.append(f"User={spec.user}")
    lines += [
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "RestartPreventExitStatus=78",  # EX_CONFIG: a config error does not fix itself
        "TimeoutStartSec=90",
        "TimeoutStopSec=30",
        f"WatchdogSec={WATCHDOG_SEC}",
        "KillMode=mixed",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={_paths(spec.state_dir, spec.writable)}",
        "PrivateTmp=yes",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if spec.system else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(spec: ServiceSpec) -> bytes:
    """The LaunchAgent plist (macOS): restarted on a crash, not after a clean stop."""
    logs = spec.state_dir / "logs"
    plist = {
        "Label": spec.label,
        "ProgramArguments": list(spec.argv),
        "EnvironmentVariables": {"OPENCLAW_STATE_DIR": str(spec.state_dir), "OPENCLAW_CONFIG_PATH": str(spec.config_path), **dict(spec.environment)},
        "WorkingDirectory": str(spec.state_dir),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_SEC,
        "ProcessType": "Background",
        "Umask": 0o077,
        "StandardOutPath": str(logs / "gateway.out.log"),
        "StandardErrorPath": str(logs / "gateway.err.log"),
    }
    return plistlib.dumps(plist, sort_keys=False)
