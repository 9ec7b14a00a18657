# -*- test-case-name: tests.test_tools -*-
"""
Where C{exec} runs for sessions that must not touch the host: bubblewrap
(no network unless C{allowNetwork}, only the session workspace writable) or
Docker (the C{docker} CLI). A missing backend is refused with what to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from zope.interface import Interface, implementer

FIND = "find on PATH"  # the default for `binary`; None means "not installed"


class SandboxUnavailable(Exception):
    """The configured sandbox backend is not installed."""


class ISandbox(Interface):
    def command(argv: list[str], workspace: Path) -> list[str]:
        """The host command line that runs C{argv} inside the sandbox with C{workspace} at /workspace."""

    def check() -> None:
        """Raise L{SandboxUnavailable} if this backend cannot run here."""


def _read_only_system() -> list[str]:
    binds = []
    for path in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"):
        if os.path.exists(path):
            binds += ["--ro-bind", path, path]
    return binds


@implementer(ISandbox)
class Bubblewrap:
    def __init__(self, allow_network: bool = False, allow_file_system: bool | list[str] = False, binary: str | None = FIND) -> None:
        self.allow_network = allow_network
        self.allow_file_system = allow_file_system
        self.binary = shutil.which("bwrap") if binary == FIND else binary

    def check(self) -> None:
        if self.binary is None:
            raise SandboxUnavailable("the bubblewrap sandbox is not installed (Debian/Ubuntu: apt-get install bubblewrap)")

    def command(self, argv: list[str], workspace: Path) -> list[str]:
        self.check()
        cmd = [self.binary, "--unshare-all", "--die-with-parent", "--new-session"]
        if self.allow_network:
            cmd.append("--share-net")
        if self.allow_file_system is True:
            cmd += ["--ro-bind", "/", "/"]
        else:
            cmd += _read_only_system()
            for extra in self.allow_file_system or []:
                if os.path.exists(extra):
                    cmd += ["--ro-bind", extra, extra]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(workspace), "/workspace", "--chdir", "/workspace", "--clearenv", "--setenv", "HOME", "/workspace", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--"]
        return cmd + argv


@implementer(ISandbox)
class Docker:
    def __init__(self, image: str = "debian:bookworm-slim", allow_network: bool = False, binary: str | None = FIND) -> None:
        self.image = image
        self.allow_network = allow_network
        self.binary = shutil.which("docker") if binary == FIND else binary

    def check(self) -> None:
        if self.binary is None:
            raise SandboxUnavailable("the docker sandbox needs the docker CLI and a running engine")

    def command(self, argv: list[str], workspace: Path) -> list[str]:
        self.check()
        cmd = [self.binary, "run", "--rm", "-i", "--network", "bridge" if self.allow_network else "none"]
        cmd += ["--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{workspace}:/workspace", "-w", "/workspace", "-e", "HOME=/workspace", self.image]
        return cmd + argv


def sandbox_from_config(sandbox: dict[str, Any]) -> ISandbox:
    backend = sandbox.get("backend", "bubblewrap")
    allow_network = bool(sandbox.get("allowNetwork", False))
    if backend == "docker":
        return Docker(sandbox.get("image") or "debian:bookworm-slim", allow_network)
    return Bubblewrap(allow_network, sandbox.get("allowFileSystem", False))
