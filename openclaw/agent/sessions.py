# -*- test-case-name: tests.test_sessions -*-
"""
Sessions: keys (spec §10), the index C{sessions.json}, and JSONL transcripts
C{<sessionId>.jsonl} in the v3 layout (a header line, then entries with
C{id}/C{parentId}).

The transcripts are the truth: every append is fsynced; the index is derived
and rebuilt from the transcript headers when it is missing, empty or broken,
so no session is lost. A torn last line (a crash mid-append) is dropped when
reading and cut off before the next append.

With a L{Syncer} (the gateway's runtime has one) the reactor thread never
waits for the disk: an append is written at once (one C{write}, so the line
is in the page cache and survives the process being killed), and its fsync
joins the next group commit in a small thread pool. L{SessionStore.flushed}
fires when what was written so far is on disk; the runtime acknowledges a
message, and reports a reply final, only then, so what a client was told is
stored survives a power cut too. The index's C{updatedAt} bumps are written at
most once a second; structural changes (a new session, a patch, a reset, a
deletion) as soon as possible, never overtaken by an older snapshot.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
from twisted.internet.defer import Deferred, DeferredList, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from openclaw.config.settings import SessionPolicy
from openclaw.interfaces import NoWatch, SessionWatch
from openclaw.protocol.errors import InvalidInput
from openclaw.store import FILE_MODE, atomic_write, ensure_dir, read_json

log = Logger(namespace="openclaw.sessions")

MAX_KEY_LENGTH = 512
MAX_TRANSCRIPT_READ = 64 * 1024 * 1024
INDEX_DELAY = 1.0  # seconds: updatedAt bumps reach sessions.json at most this late
SYNC_THREADS = 4  # fsyncs of different files in one commit run side by side
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # fullmatch: "$" would let a "\n" through
AGENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # an agent id names a folder


class SessionError(InvalidInput):
    """A session key, session id or agent id that cannot be used."""


def _shown(value: object, limit: int = 80) -> str:
    """A client's value in an error message: quoted, and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical_key(key: str, agent_id: str = "main", main_key: str = "main") -> str:
    """C{main} and bare keys get the C{agent:<id>:} prefix; C{agent:...} keys stay."""
    if not isinstance(key, str) or not key.strip():
        raise SessionError("sessionKey is required")
    if not isinstance(agent_id, str) or not AGENT_ID.fullmatch(agent_id):
        raise SessionError(f"invalid agent id: {_shown(agent_id)}")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or any(ord(c) < 32 for c in key):
        raise SessionError("sessionKey is too long or has control characters")
    if key == "main":
        return f"agent:{agent_id}:{main_key}"
    if key.startswith("agent:"):
        parts = key.split(":", 2)
        if len(parts) < 3 or not AGENT_ID.fullmatch(parts[1]) or not parts[2]:
            raise SessionError(f"invalid session key: {_shown(key)}")
        return key
    return f"agent:{agent_id}:{key}"


def agent_of(key: str) -> str:
    return key.split(":", 2)[1]


def check_session_id(session_id: str) -> str:
    """Session ids become file names: only C{[A-Za-z0-9_-]}."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise SessionError(f"invalid session id: {_shown(session_id)}")
    return session_id


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def kind_of(key: str) -> str:
    rest = key.split(":", 2)[2] if key.startswith("agent:") else key
    if ":group:" in f":{rest}" or rest.startswith("group:"):
        return "group"
    if rest == "global":
        return "global"
    return "direct"



def _fsync_path(path: Path) -> None:
    """fsync a file (or folder) by name: any descriptor flushes the inode's dirty pages."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # deleted (or renamed away) since it was written: nothing left to make durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Commit:
    """One group commit: who waits for it, and how it ended (None: not yet)."""

    def __init__(self) -> None:
        self.waiters: list[Deferred[None]] = []
        self.outcome: Failure | bool | None = None

    def wait(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.outcome is None:
            self.waiters.append(d)
        elif isinstance(self.outcome, Failure):
            d.errback(self.outcome)
        else:
            d.callback(None)
        return d

    def end(self, failure: Failure | None) -> None:
        self.outcome = failure if failure is not None else True
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            if failure is not None:
                d.errback(failure)
            else:
                d.callback(None)


class Syncer:
    """
    Group commit for session files, off the reactor thread.

    Callers write on their own thread; C{fsync_later(path)} and
    C{replace_later(path, render)} queue the durable part, and everything
    queued in one reactor turn goes to disk in one commit: the fsyncs of
    different files side by side in a small thread pool. Commits overlap (a
    write never waits for an earlier commit to end before its own starts).
    C{barrier()} fires once everything queued so far is on disk.

    Replacements (the index) are rendered on the reactor thread when their
    commit starts, numbered, and written with L{openclaw.store.atomic_write};
    C{replace_now} writes on the caller's thread. A per-file lock and the
    numbers make sure an older snapshot never lands over a newer one.
    """

    def __init__(self, reactor: Any, threads: int = SYNC_THREADS) -> None:
        self.reactor = reactor
        self._pool = ThreadPool(0, threads, name="openclaw-sync")
        self._started = False
        self._trigger: Any = None
        self._fsync: set[Path] = set()
        self._replace: dict[Path, Callable[[], bytes]] = {}
        self._soon: dict[Path, tuple[IDelayedCall, Callable[[], bytes]]] = {}
        self._next: _Commit | None = None  # queued, starts at the end of this reactor turn
        self._scheduled: IDelayedCall | None = None
        self._running: set[_Commit] = set()
        self._numbers = itertools.count(1)
        self._locks: dict[Path, threading.Lock] = {}
        self._landed: dict[Path, int] = {}  # path → number of the snapshot on disk
        self.commits = 0

    # -- queueing (reactor thread)

    def fsync_later(self, path: Path) -> None:
        self._fsync.add(path)
        self._schedule()

    def replace_later(self, path: Path, render: Callable[[], bytes]) -> None:
        """Write C{render()} over C{path} crash-safely in the next commit."""
        self._cancel_soon(path)
        self._replace[path] = render
        self._schedule()

    def replace_soon(self, path: Path, render: Callable[[], bytes], delay: float) -> None:
        """As L{replace_later}, but at most once per C{delay} seconds (and not waited for by C{barrier})."""
        if path in self._replace or path in self._soon:
            return
        self._soon[path] = (self.reactor.callLater(delay, self._due, path), render)

    def _due(self, path: Path) -> None:
        _, render = self._soon.pop(path)
        self.replace_later(path, render)

    def _cancel_soon(self, path: Path) -> None:
        soon = self._soon.pop(path, None)
        if soon is not None and soon[0].active():
            soon[0].cancel()

    def replace_now(self, path: Path, data: bytes) -> None:
        """Write C{data} over C{path} on this thread, now (rare, structural changes)."""
        self._cancel_soon(path)
        self._replace.pop(path, None)
        self._write(path, data, next(self._numbers))

    def barrier(self) -> Deferred[None]:
        """Fires when everything queued so far is on disk (errbacks if a commit failed)."""
        commits = [*self._running, *([self._next] if self._next is not None else [])]
        if not commits:
            return succeed(None)
        if len(commits) == 1:
            return commits[0].wait()
        d: Deferred[Any] = gatherResults([c.wait() for c in commits], consumeErrors=True)
        d.addErrback(lambda f: f.value.subFailure if isinstance(f.value, FirstError) else f)
        return d.addCallback(lambda _: None)

    # -- commits

    def _schedule(self) -> None:
        if self._next is None:
            self._next = _Commit()
            # at the end of this reactor turn: every write of the turn joins one commit
            self._scheduled = self.reactor.callLater(0, self._commit)

    def _commit(self) -> None:
        commit, self._next, self._scheduled = self._next, None, None
        assert commit is not None
        paths, self._fsync = self._fsync, set()
        renders, self._replace = self._replace, {}
        self._start_pool()
        jobs: list[Deferred[Any]] = [deferToThreadPool(self.reactor, self._pool, _fsync_path, p) for p in paths]
        for path, render in renders.items():
            jobs.append(deferToThreadPool(self.reactor, self._pool, self._write, path, render(), next(self._numbers)))
        self.commits += 1
        self._running.add(commit)
        DeferredList(jobs, consumeErrors=True).addCallback(self._committed, commit)

    def _committed(self, results: list[tuple[bool, Any]], commit: _Commit) -> None:
        self._running.discard(commit)
        failures = [value for ok, value in results if not ok]
        for failure in failures:
            log.failure("could not make session files durable", failure)
        commit.end(failures[0] if failures else None)

    def _write(self, path: Path, data: bytes, number: int) -> None:
        lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            if number <= self._landed.get(path, 0):
                return  # a newer snapshot is already there
            atomic_write(path, data)
            self._landed[path] = number

    def _start_pool(self) -> None:
        if not self._started:
            self._started = True
            self._pool.start()
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        """Finish: wait for the commits in flight, then do what is queued on this thread."""
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        if self._started:
            self._started = False
            self._pool.stop()  # joins the threads: the running commits' files are on disk
            if self._trigger is not None:
                try:
                    self.reactor.removeSystemEventTrigger(self._trigger)
                except (ValueError, KeyError):
                    pass  # it is the trigger being run
                self._trigger = None
        for path, (call, render) in list(self._soon.items()):
            if call.active():
                call.cancel()
            self._replace.setdefault(path, render)
        self._soon.clear()
        paths, self._fsync = self._fsync, set()
        renders, self._replace = self._replace, {}
        failure = None
        try:
            for path in paths:
                _fsync_path(path)
            for path, render in renders.items():
                self._write(path, render(), next(self._numbers))
        except OSError:
            failure = Failure()
            log.failure("could not make session files durable at stop", failure)
        commits = [*self._running, *([self._next] if self._next is not None else [])]
        self._running, self._next = set(), None
        for commit in commits:
            commit.end(failure)


def sync_capable(reactor: Any) -> bool:
    """Whether C{reactor} can run the L{Syncer}'s threads (a test's Clock cannot: then writes fsync inline)."""
    return callable(getattr(reactor, "callFromThread", None)) and callable(getattr(reactor, "addSystemEventTrigger", None))


class Transcript:
    """One JSONL file: append entries, read them back (tolerating a torn tail)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self, header: dict[str, Any], sync: bool = True) -> None:
        """The file with its header line; C{sync=False}: the caller makes it durable (file and folder)."""
        ensure_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.write(fd, (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8"))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, entry: dict[str, Any], sync: bool = True) -> None:
        """One line in one C{write} (whole or not at all if the process dies); C{sync=False}: no fsync here."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            self._cut_torn_tail(fd)
            os.write(fd, line)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return
        # A crash left half a line: drop it so the next entry starts clean.
        chunk = min(size, 1 << 20)
        os.lseek(fd, size - chunk, os.SEEK_SET)
        tail = os.read(fd, chunk)
        cut = tail.rfind(b"\n")
        keep = size - chunk + cut + 1 if cut >= 0 else 0
        os.ftruncate(fd, keep)
        log.warn("dropped a torn last line ({bytes} bytes)", bytes=size - keep)

    def lines(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_TRANSCRIPT_READ)
        except FileNotFoundError:
            return
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                continue  # a torn last line or damage: skip it, keep the rest
            if isinstance(value, dict):
                yield value

    def header(self) -> dict[str, Any] | None:
        for entry in self.lines():
            return entry if entry.get("type") == "session" else None
        return None


@attrs.frozen
class MessageRecord:
    """A message of the conversation and its transcript entry (none for a compaction summary)."""

    message: dict[str, Any]
    entry_id: str | None = None
    seq: int | None = None
    run_id: str | None = None


class SessionStore:
    """The sessions of one agent: C{agents/<agentId>/sessions/}."""

    def __init__(self, state_dir: Path, agent_id: str = "main", cwd: str | None = None, syncer: Syncer | None = None, watch: SessionWatch | None = None) -> None:
        if not isinstance(agent_id, str) or not AGENT_ID.fullmatch(agent_id):
            raise SessionError(f"invalid agent id: {_shown(agent_id)}")
        self.agent_id = agent_id
        self.syncer = syncer  # None: every write is fsynced before it returns
        self.folder = Path(state_dir) / "agents" / agent_id / "sessions"
        self.index_path = self.folder / "sessions.json"
        self.cwd = cwd or str(Path(state_dir) / "workspace")
        self.index: dict[str, dict[str, Any]] = self._load_index()
        self._last_entry: dict[str, str | None] = {}  # sessionId -> id of its last entry
        self._messages: dict[str, int] = {}  # sessionId -> how many message entries it has
        self.watch: SessionWatch = watch if watch is not None else NoWatch()

    # -- index

    def _load_index(self) -> dict[str, dict[str, Any]]:
        try:
            stored = read_json(self.index_path, None)
        except ValueError:
            stored = None
            log.warn("sessions index {path} is damaged; rebuilding it from the transcripts", path=str(self.index_path))
        if isinstance(stored, dict) and stored:
            return {k: v for k, v in stored.items() if isinstance(v, dict) and self._valid_entry(v)}
        rebuilt = self.rebuild()
        if rebuilt:
            log.info("rebuilt sessions index with {count} sessions", count=len(rebuilt))
        return rebuilt

    def _valid_entry(self, entry: dict[str, Any]) -> bool:
        try:
            check_session_id(entry.get("sessionId", ""))
            return True
        except SessionError:
            return False

    def rebuild(self) -> dict[str, dict[str, Any]]:
        """The index from the transcripts: the newest transcript of each key wins."""
        index: dict[str, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return index
        for path in sorted(self.folder.glob("*.jsonl")):
            if not _SESSION_ID.fullmatch(path.stem):
                continue
            header = Transcript(path).header()
            key = (header or {}).get("sessionKey")
            if not isinstance(key, str):
                continue
            updated = int(path.stat().st_mtime * 1000)
            if key not in index or updated >= index[key]["updatedAt"]:
                index[key] = {"sessionId": path.stem, "updatedAt": updated, "sessionFile": str(path)}
        if index:
            self._save(index)
        return index

    def _index_bytes(self, index: dict[str, dict[str, Any]] | None = None) -> bytes:
        return (json.dumps(self.index if index is None else index, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def _save(self, index: dict[str, dict[str, Any]] | None = None) -> None:
        """Write the index now (a patch, a reset, a deletion: the caller answers after it)."""
        if self.syncer is None:
            atomic_write(self.index_path, self._index_bytes(index))
        else:
            self.syncer.replace_now(self.index_path, self._index_bytes(index))

    def _save_later(self) -> None:
        """Write the index in the next commit (L{flushed} waits for it)."""
        if self.syncer is None:
            self._save()
        else:
            self.syncer.replace_later(self.index_path, self._index_bytes)

    def _touched(self) -> None:
        """Only C{updatedAt} changed: written within L{INDEX_DELAY} (not waited for)."""
        if self.syncer is None:
            self._save()
        else:
            self.syncer.replace_soon(self.index_path, self._index_bytes, INDEX_DELAY)

    def flushed(self) -> Deferred[None]:
        """Fires once every transcript line and index change written so far is on disk."""
        return succeed(None) if self.syncer is None else self.syncer.barrier()

    # -- sessions

    def transcript(self, session_id: str) -> Transcript:
        return Transcript(self.folder / f"{check_session_id(session_id)}.jsonl")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.index.get(key)

    def resolve(self, key: str) -> dict[str, Any]:
        """
        The session entry for a canonical key, starting a new session if none
        exists (durable at the next commit: a message's acknowledgement waits
        for L{flushed} anyway).
        """
        entry = self.index.get(key)
        if entry is not None and self.transcript(entry["sessionId"]).path.exists():
            return entry
        return self._start(key, entry, now=False)

    def _start(self, key: str, previous: dict[str, Any] | None, now: bool = True) -> dict[str, Any]:
        session_id = str(uuid.uuid4())
        transcript = self.transcript(session_id)
        header: dict[str, Any] = {"type": "session", "id": session_id, "cwd": self.cwd, "timestamp": now_iso(), "sessionKey": key}
        if previous is not None:
            header["parentSession"] = previous.get("sessionId")
        lazy = self.syncer is not None and not now
        transcript.create(header, sync=not lazy)
        kept = {k: v for k, v in (previous or {}).items() if k in ("label", "thinkingLevel", "verboseLevel", "modelOverride", "providerOverride", "displayName")}
        entry = {**kept, "sessionId": session_id, "updatedAt": int(time.time() * 1000), "sessionFile": str(transcript.path), "chatType": kind_of(key)}
        self.index[key] = entry
        if lazy:
            assert self.syncer is not None
            self.syncer.fsync_later(transcript.path)
            self.syncer.fsync_later(self.folder)  # the new name in its folder
            self._save_later()
        else:
            self._save()
        self.watch.changed(key, "create" if previous is None else "reset")
        return entry

    def reset(self, key: str, now: bool = True) -> dict[str, Any]:
        """
        A new session id under the same key (/new, /reset, sessions.reset); on
        disk when it returns. C{now=False} (a run's own reset, whose message
        is appended next and waited for): durable at the next commit, like
        L{resolve}.
        """
        return self._start(key, self.index.get(key), now=now)

    def delete(self, key: str, delete_transcript: bool = False) -> bool:
        entry = self.index.pop(key, None)
        if entry is None:
            return False
        self._save()
        self.watch.changed(key, "delete")
        if delete_transcript:
            try:
                os.unlink(self.transcript(entry["sessionId"]).path)
            except FileNotFoundError:
                pass
        else:
            # Keep the transcript but stop a rebuild from resurrecting the key.
            path = self.transcript(entry["sessionId"]).path
            if path.exists():
                os.replace(path, path.with_name(f"{path.stem}.deleted-{secrets.token_hex(3)}.jsonl.bak"))
        return True

    def patch(self, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        entry = self.resolve(key)
        for name, value in fields.items():
            if value is None:
                entry.pop(name, None)
            else:
                entry[name] = value
        self._save()
        self.watch.changed(key, "patch")
        return entry

    # -- transcript entries

    def entries(self, key: str) -> list[dict[str, Any]]:
        entry = self.index.get(key)
        if entry is None:
            return []
        return [e for e in self.transcript(entry["sessionId"]).lines() if e.get("type") != "session"]

    def append(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Append an entry (C{message}, C{custom_message}, C{compaction}, ...); returns it with its id."""
        session = self.resolve(key)
        session_id = session["sessionId"]
        if session_id not in self._last_entry:
            previous = self.entries(key)
            self._last_entry[session_id] = previous[-1].get("id") if previous else None
            self._messages[session_id] = sum(1 for e in previous if e.get("type") == "message")
        record = {"id": secrets.token_hex(4), "parentId": self._last_entry[session_id], "timestamp": now_iso(), **entry}
        transcript = self.transcript(session_id)
        transcript.append(record, sync=self.syncer is None)
        if self.syncer is not None:
            self.syncer.fsync_later(transcript.path)
        self._last_entry[session_id] = record["id"]
        session["updatedAt"] = int(time.time() * 1000)
        self._touched()
        if record.get("type") == "message":
            self._messages[session_id] += 1
            self.watch.appended(key, record, self._messages[session_id])
        return record

    def append_message(self, key: str, message: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Append a message; C{run_id}: the run it belongs to (its input or its output), kept on the entry."""
        return self.append(key, {"type": "message", "message": message, **({"runId": run_id} if run_id else {})})

    def message_records(self, key: str) -> list[MessageRecord]:
        """
        The conversation with where each message comes from: after a
        compaction, its summary (no entry) then the kept entries. C{seq}
        numbers the message entries of the whole transcript from 1.
        """
        kept: list[MessageRecord] = []
        seq = 0
        for entry in self.entries(key):
            if entry.get("type") == "compaction":
                first = entry.get("firstKeptEntryId")
                ids = [r.entry_id for r in kept]
                tail = kept[ids.index(first) :] if first in ids else []
                summary = {"role": "user", "content": [{"type": "text", "text": f"Summary of the earlier conversation:\n{entry.get('summary', '')}"}], "timestamp": 0}
                kept = [MessageRecord(summary), *tail]
            elif entry.get("type") == "message" and isinstance(entry.get("message"), dict):
                seq += 1
                run_id = entry.get("runId")
                kept.append(MessageRecord(entry["message"], entry.get("id"), seq, run_id if isinstance(run_id, str) else None))
        return kept

    def messages(self, key: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The conversation as model messages: after a compaction, its summary then the kept entries."""
        out = [r.message for r in self.message_records(key)]
        return out[-limit:] if limit else out

    def message_entries(self, key: str) -> list[dict[str, Any]]:
        return [e for e in self.entries(key) if e.get("type") == "message"]

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        return sorted(self.index.items(), key=lambda kv: kv[1].get("updatedAt", 0), reverse=True)


def reset_due(entry: dict[str, Any] | None, now: float, policy: SessionPolicy) -> bool:
    """
    Whether a session's next message starts a new session: daily at
    C{session.reset.atHour} (default 04:00 local time) unless the mode is
    C{"off"}, or after C{idleMinutes} without activity.
    """
    if not entry or not entry.get("updatedAt"):
        return False
    updated = entry["updatedAt"] / 1000
    if policy.idle_minutes is not None and now - updated > policy.idle_minutes * 60:
        return True
    if policy.reset_mode == "off":
        return False
    local = time.localtime(now)
    boundary = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, policy.reset_at_hour, 0, 0, 0, 0, -1))
    if boundary > now:
        boundary -= 86400
    return updated < boundary
