# -*- test-case-name: tests.test_uimethods -*-
"""
This host, as the Control UI's Systems page shows it: C{system.info} (the
machine, its load, memory and disks, this process) and C{environments.list}
(where sessions run: here, the gateway host itself, with what is installed
on it for the agent to use).

Every figure is read when asked, from the OS (C{/proc}, C{statvfs}, C{PATH});
nothing is cached and nothing is written. A figure the OS does not give is
left out (the fields are optional upstream), never made up.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable

import attrs

from openclaw.gateway.boot import Boot
from openclaw.gateway.stability import Stability
from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.shape import Bool, Obj, Str

# Node's names for machines, which the UI compares (worker bundles, labels).
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64", "i386": "ia32", "i686": "ia32", "armv7l": "arm", "ppc64le": "ppc64", "s390x": "s390x"}

# What the agent can use on this host when it is installed: capability → program on PATH.
TOOLS = (
    ("sandbox.bubblewrap", "bwrap"),
    ("sandbox.docker", "docker"),
    ("media.ffmpeg", "ffmpeg"),
    ("net.tailscale", "tailscale"),
    ("vcs.git", "git"),
)
BASE_CAPABILITIES = ("agent.run", "sessions", "tools", "workspace")
MAX_PROC_BYTES = 256 * 1024


@attrs.frozen
class HostDeps:
    """What the host methods read: this process, its folders, the event-loop probe."""

    boot: Boot
    stability: Stability
    state_dir: Path
    workspace: Callable[[], Path]
    which: Callable[[str], str | None] = shutil.which
    proc: Path = Path("/proc")


HOST_METHODS: MethodTable[HostDeps] = MethodTable()


def arch() -> str:
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine or "unknown")


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PROC_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def meminfo(proc: Path) -> dict[str, int]:
    """C{MemTotal} and C{MemAvailable} in bytes, from C{/proc/meminfo}; empty where there is none."""
    text = _read(proc / "meminfo") or ""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name in ("MemTotal", "MemAvailable", "MemFree") and parts and parts[0].isdigit():
            found[name] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return found


def cpu_model(proc: Path) -> str | None:
    for line in (_read(proc / "cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
            return value.strip()
    return None


def disks(paths: Iterable[Path]) -> list[dict[str, JSON]]:
    """Size and free space of the filesystems holding C{paths} (one row per filesystem)."""
    rows: list[dict[str, JSON]] = []
    seen: set[int] = set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if device in seen or usage.total <= 0:
            continue
        seen.add(device)
        rows.append({"path": str(path), "totalBytes": usage.total, "availableBytes": usage.free})
    return rows


def runtime_label() -> str:
    """This gateway's runtime (the UI shows it where upstream shows its Node version)."""
    return f"{platform.python_implementation()} {platform.python_version()}"


@HOST_METHODS.method("system.info")
def system_info(hd: HostDeps, caller: Caller, params: Params) -> JSON:
    uname = os.uname()
    info: dict[str, JSON] = {
        "machineName": hd.boot.hostname,
        "hostname": hd.boot.hostname,
        "platform": sys.platform,
        "release": uname.release,
        "arch": arch(),
        "osLabel": f"{uname.sysname} {uname.release}",
        "nodeVersion": runtime_label(),
        "pid": os.getpid(),
        "processInstanceId": hd.boot.boot_id,
        "uptimeMs": hd.boot.uptime_ms(),
        "cpuCount": os.cpu_count() or 1,
        "eventLoop": hd.stability.event_loop(),
    }
    model = cpu_model(hd.proc)
    if model:
        info["cpuModel"] = model
    try:
        info["loadAverage"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    memory = meminfo(hd.proc)
    if "MemTotal" in memory:
        info["memoryTotalBytes"] = memory["MemTotal"]
        info["memoryFreeBytes"] = memory.get("MemAvailable", memory.get("MemFree", 0))
    else:  # no /proc: what sysconf says, or nothing to say
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            info["memoryTotalBytes"] = page * os.sysconf("SC_PHYS_PAGES")
            info["memoryFreeBytes"] = page * os.sysconf("SC_AVPHYS_PAGES")
        except (OSError, ValueError):
            info["memoryTotalBytes"] = info["memoryFreeBytes"] = 0
    found = disks([hd.state_dir, hd.workspace()])
    if found:
        info["diskPath"] = found[0]["path"]
        info["diskTotalBytes"] = found[0]["totalBytes"]
        info["diskAvailableBytes"] = found[0]["availableBytes"]
        info["disks"] = found
    return info


def installed(which: Callable[[str], str | None]) -> list[str]:
    """The capabilities of L{TOOLS} whose program is on PATH."""
    return [capability for capability, program in TOOLS if which(program)]


_ENVIRONMENTS = Obj(
    {
        "runtimeId": Str(nonempty=True, max_length=128),
        "projection": Str(("profiles",)),
        "includeDesktopSetup": Bool(),
    },
    closed=True,
)


@HOST_METHODS.method("environments.list", _ENVIRONMENTS)
def environments_list(hd: HostDeps, caller: Caller, params: Params) -> JSON:
    """
    One environment: this gateway's host, where every session runs. There are
    no workers or cloud profiles here, so C{runtimeId} matches only
    C{"gateway"} and the C{profiles} projection is empty; there is no managed
    desktop either (C{desktopSetup.state: "unsupported"}).
    """
    if params.get("projection") == "profiles":
        return {"environments": [], "profiles": []}
    if params.get("runtimeId") not in (None, "gateway"):
        return {"environments": []}
    uname = os.uname()
    environment: dict[str, JSON] = {
        "id": "gateway",
        "type": "local",
        "label": f"Gateway host ({hd.boot.hostname})",
        "status": "available",
        "platform": sys.platform,
        "sessionHost": True,
        "trust": "persistent",
        "capabilities": [*BASE_CAPABILITIES, *installed(hd.which)],
    }
    if params.get("includeDesktopSetup"):
        environment["desktopSetup"] = {"state": "unsupported", "detail": f"this gateway has no remote desktop ({uname.sysname}, {runtime_label()})"}
    return {"environments": [environment]}
