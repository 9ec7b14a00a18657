# -*- test-case-name: tests.test_store -*-
"""
Crash-safe state files and the state-directory lock.

A write is: a temp file beside the target (created 0600 with C{O_EXCL}),
write, fsync, rename over the target, fsync the folder. A crash at any point
leaves either the old file or the new one, and maybe a temp file that
L{clean_stray_temps} removes at the next start. Folders are created 0700.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

FILE_MODE = 0o600
DIR_MODE = 0o700
TEMP_MARK = ".tmp-"
LOCK_NAME = "gateway.lock"


class StateLocked(Exception):
    """Another gateway holds the state directory."""


def ensure_dir(path: Path) -> Path:
    """Create C{path} and missing parents as 0700 (whatever the umask)."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(p, DIR_MODE)  # mkdir's mode is filtered by the umask
    return Path(path)


def loose_mode(path: Path) -> int | None:
    """The permission bits of C{path} if its group or others have any access, else None."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace C{target} with C{data} so that a crash leaves old or new, never half."""
    target = Path(target)
    ensure_dir(target.parent)
    tmp = temp_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(target.parent)


def write_json(target: Path, value: Any) -> None:
    atomic_write(target, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(target: Path, default: Any = None) -> Any:
    """Read a JSON state file; a missing one gives C{default}."""
    try:
        with open(target, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _walk_temps(root: Path, depth: int) -> Iterator[Path]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir() and depth > 0:
            yield from _walk_temps(Path(entry.path), depth - 1)
        elif entry.is_file() and entry.name.startswith(".") and TEMP_MARK in entry.name:
            yield Path(entry.path)


def clean_stray_temps(root: Path, max_depth: int = 6) -> list[Path]:
    """Remove temp files a crashed writer left behind; return what was removed."""
    removed = []
    for path in _walk_temps(Path(root), max_depth):
        _unlink_quietly(path)
        removed.append(path)
    return removed


class StateLock:
    """
    An exclusive C{flock} on C{<state dir>/gateway.lock}.

    The kernel drops the lock when the process dies, so a crash never
    leaves a stale lock behind. The file records the holder's pid.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        ensure_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.holder()
            who = f" (pid {holder})" if holder else ""
            raise StateLocked(
                f"another gateway is already running on state dir {self.path.parent}{who}; "
                "stop it first, or use --profile NAME for a second gateway"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
