# -*- test-case-name: tests.test_daemon -*-
"""
A background gateway without a service manager: `openclaw gateway start`
spawns `openclaw gateway run --quiet` in a session of its own (stdin closed,
output to C{logs/gateway.out.log}), waits for its C{READY=1} on a notify
socket of its own, and records the pid in C{<state>/gateway.pid} (and how it
was started in C{gateway.daemon.json}, for `restart`). `stop` sends SIGTERM,
waits for a clean exit, and SIGKILLs after a bound.

Which gateway runs on a state dir is known without trusting files: the state
lock (an C{flock} the kernel drops with its holder) names the pid.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Mapping

import attrs

from openclaw.ops.procinfo import alive, cmdline, is_gateway
from openclaw.ops.sdnotify import parse
from openclaw.store import FILE_MODE, LOCK_NAME, TEMP_MARK, atomic_write, ensure_dir, write_json

PID_NAME = "gateway.pid"
RECORD_NAME = "gateway.daemon.json"
OUT_LOG = Path("logs") / "gateway.out.log"
OUT_LOG_MAX = 1024 * 1024  # the previous run's output is kept as .1 once it passes this
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
KILL_WAIT = 5.0


class DaemonError(Exception):
    """A start or stop that could not be done; the message says why and what to do."""


@attrs.frozen
class Started:
    pid: int
    out_log: Path
    status: str


@attrs.frozen
class Stopped:
    pid: int | None
    killed: bool = False
    seconds: float = 0.0


def lock_holder(state_dir: Path) -> int | None:
    """The pid holding the state lock (a gateway running on this state dir), or None."""
    path = Path(state_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            try:
                pid = int(os.pread(fd, 32, 0).decode().strip() or 0)
            except ValueError:
                pid = 0
            return pid or -1  # held; -1: by a pid it has not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_pidfile(state_dir: Path) -> int | None:
    try:
        return int((Path(state_dir) / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def read_record(state_dir: Path) -> dict[str, object]:
    try:
        record = json.loads((Path(state_dir) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def clear_files(state_dir: Path) -> list[Path]:
    """Remove the pidfile and the record; return what was there."""
    removed = []
    for name in (PID_NAME, RECORD_NAME):
        path = Path(state_dir) / name
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def stale_pidfile(state_dir: Path) -> int | None:
    """The pid in a pidfile whose process is gone (or is no gateway), else None."""
    pid = read_pidfile(state_dir)
    if pid is None:
        return None
    if alive(pid) and is_gateway(cmdline(pid)):
        return None
    return pid


def running_pid(state_dir: Path) -> int | None:
    """The gateway running on this state dir: the lock holder, else a live pidfile pid."""
    holder = lock_holder(state_dir)
    if holder and holder > 0:
        return holder
    pid = read_pidfile(state_dir)
    if pid is not None and alive(pid) and is_gateway(cmdline(pid)):
        return pid
    return None


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > OUT_LOG_MAX:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> list[str]:
    """The last C{lines} lines of a file (reading at most C{max_bytes})."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and text:
        text = text[1:]  # a partial first line
    return text[-lines:] if lines > 0 else []


def start(state_dir: Path, argv: list[str], env: Mapping[str, str], timeout: float = START_TIMEOUT) -> Started:
    """
    Spawn C{argv} detached and wait for its C{READY=1}.

    @raise DaemonError: already running, exited early (with its output), or not ready in time.
    """
    state_dir = Path(state_dir)
    pid = running_pid(state_dir)
    if pid is not None:
        raise DaemonError(f"the gateway is already running on {state_dir} (pid {pid}); `openclaw gateway restart` restarts it")
    clear_files(state_dir)
    ensure_dir(state_dir)
    out_log = state_dir / OUT_LOG
    ensure_dir(out_log.parent)
    _rotate(out_log)
    name = f"@openclaw-start-{os.getpid()}-{secrets.token_hex(8)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind("\0" + name[1:])
        out_fd = os.open(out_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
        try:
            child_env = {k: v for k, v in env.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
            child_env["NOTIFY_SOCKET"] = name
            proc = subprocess.Popen(
                argv,
                env=child_env,
                cwd=str(state_dir),
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=out_fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(out_fd)
        atomic_write(state_dir / PID_NAME, f"{proc.pid}\n".encode())
        write_json(state_dir / RECORD_NAME, {"pid": proc.pid, "argv": argv, "startedAt": int(time.time() * 1000), "outLog": str(out_log)})
        status = _wait_ready(listener, proc, timeout)
    finally:
        listener.close()
    if isinstance(status, int):
        clear_files(state_dir)
        output = "\n".join(f"  {line}" for line in tail(out_log, 15))
        raise DaemonError(f"the gateway exited with status {status} before it was ready; its output ({out_log}):\n{output}")
    if status is None:
        raise DaemonError(
            f"the gateway (pid {proc.pid}) is not ready after {timeout:g} s; it may still be starting. "
            f"See {out_log} and `openclaw gateway logs`, or stop it with `openclaw gateway stop`"
        )
    return Started(proc.pid, out_log, status)


def _wait_ready(listener: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> str | int | None:
    """The READY status text, the exit status if the child ended first, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([listener], [], [], min(left, 0.2))
        if readable:
            fields = parse(listener.recv(4096))
            if fields.get("READY") == "1":
                return fields.get("STATUS", "ready")
        code = proc.poll()
        if code is not None:
            return code


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT, kill_wait: float = KILL_WAIT) -> Stopped:
    """
    SIGTERM the gateway on this state dir, wait for it to exit, SIGKILL it
    after C{timeout}. Nothing running is not an error (C{pid} None).

    @raise DaemonError: the process is another user's, or outlived SIGKILL.
    """
    state_dir = Path(state_dir)
    pid = running_pid(state_dir)
    if pid is None:
        clear_files(state_dir)
        return Stopped(None)
    started = time.monotonic()
    _signal(pid, signal.SIGTERM)
    killed = False
    if not _wait_gone(pid, state_dir, timeout):
        killed = True
        _signal(pid, signal.SIGKILL)
        if not _wait_gone(pid, state_dir, kill_wait):
            raise DaemonError(f"pid {pid} is still there after SIGKILL")
    clear_files(state_dir)
    return Stopped(pid, killed, time.monotonic() - started)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise DaemonError(f"not allowed to stop pid {pid} (another user's process); stop it as that user") from None


def _wait_gone(pid: int, state_dir: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # our own child (restart in one process) must not stay a zombie
        except ChildProcessError:
            pass
        if not alive(pid) and lock_holder(state_dir) != pid:
            return True
        time.sleep(0.05)
    return not alive(pid)


def stray_temps(state_dir: Path, limit: int = 50_000) -> list[Path]:
    """Temp files of crashed writes under the state dir (as deep as the gateway cleans; at most C{limit} entries looked at)."""
    found: list[Path] = []
    seen = 0
    base = str(state_dir).count(os.sep)
    for root, dirs, files in os.walk(state_dir):
        seen += len(dirs) + len(files)
        if root.count(os.sep) - base >= 6:
            dirs[:] = []
        found += [Path(root) / f for f in files if f.startswith(".") and TEMP_MARK in f]
        if seen > limit:
            break
    return found
