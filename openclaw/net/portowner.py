# -*- test-case-name: tests.test_portowner -*-
"""Which local processes listen on a TCP port (Linux /proc), to name and stop them."""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN = "0A"


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listeners(port: int, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """C{(pid, command line)} of processes we can see listening on C{port}."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(entry / "fd" / fd) in wanted:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    found.append((int(entry.name), cmd))
                    break
            except OSError:
                continue
    return found


def describe_port_owner(port: int) -> str:
    owners = listeners(port)
    if owners:
        who = "; ".join(f"pid {pid}: {cmd[:120]}" for pid, cmd in owners)
        return f"Port {port} is held by {who}. Stop it (kill <pid>) or pass --force to stop it for you."
    return (
        f"Port {port} is already in use. Find the owner with `ss -ltnp 'sport = :{port}'` "
        f"(or `lsof -iTCP:{port} -sTCP:LISTEN`), stop it, or pick another port with --port."
    )
