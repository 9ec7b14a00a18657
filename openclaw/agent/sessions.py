# -*- test-case-name: tests.test_sessions -*-
"""
Sessions: keys (spec §10), the index C{sessions.json}, and JSONL transcripts
C{<sessionId>.jsonl} in the v3 layout (a header line, then entries with
C{id}/C{parentId}).

The transcripts are the truth: every append is fsynced; the index is derived
and rebuilt from the transcript headers when it is missing, empty or broken,
so no session is lost. A torn last line (a crash mid-append) is dropped when
reading and cut off before the next append.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import attrs
from twisted.logger import Logger

from openclaw.config.settings import SessionPolicy
from openclaw.interfaces import NoWatch, SessionWatch
from openclaw.protocol.errors import InvalidInput
from openclaw.store import FILE_MODE, ensure_dir, read_json, write_json

log = Logger(namespace="openclaw.sessions")

MAX_KEY_LENGTH = 512
MAX_TRANSCRIPT_READ = 64 * 1024 * 1024
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


class Transcript:
    """One JSONL file: append entries, read them back (tolerating a torn tail)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self, header: dict[str, Any]) -> None:
        ensure_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.write(fd, (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            self._cut_torn_tail(fd)
            os.write(fd, line)
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

    def __init__(self, state_dir: Path, agent_id: str = "main", cwd: str | None = None, watch: SessionWatch | None = None) -> None:
        if not isinstance(agent_id, str) or not AGENT_ID.fullmatch(agent_id):
            raise SessionError(f"invalid agent id: {_shown(agent_id)}")
        self.agent_id = agent_id
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
            write_json(self.index_path, index)
        return index

    def _save(self) -> None:
        write_json(self.index_path, self.index)

    # -- sessions

    def transcript(self, session_id: str) -> Transcript:
        return Transcript(self.folder / f"{check_session_id(session_id)}.jsonl")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.index.get(key)

    def resolve(self, key: str) -> dict[str, Any]:
        """The session entry for a canonical key, starting a new session if none exists."""
        entry = self.index.get(key)
        if entry is not None and self.transcript(entry["sessionId"]).path.exists():
            return entry
        return self._start(key, entry)

    def _start(self, key: str, previous: dict[str, Any] | None) -> dict[str, Any]:
        session_id = str(uuid.uuid4())
        transcript = self.transcript(session_id)
        header: dict[str, Any] = {"type": "session", "id": session_id, "cwd": self.cwd, "timestamp": now_iso(), "sessionKey": key}
        if previous is not None:
            header["parentSession"] = previous.get("sessionId")
        transcript.create(header)
        kept = {k: v for k, v in (previous or {}).items() if k in ("label", "thinkingLevel", "verboseLevel", "modelOverride", "providerOverride", "displayName")}
        entry = {**kept, "sessionId": session_id, "updatedAt": int(time.time() * 1000), "sessionFile": str(transcript.path), "chatType": kind_of(key)}
        self.index[key] = entry
        self._save()
        self.watch.changed(key, "create" if previous is None else "reset")
        return entry

    def reset(self, key: str) -> dict[str, Any]:
        """A new session id under the same key (/new, /reset, sessions.reset)."""
        return self._start(key, self.index.get(key))

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
        self.transcript(session_id).append(record)
        self._last_entry[session_id] = record["id"]
        session["updatedAt"] = int(time.time() * 1000)
        self._save()
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
