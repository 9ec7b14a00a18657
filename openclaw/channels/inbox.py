# -*- test-case-name: tests.test_channels -*-
"""
One account's inbound journal: C{channels/<channel>/<account>/inbox.json}.

It holds the platform cursor (e.g. Telegram's next update offset), the keys
of recently seen messages (bounded), and the work not finished yet: messages
accepted but not answered, and replies not fully sent. A message is written
here, together with the cursor that moves past it, before the platform is
told it was received; it leaves only when its reply is out (or dropped). So
a gateway killed at any point neither loses a message nor answers it twice:
at the next start the cursor resumes after it, the seen keys drop a
redelivery, and the pending work picks up where it stopped.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger

from openclaw.channels.interfaces import InboundMessage
from openclaw.store import read_json, write_json

log = Logger(namespace="openclaw.channels")

SEEN_LIMIT = 5000
PENDING_LIMIT = 500
RECEIVED = "received"
REPLYING = "replying"


@attrs.define
class Work:
    """A message not finished: C{received}, then C{replying} with its chunks."""

    message: InboundMessage
    stage: str = RECEIVED
    chunks: list[str] = attrs.field(factory=list)
    sent: int = 0
    chat_id: str | None = None  # where the reply goes when it is not the message's chat (moved)
    reply: bool = True  # thread the reply to the message

    @property
    def key(self) -> str:
        return self.message.key

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message.to_json(), "stage": self.stage, "chunks": self.chunks, "sent": self.sent, "chatId": self.chat_id, "reply": self.reply}

    @classmethod
    def from_json(cls, value: Any) -> Work | None:
        try:
            message = InboundMessage.from_json(value["message"])
            chunks = [str(c) for c in value.get("chunks") or []]
            stage = value.get("stage") if value.get("stage") in (RECEIVED, REPLYING) else RECEIVED
            return cls(message, stage, chunks, min(int(value.get("sent") or 0), len(chunks)), value.get("chatId"), value.get("reply", True) is not False)
        except (KeyError, TypeError, ValueError):
            return None


class Inbox:
    def __init__(self, path: Path, seen_limit: int = SEEN_LIMIT, pending_limit: int = PENDING_LIMIT) -> None:
        self.path = Path(path)
        self.seen_limit = seen_limit
        self.pending_limit = pending_limit
        self._cursor: Any = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending: OrderedDict[str, Work] = OrderedDict()
        self._load()

    def _load(self) -> None:
        try:
            value = read_json(self.path, {})
        except ValueError:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("inbox {path} was damaged; kept as {aside}, starting empty", path=str(self.path), aside=str(aside))
            value = {}
        if not isinstance(value, dict):
            value = {}
        self._cursor = value.get("cursor")
        for key in value.get("seen") or []:
            if isinstance(key, str):
                self._seen[key] = None
        for entry in value.get("pending") or []:
            work = Work.from_json(entry)
            if work is not None:
                self._pending[work.key] = work

    def _save(self) -> None:
        write_json(self.path, {"version": 1, "cursor": self._cursor, "seen": list(self._seen), "pending": [w.to_json() for w in self._pending.values()]})

    # -- what the channel reports

    @property
    def cursor(self) -> Any:
        return self._cursor

    def accept(self, message: InboundMessage, cursor: Any = None) -> Work | None:
        """Journal a new message (and the cursor past it); None for a duplicate."""
        if cursor is not None:
            self._cursor = cursor
        if message.key in self._seen or message.key in self._pending:
            if cursor is not None:
                self._save()
            return None
        self._seen[message.key] = None
        while len(self._seen) > self.seen_limit:
            self._seen.popitem(last=False)
        work = Work(message)
        self._pending[work.key] = work
        while len(self._pending) > self.pending_limit:
            _, dropped = self._pending.popitem(last=False)
            log.error("inbox full: dropped unanswered message {key} from {channel}", key=dropped.key, channel=dropped.message.channel)
        self._save()
        return work

    def advance(self, cursor: Any) -> None:
        if cursor != self._cursor:
            self._cursor = cursor
            self._save()

    # -- what the framework does with it

    def pending(self) -> list[Work]:
        return list(self._pending.values())

    def __len__(self) -> int:
        """Work not finished."""
        return len(self._pending)

    def replying(self, work: Work, chunks: list[str], reply: bool = True) -> None:
        work.stage, work.chunks, work.sent, work.reply = REPLYING, list(chunks), 0, reply
        self._save()

    def progress(self, work: Work, sent: int, chat_id: str | None = None) -> None:
        work.sent = sent
        if chat_id is not None:
            work.chat_id = chat_id
        if work.key in self._pending:
            self._save()

    def done(self, work: Work) -> None:
        if self._pending.pop(work.key, None) is not None:
            self._save()
