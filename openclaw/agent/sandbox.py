# -*- test-case-name: tests.test_sandbox -*-
"""
Where C{exec} runs for sessions that must not touch the host: bubblewrap or
Docker. A backend that is missing, or that cannot be made safe here, is
refused with a message that says why; nothing then runs on the host instead.

bubblewrap, what every sandboxed command gets:
  - new mount, PID, IPC, UTS and cgroup namespaces, and a network namespace
    of its own (no network) unless C{allowNetwork};
  - read-only system folders (or, with C{allowFileSystem: true}, the host's
    whole tree read-only minus /proc, /sys, /dev, /run and the gateway's state),
    a fresh /proc (its /sys, /sysrq-trigger, /irq, /bus covered read-only by
    bubblewrap), a minimal /dev, no /sys, size-capped tmpfs /tmp and /dev/shm,
    and the session's workspace read-write at /workspace;
  - no capabilities, no-new-privileges, the seccomp filter of
    L{openclaw.agent.seccomp}, no new user namespaces;
  - a host uid that is not root: when the gateway runs as root, bubblewrap
    sets up the mounts as root and C{setpriv} drops to uid/gid 65534 (which
    owns the workspace) before the command starts; as an ordinary user,
    bubblewrap runs unprivileged in a user namespace of that user;
  - limits, through L{openclaw.process.reaper}: how many more processes its uid may
    start (C{pidsLimit}), virtual memory per process (C{memory}), file size.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any, Iterable

import attrs
from zope.interface import Attribute, Interface, implementer

from openclaw.config.settings import SandboxSettings
from openclaw.agent.seccomp import UnsupportedArch, build_filter
from openclaw.process import Limits

FIND = "find on PATH"  # the default for binaries; None means "not installed"
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody": who sandboxed commands are when the gateway is root
PIDS_LIMIT = 256
MEMORY_LIMIT = 2 * 1024**3
FILE_SIZE_LIMIT = 1024**3
TMPFS_SIZE = 256 * 1024**2
SECCOMP_FD = 3  # where the filter is in bwrap's fd table
SYSTEM_PATHS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
NEVER_SHARED = frozenset({"proc", "sys", "dev", "run", "tmp", "workspace", "lost+found"})
INNER_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxUnavailable(Exception):
    """The sandbox cannot run here (the message says why and what to do)."""


@attrs.frozen
class Launch:
    """How to start one sandboxed command from the host."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    limits: Limits | None = None
    fds: dict[int, int] = attrs.field(factory=dict)  # child fd → our fd, handed over to run_process
    cleanup: list[str] | None = None  # run after a stopped command (e.g. remove its container)

    def close(self) -> None:
        """Close our fds when the command was never started."""
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass


class ISandbox(Interface):
    allow_network = Attribute("Whether sandboxed commands (and web_fetch for the session) may use the network.")

    def check() -> None:
        """Raise L{SandboxUnavailable} if this backend cannot run safely here."""

    def owner() -> tuple[int, int] | None:
        """The uid/gid that workspace files must belong to, or None for the gateway's own."""

    def prepare(argv: list[str], workspace: Path, cwd: str = ".") -> Launch:
        """The host command that runs C{argv} inside the sandbox with C{workspace} at /workspace."""


def sandbox_limits(config: dict[str, Any]) -> tuple[int, int]:
    """C{(pids, memory bytes)} from C{pidsLimit} and C{memory} (C{"512m"}, C{"2g"} or bytes)."""
    pids = config.get("pidsLimit")
    memory = config.get("memory")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int) or pids < 1):
        raise ValueError(f"gateway.sandbox.pidsLimit must be a whole number from 1, not {pids!r}")
    try:
        size = parse_size(memory) if memory is not None else MEMORY_LIMIT
    except ValueError as e:
        raise ValueError(f"gateway.sandbox.memory: {e}")
    return pids or PIDS_LIMIT, size


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        units = {"k": 1024, "m": 1024**2, "g": 1024**3}
        scale = units.get(text[-1:], 1)
        number = text[:-1] if text[-1:] in units else text
        if number.isdigit() and int(number) > 0:
            return int(number) * scale
    raise ValueError(f"not a size: {value!r} (use bytes, or a number with k, m or g)")


def inner_cwd(cwd: Any) -> str:
    """A working folder inside /workspace, from a relative or /workspace path."""
    if cwd in (None, "", ".", "/workspace"):
        return "/workspace"
    if not isinstance(cwd, str) or "\x00" in cwd:
        raise ValueError("cwd must be a path in the workspace")
    rel = cwd.removeprefix("/workspace/") if cwd.startswith("/workspace/") else cwd
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts:
        raise ValueError(f"cwd must stay in the workspace: {cwd}")
    return "/workspace/" + "/".join(parts) if parts else "/workspace"


def _seccomp_fd() -> int:
    """A sealed-in-memory copy of the filter, at offset 0 for bwrap to read."""
    program = build_filter()
    fd = os.memfd_create("openclaw-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _under(path: Path, roots: Iterable[str]) -> bool:
    return any(path == Path(r) or Path(r) in path.parents for r in roots)


def adopt(workspace: Path, owner: tuple[int, int]) -> None:
    """
    Give the workspace (and what is in it) to the sandbox's uid, never
    following links. The folder itself keeps group root, mode 0710: bubblewrap,
    root without capabilities by then, must still be able to enter it.
    """
    st = os.lstat(workspace)
    if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (owner[0], 0, 0o710):
        return
    for folder, dirs, files in os.walk(workspace, followlinks=False):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), *owner, follow_symlinks=False)
    os.chown(workspace, owner[0], 0, follow_symlinks=False)
    os.chmod(workspace, 0o710)


@implementer(ISandbox)
class Bubblewrap:
    def __init__(
        self,
        allow_network: bool = False,
        allow_file_system: bool | list[str] = False,
        binary: str | None = FIND,
        *,
        hide: Iterable[Path] = (),
        pids: int = PIDS_LIMIT,
        memory: int = MEMORY_LIMIT,
        as_root: bool | None = None,
        setpriv: str | None = FIND,
        problem: str | None = None,
    ) -> None:
        self.problem = problem  # a config error: refuse rather than guess
        self.allow_network = allow_network
        self.allow_file_system = allow_file_system
        self.binary = shutil.which("bwrap") if binary == FIND else binary
        self.setpriv = shutil.which("setpriv", path="/usr/bin:/bin") if setpriv == FIND else setpriv
        self.hide = [Path(p) for p in hide]
        self.pids = pids
        self.memory = memory
        self.as_root = os.geteuid() == 0 if as_root is None else as_root

    def check(self) -> None:
        if self.problem:
            raise SandboxUnavailable(self.problem)
        if self.binary is None:
            raise SandboxUnavailable("the bubblewrap sandbox is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        try:
            build_filter()
        except UnsupportedArch as e:
            raise SandboxUnavailable(f"the sandbox cannot be made safe here: {e}")
        if self.as_root and (self.setpriv is None or not self.setpriv.startswith(("/usr/", "/bin/", "/sbin/"))):
            raise SandboxUnavailable(
                "the gateway runs as root, and the sandbox drops to an unprivileged uid with setpriv "
                "(util-linux, in /usr or /bin), which is not installed: refusing to run sandboxed commands as root"
            )

    def owner(self) -> tuple[int, int] | None:
        return (SANDBOX_UID, SANDBOX_GID) if self.as_root else None

    def _file_system(self) -> list[str]:
        shared: list[str] = []
        cmd: list[str] = []
        if self.allow_file_system is True:
            for name in sorted(os.listdir("/")):
                if name in NEVER_SHARED:
                    continue
                path = f"/{name}"
                if os.path.islink(path):
                    cmd += ["--symlink", os.readlink(path), path]
                elif os.path.isdir(path) or os.path.isfile(path):
                    cmd += ["--ro-bind", path, path]
                    shared.append(path)
        else:
            extras = self.allow_file_system if isinstance(self.allow_file_system, list) else []
            present = [p for p in (*SYSTEM_PATHS, *extras) if os.path.exists(p)]
            # bubblewrap would make the parents of a bound file 0700 (unreadable for the sandbox's uid)
            parents = sorted({str(a) for p in present for a in Path(p).parents if str(a) != "/"}, key=len)
            for parent in parents:
                cmd += ["--perms", "0755", "--dir", parent]
            for path in present:
                cmd += ["--ro-bind", path, path]
                shared.append(path)
        for hidden in self.hide:  # the gateway's state and config: never visible inside
            if not _under(hidden, shared) or not os.path.lexists(hidden):
                continue
            if stat.S_ISDIR(os.lstat(hidden).st_mode):
                cmd += ["--tmpfs", str(hidden)]
            else:
                cmd += ["--ro-bind", "/dev/null", str(hidden)]
        return cmd

    def prepare(self, argv: list[str], workspace: Path, cwd: str = ".") -> Launch:
        self.check()
        assert self.binary is not None
        owner = self.owner()
        if owner is not None:
            adopt(workspace, owner)
        if self.as_root:
            # No user namespace: bwrap mounts as root, then setpriv drops to a plain uid.
            cmd = [self.binary, "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            cmd += [] if self.allow_network else ["--unshare-net"]
            cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        else:
            cmd = [self.binary, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
            cmd += ["--share-net"] if self.allow_network else []
        cmd += ["--die-with-parent", "--new-session"]
        cmd += self._file_system()
        cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_SIZE), "--tmpfs", "/dev/shm", "--size", str(TMPFS_SIZE), "--tmpfs", "/tmp"]
        cmd += ["--bind", str(workspace), "/workspace", "--chdir", inner_cwd(cwd)]
        cmd += ["--clearenv", "--setenv", "HOME", "/workspace", "--setenv", "PATH", INNER_PATH, "--setenv", "LANG", "C.UTF-8"]
        cmd += ["--seccomp", str(SECCOMP_FD), "--"]
        if self.as_root:
            cmd += [self.setpriv or "", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        uid = SANDBOX_UID if self.as_root else os.getuid()
        # umask 022: the folders bubblewrap makes for its mounts (/etc for /etc/ssl...) must be readable inside.
        limits = Limits(pids=(uid, self.pids), address_space=self.memory, file_size=FILE_SIZE_LIMIT, umask=0o022)
        return Launch(cmd + argv, str(workspace), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, limits, {SECCOMP_FD: _seccomp_fd()})


@implementer(ISandbox)
class Docker:
    def __init__(
        self,
        image: str = "debian:bookworm-slim",
        allow_network: bool = False,
        binary: str | None = FIND,
        *,
        pids: int = PIDS_LIMIT,
        memory: int = MEMORY_LIMIT,
        as_root: bool | None = None,
        problem: str | None = None,
    ) -> None:
        self.problem = problem
        self.image = image
        self.allow_network = allow_network
        self.binary = shutil.which("docker") if binary == FIND else binary
        self.pids = pids
        self.memory = memory
        self.as_root = os.geteuid() == 0 if as_root is None else as_root

    def check(self) -> None:
        if self.problem:
            raise SandboxUnavailable(self.problem)
        if self.binary is None:
            raise SandboxUnavailable("the docker sandbox needs the docker CLI and a running engine")

    def owner(self) -> tuple[int, int] | None:
        return (SANDBOX_UID, SANDBOX_GID) if self.as_root else None

    def prepare(self, argv: list[str], workspace: Path, cwd: str = ".") -> Launch:
        self.check()
        assert self.binary is not None
        owner = self.owner()
        if owner is not None:
            adopt(workspace, owner)
        user = owner or (os.getuid(), os.getgid())
        name = f"openclaw-sbx-{uuid.uuid4().hex[:12]}"
        cmd = [self.binary, "run", "--rm", "-i", "--name", name, "--network", "bridge" if self.allow_network else "none"]
        cmd += ["--user", f"{user[0]}:{user[1]}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", str(self.pids), "--memory", str(self.memory)]
        cmd += ["--read-only", "--tmpfs", f"/tmp:size={TMPFS_SIZE}", "-v", f"{workspace}:/workspace", "-w", inner_cwd(cwd), "-e", "HOME=/workspace", self.image]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or k.startswith("DOCKER_")}
        return Launch(cmd + argv, str(workspace), env, cleanup=[self.binary, "rm", "-f", name])


def sandbox_from_settings(settings: SandboxSettings, hide: Iterable[Path] = ()) -> ISandbox:
    """The sandbox C{gateway.sandbox} describes (L{openclaw.config.settings.SandboxSettings})."""
    files = list(settings.allow_file_system) if isinstance(settings.allow_file_system, tuple) else settings.allow_file_system
    block = {"backend": settings.backend, "allowNetwork": settings.allow_network, "allowFileSystem": files, "image": settings.image, "pidsLimit": settings.pids_limit, "memory": settings.memory}
    return sandbox_from_config({k: v for k, v in block.items() if v is not None}, hide)


def sandbox_from_config(sandbox: dict[str, Any], hide: Iterable[Path] = ()) -> ISandbox:
    backend = sandbox.get("backend", "bubblewrap")
    allow_network = bool(sandbox.get("allowNetwork", False))
    problem = None
    try:
        pids, memory = sandbox_limits(sandbox)
    except ValueError as e:
        pids, memory, problem = PIDS_LIMIT, MEMORY_LIMIT, str(e)
    if backend == "docker":
        return Docker(sandbox.get("image") or "debian:bookworm-slim", allow_network, pids=pids, memory=memory, problem=problem)
    return Bubblewrap(allow_network, sandbox.get("allowFileSystem", False), hide=hide, pids=pids, memory=memory, problem=problem)
