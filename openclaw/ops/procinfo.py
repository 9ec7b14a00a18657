# -*- test-case-name: tests.test_daemon -*-
"""What /proc says about a process: alive, command line, memory; and which processes are gateways."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def alive(pid: int, proc: Path = PROC) -> bool:
    """Whether C{pid} runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(proc / str(pid) / "stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_gateway(argv: list[str]) -> bool:
    """An `openclaw gateway [run]` process (or `twistd openclaw`), whatever Python runs it."""
    words = [os.path.basename(a) for a in argv]
    if "twistd" in words and "openclaw" in argv:
        return True
    if "openclaw" not in words and not any(a == "openclaw" for a in argv):
        return False
    try:
        i = argv.index("gateway")
    except ValueError:
        return False
    rest = argv[i + 1 :]
    return not rest or rest[0] == "run" or rest[0].startswith("-")


def gateway_pids(proc: Path = PROC) -> list[int]:
    """Gateway processes on this machine (that we may see)."""
    found = []
    me = os.getpid()
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != me and is_gateway(cmdline(int(entry.name), proc)) and alive(int(entry.name), proc):
            found.append(int(entry.name))
    return sorted(found)


def rss_bytes(pid: int, proc: Path = PROC) -> int | None:
    """Resident memory of C{pid} (VmRSS), or None."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def environ_value(pid: int, name: str, proc: Path = PROC) -> str | None:
    """One variable of C{pid}'s environment (readable for our own processes)."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None
