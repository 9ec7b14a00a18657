# -*- test-case-name: tests.test_process -*-
"""
The reaper: a tiny supervisor between the gateway and every command it runs,
so that a command never outlives its call.

C{python -I -S reaper.py [--grace S] [--pids UID:N] [--as BYTES] [--fsize BYTES] [--umask OCTAL] [--executable PATH] -- ARGV...}

It starts a new session (so its process group is its own), becomes a child
subreaper (so every process the command leaves behind, even one that called
C{setsid} or double-forked, is re-parented to it rather than to init), and
runs C{ARGV} with the given resource limits. When the command exits, every
process still left below the reaper is killed before the reaper exits with
the command's status. On SIGTERM/SIGINT/SIGHUP (the gateway's timeout or
abort, or the gateway dying: the reaper asks for SIGTERM as its parent-death
signal) it sends SIGTERM to everything below it, and SIGKILL after the grace.

Standard library only, and run with C{-S}: it starts in milliseconds and
does not import the gateway.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WATCHED = {signal.SIGCHLD, *STOP_SIGNALS}
LIMITS = {"--as": resource.RLIMIT_AS, "--fsize": resource.RLIMIT_FSIZE}
EXIT_USAGE = 125
EXIT_CANNOT_RUN = 127


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def descendants(root: int) -> list[int]:
    """Every live process below C{root} (from /proc, parents before children)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone already
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] == b"Z":
            continue  # a zombie waits to be reaped; it holds nothing
        children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def signal_all(sig: int) -> int:
    """Send C{sig} to every process below us; return how many there were."""
    found = descendants(os.getpid())
    for pid in found:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return len(found)


def count_processes(uid: int) -> int:
    """How many processes the real uid C{uid} runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        count += int(line.split()[1]) == uid
                        break
        except (OSError, ValueError, IndexError):
            continue
    return count


class Reaper:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None

    def reap(self) -> None:
        """Collect every child that has ended; note the command's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def kill_everything(self) -> None:
        """SIGKILL until nothing is left below us (a process may fork while we look)."""
        for _ in range(1000):
            self.reap()
            if not signal_all(signal.SIGKILL):
                break
            time.sleep(0.005)
        self.reap()

    def supervise(self, grace: float) -> int:
        deadline: float | None = None
        while self.status is None:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            info = signal.sigwaitinfo(WATCHED) if timeout is None else signal.sigtimedwait(WATCHED, timeout)
            self.reap()
            if self.status is not None:
                break
            if info is not None and info.si_signo in STOP_SIGNALS:
                if deadline is None:
                    deadline = time.monotonic() + grace
                    signal_all(signal.SIGTERM)
            elif info is None and deadline is not None:
                self.kill_everything()
        self.kill_everything()  # whatever the command left running
        return self.status


@dataclasses.dataclass
class Options:
    grace: float = 2.0
    limits: dict[int, int] = dataclasses.field(default_factory=dict)
    pids: tuple[int, int] | None = None
    executable: str | None = None
    umask: int | None = None
    command: list[str] = dataclasses.field(default_factory=list)


def parse(argv: list[str]) -> Options:
    options = Options()
    i = 0
    while i < len(argv) and argv[i] != "--":
        flag, value = argv[i], argv[i + 1]
        if flag == "--grace":
            options.grace = float(value)
        elif flag == "--executable":
            options.executable = value
        elif flag == "--umask":
            options.umask = int(value, 8)
        elif flag == "--pids":
            uid, _, count = value.partition(":")
            options.pids = (int(uid), int(count))
        elif flag in LIMITS:
            options.limits[LIMITS[flag]] = int(value)
        else:
            raise ValueError(f"unknown option {flag}")
        i += 2
    options.command = argv[i + 1 :]
    if not options.command:
        raise ValueError("no command given")
    return options


def _exec(options: Options) -> None:
    """In the forked child: default signals, limits, umask, then the command."""
    command = options.command
    try:
        if options.umask is not None:
            os.umask(options.umask)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the command must not
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for limit, value in options.limits.items():
            hard = resource.getrlimit(limit)[1]
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (cap, cap))
        os.execv(options.executable or command[0], command)
    except OSError as e:
        os.write(2, f"cannot run {command[0]}: {e.strerror}\n".encode())
    os._exit(EXIT_CANNOT_RUN)


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
    except (ValueError, IndexError) as e:
        sys.stderr.write(f"reaper: {e}\n")
        return EXIT_USAGE
    parent = os.getppid()
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    if os.getppid() != parent:
        return EXIT_CANNOT_RUN  # the gateway died before we could watch it
    if options.pids is not None:
        # RLIMIT_NPROC counts every process of the uid: allow this many more.
        uid, extra = options.pids
        options.limits[resource.RLIMIT_NPROC] = count_processes(uid) + extra
    pid = os.fork()
    if pid == 0:
        _exec(options)
    status = Reaper(pid).supervise(options.grace)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # die the same way, without a core of our own
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
