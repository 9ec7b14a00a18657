# -*- test-case-name: tests.test_pending -*-
"""
A JSON state file written at most once per interval.

Stores that change on requests an unauthenticated peer can send (pairing
asks, renames) mark the file dirty instead of rewriting it each time; one
crash-safe write (L{openclaw.store.write_json}) follows C{delay} seconds
after the first change, whatever the request rate. C{flush} writes now (an
operator's decision, shutdown). A crash loses at most C{delay} seconds of
changes, and those are requests the requester repeats anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.store import write_json

log = Logger(namespace="openclaw.store")

DEFAULT_DELAY = 1.0


class CoalescedJSON:
    def __init__(self, path: Path, value: Callable[[], Any], clock: IReactorTime | None = None, delay: float = DEFAULT_DELAY) -> None:
        self.path = Path(path)
        self._value = value
        self._clock = clock
        self._delay = delay
        self._call: Any = None
        self.writes = 0  # how many times the file was written (for tests and diagnostics)

    @property
    def dirty(self) -> bool:
        return self._call is not None

    def changed(self) -> None:
        """The value changed: write it soon (at once when there is no clock)."""
        if self._clock is None:
            self._write()
        elif self._call is None:
            self._call = self._clock.callLater(self._delay, self._due)

    def flush(self) -> None:
        """Write now if a change is waiting."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._due()

    def _due(self) -> None:
        self._call = None
        try:
            self._write()
        except OSError:
            # Nobody waits on this write; the next change tries again.
            log.failure("could not write {path}", path=str(self.path))

    def _write(self) -> None:
        write_json(self.path, self._value())
        self.writes += 1
