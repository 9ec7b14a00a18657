"""In-memory ports for the cron scheduler and the heartbeat runner, on a task.Clock."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from openclaw.cron.ports import DeliveryResult
from openclaw.interfaces import RunResult


def epoch(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    """Seconds since the epoch of a UTC time."""
    return datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()


def clock_at(seconds: float) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


def advance_to(clock: Clock, until: float) -> None:
    """Advance to C{until}, stopping exactly at every delayed call on the way (as real time would)."""
    while True:
        pending = [c.getTime() for c in clock.getDelayedCalls()]
        step = min(pending) if pending else until
        if step > until:
            step = until
        clock.advance(max(0.0, step - clock.seconds()))
        if step >= until:
            clock.advance(0)
            return


class FakeAgent:
    """The agent port: records what it is asked; runs finish with scripted replies (or wait, when C{hold})."""

    def __init__(self, clock: Clock, workspace: Path) -> None:
        self.clock = clock
        self._workspace = workspace
        self.events: list[tuple[str, str]] = []
        self.turns: list[dict[str, Any]] = []
        self.replies: deque[tuple[str, str]] = deque()  # (status, text)
        self.default = ("ok", "done")
        self.hold = False
        self.held: list[tuple[dict[str, Any], Deferred[RunResult]]] = []
        self.busy_keys: dict[str, Deferred[None]] = {}

    def session_key(self, key: str | None, agent_id: str | None = None) -> str:
        key = key or "main"
        if key.startswith("agent:"):
            return key
        if "\n" in key:
            raise ValueError("bad key")
        return f"agent:{agent_id or 'main'}:{key}"

    def enqueue_event(self, session_key: str, text: str) -> None:
        self.events.append((session_key, text))

    def busy(self, session_key: str) -> bool:
        return session_key in self.busy_keys

    def idle(self, session_key: str) -> Deferred[None]:
        waiting = self.busy_keys.get(session_key)
        if waiting is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        waiting.addBoth(lambda _: d.callback(None))
        return d

    def finish_user_turn(self, session_key: str) -> None:
        self.busy_keys.pop(session_key).callback(None)

    def run(self, session_key: str, message: str, run_id: str, agent_id: str | None = None, timeout: float | None = None, quiet: bool = False, fresh: bool = False) -> Deferred[RunResult]:
        turn = {"key": session_key, "message": message, "runId": run_id, "quiet": quiet, "fresh": fresh, "timeout": timeout, "at": self.clock.seconds()}
        self.turns.append(turn)
        d: Deferred[RunResult] = Deferred()
        if self.hold:
            self.held.append((turn, d))
        else:
            self._answer(turn, d)
        return d

    def _answer(self, turn: dict[str, Any], d: Deferred[RunResult]) -> None:
        status, text = self.replies.popleft() if self.replies else self.default
        d.callback(RunResult(turn["runId"], turn["key"], status, text if status == "ok" else "", None if status == "ok" else text))

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            turn, d = self.held.pop(0)
            self._answer(turn, d)

    def workspace(self) -> Path:
        return self._workspace

    @property
    def checklist(self) -> str | None:
        """The workspace's HEARTBEAT.md (None: there is none)."""
        path = self._workspace / "HEARTBEAT.md"
        return path.read_text() if path.exists() else None

    @checklist.setter
    def checklist(self, text: str | None) -> None:
        path = self._workspace / "HEARTBEAT.md"
        if text is None:
            path.unlink(missing_ok=True)
        else:
            self._workspace.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        self.emitted.append((name, dict(payload)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [p for n, p in self.emitted if n == name]


class FakeDelivery:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def deliver(self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False, account_id: str | None = None, thread_id: str | None = None) -> Deferred[DeliveryResult]:
        self.sent.append({"text": text, "channel": channel, "to": to, "sessionKey": session_key, "inTranscript": in_transcript})
        self.sent[-1].update({k: v for k, v in (("accountId", account_id), ("threadId", thread_id)) if v is not None})
        if channel not in ("last", "webchat"):
            return succeed(DeliveryResult(False, channel, to, f"channel {channel!r} is not available"))
        return succeed(DeliveryResult(True, "webchat", session_key))
