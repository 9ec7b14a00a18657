# -*- test-case-name: tests.test_providers -*-
"""Server-sent events, parsed from bytes as they arrive (no IO here)."""

from __future__ import annotations

import attrs

MAX_EVENT_BYTES = 4 * 1024 * 1024


class SSEError(ValueError):
    """The stream broke the format (or an event grew past the limit)."""


@attrs.frozen
class Event:
    event: str
    data: str
    id: str | None = None


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            cut = min((i for i in (self._buffer.find(b"\n"), self._buffer.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                if len(self._buffer) > MAX_EVENT_BYTES:
                    raise SSEError("an SSE line is larger than the limit")
                return events
            if self._buffer[cut : cut + 1] == b"\r" and cut == len(self._buffer) - 1:
                return events  # a CR at the end of a chunk may be half of a CRLF: wait
            line, rest = self._buffer[:cut], self._buffer[cut + 1 :]
            if self._buffer[cut : cut + 1] == b"\r" and rest[:1] == b"\n":
                rest = rest[1:]
            self._buffer = rest
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data), self._id)
            self._data, self._event, self._size = [], "", 0
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._size += len(value)
            if self._size > MAX_EVENT_BYTES:
                raise SSEError("an SSE event is larger than the limit")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None
