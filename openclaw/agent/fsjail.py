# -*- test-case-name: tests.test_tool_security -*-
"""
File access for the C{read}, C{write} and C{edit} tools (blocking: run it in
a thread).

A confined session's paths are opened from a held descriptor of its
workspace, one component at a time with C{O_NOFOLLOW} (C{openat}-style), so a
process that swaps a folder for a symbolic link between our check and our
use gets an error, never a file outside. What was opened is checked (a
regular file, the inode that was looked at), never a path name. Reads are
non-blocking opens (a FIFO cannot hang us) and bounded; writes go to a temp
file in the same held folder, then C{rename}. Error messages name the path as
the caller gave it, never a host path.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from openclaw.store import TEMP_MARK

READ_CAP = 256 * 1024  # bytes of text one read returns
SCAN_CAP = 64 * 1024 * 1024  # bytes we read through to reach an offset
EDIT_CAP = 8 * 1024 * 1024
LIST_CAP = 500
CHUNK = 64 * 1024
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class JailError(Exception):
    """A path that cannot be used; the message is safe to show the model."""


def _explain(e: OSError, raw: str, doing: str) -> JailError:
    if e.errno == errno.ENOENT:
        return JailError(f"no such file or folder: {raw}")
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        return JailError(f"cannot {doing} {raw}: the path goes through a symbolic link or something that is not a folder")
    if e.errno == errno.EISDIR:
        return JailError(f"cannot {doing} {raw}: it is a folder")
    return JailError(f"cannot {doing} {raw}: {e.strerror}")


class Place:
    """An open folder and a name in it (C{name == ""}: the folder itself)."""

    def __init__(self, folder: int, name: str, raw: str, confined: bool) -> None:
        self.folder = folder
        self.name = name
        self.raw = raw
        self.confined = confined

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.folder)


class Jail:
    """
    The files one session's tools may use: everything under C{root} when
    C{confined} (no symbolic links followed, no way out), anything the
    gateway can reach otherwise (relative paths start at C{root}).
    """

    def __init__(self, root: Path, confined: bool, owner: tuple[int, int] | None = None) -> None:
        self.root = Path(root)
        self.confined = confined
        self.owner = owner  # who created files and folders belong to

    # -- finding

    def _parts(self, raw: object) -> list[str]:
        if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
            raise JailError("path is required")
        path = raw
        if path.startswith("/"):
            for prefix in (str(self.root), "/workspace"):
                if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                    path = path[len(prefix) :]
                    break
            else:
                raise JailError(f"path is outside the workspace: {raw}")
        parts: list[str] = []
        for part in path.split("/"):
            if part == "..":  # lexically: no link is ever followed here, so a/.. is the folder itself
                if not parts:
                    raise JailError(f"path is outside the workspace: {raw}")
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        return parts

    def locate(self, raw: object, create: bool = False) -> Place:
        """The folder holding C{raw}, opened; with C{create}, missing folders are made."""
        if not self.confined:
            return self._locate_host(raw, create)
        parts = self._parts(raw)
        text = str(raw)
        folder = os.open(self.root, _DIR | os.O_NOFOLLOW)
        try:
            for part in parts[:-1]:
                inner = self._enter(folder, part, text, create)
                os.close(folder)
                folder = inner
        except BaseException:
            os.close(folder)
            raise
        return Place(folder, parts[-1] if parts else "", text, True)

    def _enter(self, folder: int, part: str, raw: str, create: bool) -> int:
        try:
            return os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            if not create:
                raise JailError(f"no such file or folder: {raw}")
        except OSError as e:
            raise _explain(e, raw, "use")
        try:
            os.mkdir(part, 0o755, dir_fd=folder)
            if self.owner is not None:
                os.chown(part, *self.owner, dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            pass  # made meanwhile; the open below checks what it is
        except OSError as e:
            raise _explain(e, raw, "create a folder for")
        try:
            return os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=folder)
        except OSError as e:
            raise _explain(e, raw, "use")

    def _locate_host(self, raw: object, create: bool) -> Place:
        if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
            raise JailError("path is required")
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.root / path
        path = Path(os.path.normpath(path))
        parent, name = (path.parent, path.name) if path != path.parent else (path, "")
        try:
            if create:
                parent.mkdir(parents=True, exist_ok=True)
            return Place(os.open(parent, _DIR), name, raw, False)
        except OSError as e:
            raise _explain(e, raw, "use")

    # -- reading

    def _open_file(self, place: Place) -> tuple[int, os.stat_result]:
        """A regular file, opened without blocking, that is the inode we looked at."""
        follow = not place.confined
        try:
            seen = os.stat(place.name, dir_fd=place.folder, follow_symlinks=follow)
        except OSError as e:
            raise _explain(e, place.raw, "read")
        if stat.S_ISLNK(seen.st_mode):
            raise JailError(f"cannot read {place.raw}: it is a symbolic link")
        if not stat.S_ISREG(seen.st_mode):
            raise JailError(f"cannot read {place.raw}: not a regular file ({_kind(seen.st_mode)})")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = os.open(place.name, flags, dir_fd=place.folder)
        except OSError as e:
            raise _explain(e, place.raw, "read")
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            os.close(fd)
            raise JailError(f"cannot read {place.raw}: it changed while it was being opened")
        return fd, opened

    def read(self, raw: object, offset: int = 1, limit: int = 2000) -> str:
        """Lines C{offset..offset+limit-1} (1-based) of a text file, or a folder's entries."""
        with self.locate(raw) as place:
            if place.name == "" or self._is_folder(place):
                return self._list(place)
            fd, _ = self._open_file(place)
            try:
                return _read_lines(fd, offset, limit, place.raw)
            finally:
                os.close(fd)

    def _is_folder(self, place: Place) -> bool:
        try:
            st = os.stat(place.name, dir_fd=place.folder, follow_symlinks=not place.confined)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def _list(self, place: Place) -> str:
        try:
            fd = os.open(place.name or ".", _DIR | (os.O_NOFOLLOW if place.confined else 0), dir_fd=place.folder)
        except OSError as e:
            raise _explain(e, place.raw, "list")
        try:
            with os.scandir(fd) as entries:
                names = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries)
        finally:
            os.close(fd)
        more = f"\n[... {len(names) - LIST_CAP} more entries]" if len(names) > LIST_CAP else ""
        return "\n".join(names[:LIST_CAP]) + more

    def read_text(self, raw: object) -> tuple[Place, str]:
        """A whole (bounded) UTF-8 file for editing, and its open folder (the caller closes it)."""
        place = self.locate(raw)
        try:
            fd, st = self._open_file(place)
            try:
                if st.st_size > EDIT_CAP:
                    raise JailError(f"cannot edit {place.raw}: it is over {EDIT_CAP // 1024**2} MiB")
                data = _read_upto(fd, EDIT_CAP + 1)
            finally:
                os.close(fd)
            if len(data) > EDIT_CAP:
                raise JailError(f"cannot edit {place.raw}: it is over {EDIT_CAP // 1024**2} MiB")
            try:
                return place, data.decode("utf-8")
            except UnicodeDecodeError:
                raise JailError(f"cannot edit {place.raw}: it is not UTF-8 text")
        except BaseException:
            os.close(place.folder)
            raise

    # -- writing

    def write(self, raw: object, data: bytes) -> None:
        with self.locate(raw, create=True) as place:
            self.replace(place, data)

    def replace(self, place: Place, data: bytes, mode: int = 0o644) -> None:
        """Write C{data} to a temp file in the held folder, then rename it over the name."""
        if place.name in ("", ".", ".."):
            raise JailError(f"cannot write {place.raw}: it names a folder, not a file")
        try:
            current = os.stat(place.name, dir_fd=place.folder, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        except OSError as e:
            raise _explain(e, place.raw, "write")
        if current is not None and stat.S_ISDIR(current.st_mode):
            raise JailError(f"cannot write {place.raw}: it is a folder")
        temp = f".{place.name[:40]}.{TEMP_MARK}{secrets.token_hex(4)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=place.folder)
        except OSError as e:
            raise _explain(e, place.raw, "write")
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.owner is not None:
                    os.fchown(fd, *self.owner)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, place.name, src_dir_fd=place.folder, dst_dir_fd=place.folder)
        except OSError as e:
            try:
                os.unlink(temp, dir_fd=place.folder)
            except OSError:
                pass
            raise _explain(e, place.raw, "write")
        try:
            os.fsync(place.folder)
        except OSError:
            pass  # some file systems cannot sync a folder; the rename stands


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a file"


def _read_upto(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, min(CHUNK, size))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_lines(fd: int, offset: int, limit: int, raw: str) -> str:
    """Skip C{offset-1} lines (reading at most SCAN_CAP), then keep C{limit} lines or READ_CAP bytes."""
    to_skip = offset - 1
    scanned = 0
    pending = b""
    while to_skip:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return ""
        scanned += len(chunk)
        while to_skip and chunk:
            cut = chunk.find(b"\n")
            if cut < 0:
                chunk = b""
                break
            chunk = chunk[cut + 1 :]
            to_skip -= 1
        pending = chunk
        if to_skip and scanned >= SCAN_CAP:
            raise JailError(f"cannot read {raw} at line {offset}: that is past the first {SCAN_CAP // 1024**2} MiB")
    kept = bytearray(pending)
    cut_short = at_end = False
    while kept.count(b"\n") < limit and len(kept) <= READ_CAP:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            at_end = True
            break
        kept.extend(chunk)
    lines = bytes(kept).split(b"\n")
    if at_end and len(lines) > 1 and lines[-1] == b"":
        lines.pop()  # the file's last newline ends a line; it does not start one
    text = b"\n".join(lines[:limit])
    if len(text) > READ_CAP:
        text, cut_short = text[:READ_CAP], True
    out = text.decode("utf-8", "replace")
    if cut_short:
        out += f"\n[... truncated at {READ_CAP // 1024} KiB; read on with offset and limit]"
    return out
