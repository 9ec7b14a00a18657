# -*- test-case-name: tests.test_cron_store -*-
"""
Where cron keeps its state: C{cron/jobs.json} (C{{version: 1, jobs: [...]}},
written crash-safe) and one run log per job, C{cron/runs/<jobId>.jsonl}.

A jobs file that is not JSON is moved aside (never deleted) and the service
starts empty; a job in it that cannot be read is kept, untouched, in the file.
Run logs are appended with fsync; a torn last line (a crash mid-append) is
skipped on reading and cut off before the next append; a log past its size
bound is cut to its newest lines.

With a L{DiskPort} (the gateway passes the runtime's group commit) the
bookkeeping of a run never waits for the disk on the reactor thread: a run
log line is written at once and fsynced in the next commit, and the jobs file
after a run is rendered and replaced there. Edits (C{cron.add} and the like)
still write the jobs file before they are answered, through the same port so
that an older snapshot never lands over a newer one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from twisted.logger import Logger

from openclaw.cron.jobs import JOB_ID, CronInputError, Job, from_stored, to_stored
from openclaw.cron.ports import DiskPort
from openclaw.store import FILE_MODE, atomic_write, ensure_dir

log = Logger(namespace="openclaw.cron")

STORE_VERSION = 1
MAX_STORE_BYTES = 16 * 1024 * 1024
RUNLOG_MAX_BYTES = 2_000_000
RUNLOG_KEEP_LINES = 2000
RUNLOG_READ_MAX = 8 * 1024 * 1024
ORPHAN_LOG_AGE = 30 * 86_400  # seconds a removed job's run log is kept


class JobStore:
    """The jobs file: read once at start, rewritten whole on every change."""

    def __init__(self, path: Path, disk: DiskPort | None = None) -> None:
        self.path = Path(path)
        self.disk = disk
        self.unreadable: list[Any] = []  # raw entries we could not read: written back as they were

    def load(self) -> list[Job]:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return []
        try:
            if size > MAX_STORE_BYTES:
                raise ValueError(f"larger than {MAX_STORE_BYTES} bytes")
            with open(self.path, "rb") as f:
                document = json.loads(f.read())
            if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
                raise ValueError('expected {"version": 1, "jobs": [...]}')
        except ValueError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("cron store {path} is unreadable ({problem}); moved it to {aside} and starting with no jobs", path=str(self.path), problem=str(e), aside=str(aside))
            return []
        jobs: list[Job] = []
        seen: set[str] = set()
        for raw in document["jobs"]:
            try:
                job = from_stored(raw)
                if job.id in seen:
                    raise CronInputError(f"duplicate id {job.id}")
            except CronInputError as e:
                log.warn("cron store: keeping a job this gateway cannot read ({problem})", problem=str(e))
                self.unreadable.append(raw)
                continue
            seen.add(job.id)
            jobs.append(job)
        return jobs

    def _render(self, jobs: list[Job]) -> bytes:
        document = {"version": STORE_VERSION, "jobs": [to_stored(j) for j in jobs] + self.unreadable}
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def save(self, jobs: list[Job]) -> None:
        """Write the jobs now, crash-safe (raises OSError)."""
        if self.disk is None:
            atomic_write(self.path, self._render(jobs))
        else:
            self.disk.replace_now(self.path, self._render(jobs))

    def save_later(self, jobs: Callable[[], list[Job]]) -> None:
        """Write the jobs as they are when the next commit starts (without a port: now)."""
        if self.disk is None:
            self.save(jobs())
        else:
            self.disk.replace_later(self.path, lambda: self._render(jobs()))


class RunLog:
    """C{runs/<jobId>.jsonl}: one C{CronRunLogEntry} per line."""

    def __init__(self, folder: Path, max_bytes: int = RUNLOG_MAX_BYTES, keep_lines: int = RUNLOG_KEEP_LINES, disk: DiskPort | None = None) -> None:
        self.folder = Path(folder)
        self.disk = disk  # None: each append is fsynced before it returns
        self.max_bytes = max_bytes
        self.keep_lines = keep_lines

    def path(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"invalid job id: {job_id!r}")
        return self.folder / f"{job_id}.jsonl"

    def append(self, entry: dict[str, Any]) -> None:
        path = self.path(entry["jobId"])
        ensure_dir(self.folder)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            _cut_torn_tail(fd)
            os.write(fd, line)  # one write: whole or not at all if the process dies
            if self.disk is None:
                os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if self.disk is not None:
            self.disk.fsync_later(path)
        if size > self.max_bytes:
            self._prune(path)

    def _prune(self, path: Path) -> None:
        lines = [json.dumps(e, ensure_ascii=False) for e in self._read(path)][-self.keep_lines :]
        while lines and sum(len(x) + 1 for x in lines) > self.max_bytes:
            lines = lines[len(lines) // 10 + 1 :]
        atomic_write(path, "".join(x + "\n" for x in lines).encode("utf-8"))

    def _read(self, path: Path) -> Iterator[dict[str, Any]]:
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - RUNLOG_READ_MAX))
                data = f.read()
        except FileNotFoundError:
            return
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                continue  # a torn line: the rest is good
            if isinstance(value, dict) and value.get("action") == "finished" and isinstance(value.get("jobId"), str) and isinstance(value.get("ts"), int):
                yield value

    def entries(self, job_id: str) -> list[dict[str, Any]]:
        """All of a job's entries, oldest first."""
        return [e for e in self._read(self.path(job_id)) if e["jobId"] == job_id]

    def exists(self, job_id: str) -> bool:
        return self.path(job_id).exists()

    def all_entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return out
        for name in names:
            if name.endswith(".jsonl") and JOB_ID.match(name[:-6]):
                out.extend(self._read(self.folder / name))
        return out

    def prune_orphans(self, known: set[str], now: float) -> list[str]:
        """Remove the logs of jobs that are gone and have not run for L{ORPHAN_LOG_AGE}."""
        removed: list[str] = []
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return removed
        for name in names:
            job_id = name[:-6]
            if not name.endswith(".jsonl") or job_id in known or not JOB_ID.match(job_id):
                continue
            path = self.folder / name
            try:
                if now - os.stat(path).st_mtime > ORPHAN_LOG_AGE:
                    os.unlink(path)
                    removed.append(job_id)
            except OSError:
                continue
        return removed


def _cut_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    chunk = min(size, 1 << 20)
    os.lseek(fd, size - chunk, os.SEEK_SET)
    tail = os.read(fd, chunk)
    cut = tail.rfind(b"\n")
    keep = size - chunk + cut + 1 if cut >= 0 else 0
    os.ftruncate(fd, keep)
    log.warn("cron run log: dropped a torn last line ({bytes} bytes)", bytes=size - keep)
