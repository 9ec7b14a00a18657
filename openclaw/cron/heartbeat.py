# -*- test-case-name: tests.test_heartbeat -*-
"""
Heartbeats (spec §11.2-11.3): a periodic agent turn in the main session with
the heartbeat prompt; a reply that is only an acknowledgement (C{HEARTBEAT_OK}
at its start or end, the rest short) is dropped, anything else is delivered.

A heartbeat never overlaps a turn in its session: it waits for the session to
be idle, then runs. Requests that arrive while one runs are coalesced into
one follow-up run.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from openclaw.config.settings import DEFAULT_HEARTBEAT_PROMPT
from openclaw.cron import schedule as sched
from openclaw.cron.ports import KEY_ERRORS, AgentPort, DeliveryPort, EventPort

log = Logger(namespace="openclaw.heartbeat")

TOKEN = "HEARTBEAT_OK"
DEFAULT_PROMPT = DEFAULT_HEARTBEAT_PROMPT  # spec §11.2 (v3's)
DEFAULT_EVERY = "30m"
DEFAULT_ACK_MAX_CHARS = 300
PREVIEW_CHARS = 200
CHECKLIST_FILE = "HEARTBEAT.md"
CHECKLIST_CAP = 64 * 1024
_CLOCK = re.compile(r"^([01]\d|2[0-3]|24):([0-5]\d)$")


@attrs.frozen
class ActiveHours:
    start_min: int
    end_min: int
    tz: str | None  # None: the host's zone


@attrs.frozen
class HeartbeatConfig:
    every: str = DEFAULT_EVERY
    every_ms: int = 30 * 60_000  # 0: off
    target: str = "last"  # last | none | <channel id>
    to: str | None = None
    prompt: str = DEFAULT_PROMPT
    ack_max_chars: int = DEFAULT_ACK_MAX_CHARS
    active_hours: ActiveHours | None = None
    session: str | None = None  # None: the agent's main session
    problems: tuple[str, ...] = ()


def heartbeat_config(config: Mapping[str, Any], agent_id: str = "main") -> HeartbeatConfig:
    """
    C{agents.defaults.heartbeat}, with the agent's C{agents.list[].heartbeat}
    (or C{agents.entries.<id>.heartbeat}) over it. Values that cannot be used
    fall back to their defaults and are named in C{problems}.
    """
    agents: Mapping[str, Any] = config["agents"] if isinstance(config.get("agents"), dict) else {}
    merged: dict[str, Any] = dict((agents.get("defaults") or {}).get("heartbeat") or {})
    for entry in agents.get("list") or []:
        if isinstance(entry, dict) and entry.get("id") == agent_id and isinstance(entry.get("heartbeat"), dict):
            merged.update(entry["heartbeat"])
    entry = (agents.get("entries") or {}).get(agent_id) if isinstance(agents.get("entries"), dict) else None
    if isinstance(entry, dict) and isinstance(entry.get("heartbeat"), dict):
        merged.update(entry["heartbeat"])
    problems: list[str] = []
    fields: dict[str, Any] = {}

    every = merged.get("every", DEFAULT_EVERY)
    try:
        every_ms = sched.parse_duration(str(every), default_unit="m")
        fields.update(every=str(every), every_ms=every_ms)
    except sched.ScheduleError as e:
        problems.append(f"heartbeat.every: {e}; using {DEFAULT_EVERY}")
    target = merged.get("target")
    if isinstance(target, str) and target.strip():
        fields["target"] = target.strip()
    if isinstance(merged.get("to"), str) and merged["to"].strip():
        fields["to"] = merged["to"].strip()
    if isinstance(merged.get("prompt"), str) and merged["prompt"].strip():
        fields["prompt"] = merged["prompt"].strip()
    ack = merged.get("ackMaxChars")
    if isinstance(ack, int) and not isinstance(ack, bool) and ack >= 0:
        fields["ack_max_chars"] = ack
    elif ack is not None:
        problems.append("heartbeat.ackMaxChars: expected a number of characters; using 300")
    if isinstance(merged.get("session"), str) and merged["session"].strip() and merged["session"].strip() != "main":
        fields["session"] = merged["session"].strip()
    active = merged.get("activeHours")
    if isinstance(active, dict):
        start, end = _clock_minutes(active.get("start"), False), _clock_minutes(active.get("end"), True)
        tz = active.get("timezone")
        tz = tz.strip() if isinstance(tz, str) and tz.strip() not in ("", "local") else None
        if tz == "user":
            user = (agents.get("defaults") or {}).get("userTimezone")
            tz = user if isinstance(user, str) and user.strip() else None
        if tz is not None:
            try:
                sched.zone(tz)
            except sched.ScheduleError as e:
                problems.append(f"heartbeat.activeHours.timezone: {e}; using the host's zone")
                tz = None
        if start is None or end is None:
            problems.append('heartbeat.activeHours: start and end must be "HH:MM" (end may be "24:00"); ignoring the window')
        elif start != end:
            fields["active_hours"] = ActiveHours(start, end, tz)
    return HeartbeatConfig(**fields, problems=tuple(problems))


def _clock_minutes(raw: Any, allow_24: bool) -> int | None:
    match = _CLOCK.match(raw.strip()) if isinstance(raw, str) else None
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        return 24 * 60 if allow_24 and minute == 0 else None
    return hour * 60 + minute


def within_active_hours(hours: ActiveHours | None, now_ms: int) -> bool:
    if hours is None:
        return True
    local = datetime.fromtimestamp(now_ms / 1000, sched.zone(hours.tz))
    minute = local.hour * 60 + local.minute
    if hours.end_min > hours.start_min:
        return hours.start_min <= minute < hours.end_min
    return minute >= hours.start_min or minute < hours.end_min  # the window spans midnight


def read_checklist(workspace: Path) -> str | None:
    """The workspace's C{HEARTBEAT.md} (its first 64 KiB), or None when there is none to read."""
    try:
        with open(workspace / CHECKLIST_FILE, "rb") as f:
            return f.read(CHECKLIST_CAP).decode("utf-8", "replace")
    except OSError:
        return None


def effectively_empty(text: str) -> bool:
    """A C{HEARTBEAT.md} with nothing to do: blank lines, headings, empty list items."""
    for line in text.splitlines():
        line = line.strip()
        if not line or re.match(r"^#+(\s|$)", line) or re.match(r"^[-*+]\s*(\[[\sXx]?\]\s*)?$", line):
            continue
        return False
    return True


def _strip_edges(text: str) -> tuple[str, bool]:
    text = text.strip()
    stripped = False
    while True:
        if text.startswith(TOKEN):
            text = text[len(TOKEN) :].lstrip()
        elif text.endswith(TOKEN):
            text = text[: -len(TOKEN)].rstrip()
        else:
            break
        stripped = True
    return re.sub(r"\s+", " ", text).strip(), stripped


def _unmarked(text: str) -> str:
    """C{**HEARTBEAT_OK**} and C{<b>HEARTBEAT_OK</b>} count as the token."""
    text = re.sub(r"<[^>]*>", " ", text).replace("&nbsp;", " ")
    return re.sub(r"[*`~_]+$", "", re.sub(r"^[*`~_]+", "", text.strip()))


def strip_token(raw: str | None, heartbeat: bool = True, ack_max_chars: int = DEFAULT_ACK_MAX_CHARS) -> tuple[bool, str]:
    """
    C{(drop, text)} for a reply: the token at either edge is removed; in a
    heartbeat what is left is dropped when it is at most C{ack_max_chars} long;
    an empty reply is always dropped.
    """
    trimmed = (raw or "").strip()
    if not trimmed:
        return True, ""
    normalized = _unmarked(trimmed)
    if TOKEN not in trimmed and TOKEN not in normalized:
        return False, trimmed
    text, did = _strip_edges(trimmed)
    if not (did and text):
        alt, alt_did = _strip_edges(normalized)
        if alt_did:
            text, did = alt, alt_did
    if not did:
        return False, trimmed
    if not text or (heartbeat and len(text) <= ack_max_chars):
        return True, ""
    return False, text


def indicator(status: str) -> str | None:
    return {"ok-empty": "ok", "ok-token": "ok", "sent": "alert", "failed": "error"}.get(status)


@attrs.frozen
class HeartbeatResult:
    status: str  # ran | skipped | failed
    reason: str | None = None
    event: dict[str, Any] | None = None


class HeartbeatRunner:
    """One agent's heartbeat: its timer, its runs, its last event."""

    def __init__(self, config: HeartbeatConfig, clock: IReactorTime, agent: AgentPort, events: EventPort, delivery: DeliveryPort, agent_id: str = "main") -> None:
        self.config = config
        self.clock = clock
        self.agent = agent
        self.events = events
        self.delivery = delivery
        self.agent_id = agent_id
        self.enabled = True  # set-heartbeats (not persisted, as upstream)
        self.last: dict[str, Any] | None = None
        self.next_due_ms: int | None = None
        self._timer: IDelayedCall | None = None
        self._inflight: dict[str, Deferred[HeartbeatResult]] = {}
        self._again: dict[str, list[tuple[str, Deferred[HeartbeatResult]]]] = {}
        self.running = False

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    @property
    def active(self) -> bool:
        """Whether heartbeats run at all (switched on and with an interval)."""
        return self.enabled and self.config.every_ms > 0

    def main_session(self) -> str:
        return self.agent.session_key(self.config.session, self.agent_id)

    # -- timer

    def start(self) -> None:
        self.running = True
        for problem in self.config.problems:
            log.warn("config: {problem}", problem=problem)
        if self.config.every_ms > 0:
            self.next_due_ms = self.now_ms() + self.config.every_ms
            log.info("heartbeat: every {every} for agent {agent}", every=self.config.every, agent=self.agent_id)
        else:
            log.info("heartbeat: disabled (every {every})", every=self.config.every)
        self._arm()

    def stop(self) -> None:
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.running or self.next_due_ms is None or self.config.every_ms <= 0:
            return
        delay = max(0.0, (self.next_due_ms - self.now_ms()) / 1000)
        self._timer = self.clock.callLater(min(delay, 3600.0), self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.next_due_ms is not None and self.now_ms() < self.next_due_ms and self.next_due_ms - self.now_ms() <= self.config.every_ms:
            self._arm()  # woke early (the delay is capped): wait on
            return
        self.next_due_ms = self.now_ms() + self.config.every_ms
        self._arm()
        self.request("interval")

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled and self.config.every_ms > 0 and self.next_due_ms is None:
            self.next_due_ms = self.now_ms() + self.config.every_ms
            self._arm()

    # -- runs

    def request(self, reason: str, session_key: str | None = None) -> Deferred[HeartbeatResult]:
        """Run a heartbeat now (or right after the one that runs in that session)."""
        try:
            key = self.agent.session_key(session_key, self.agent_id) if session_key else self.main_session()
        except KEY_ERRORS as e:
            return succeed(HeartbeatResult("skipped", str(e)))
        waiter: Deferred[HeartbeatResult] = Deferred()
        if key in self._inflight:
            self._again.setdefault(key, []).append((reason, waiter))
            return waiter
        self._launch(key, reason, [waiter])
        return waiter

    def _launch(self, key: str, reason: str, waiters: list[Deferred[HeartbeatResult]]) -> None:
        d = Deferred.fromCoroutine(self._run(key, reason))
        self._inflight[key] = d

        def done(result: Any) -> None:
            del self._inflight[key]
            if not isinstance(result, HeartbeatResult):
                log.failure("heartbeat run crashed", result)
                result = HeartbeatResult("failed", "internal error")
            for waiter in waiters:
                waiter.callback(result)
            queued = self._again.pop(key, [])
            if queued:
                self._launch(key, queued[0][0], [w for _, w in queued])

        d.addBoth(done)

    async def _run(self, key: str, reason: str) -> HeartbeatResult:
        if not self.enabled:
            return HeartbeatResult("skipped", "disabled")
        if self.config.every_ms <= 0:
            return HeartbeatResult("skipped", "disabled")
        started = self.now_ms()
        if not within_active_hours(self.config.active_hours, started):
            return self._emit(HeartbeatResult("skipped", "quiet-hours"), started, status="skipped", reason="quiet-hours")
        if reason == "interval":
            checklist = read_checklist(self.agent.workspace())
            if checklist is not None and effectively_empty(checklist):
                return self._emit(HeartbeatResult("skipped", "empty-heartbeat-file"), started, status="skipped", reason="empty-heartbeat-file")
        if self.agent.busy(key):
            await self.agent.idle(key)  # queue behind the turn in progress
        if key == self.main_session():
            self.next_due_ms = self.now_ms() + self.config.every_ms
            self._arm()
        run_id = f"heartbeat-{uuid.uuid4()}"
        outcome = await self.agent.run(key, self.config.prompt, run_id, quiet=True)
        if outcome.status != "ok":
            return self._emit(HeartbeatResult("failed", outcome.error or outcome.status), started, status="failed", reason=outcome.error or outcome.status)
        if not outcome.text.strip():
            return self._emit(HeartbeatResult("ran"), started, status="ok-empty", reason=reason, silent=True)
        drop, text = strip_token(outcome.text, True, self.config.ack_max_chars)
        if drop:
            return self._emit(HeartbeatResult("ran"), started, status="ok-token", reason=reason, silent=True)
        preview = text[:PREVIEW_CHARS]
        if self.config.target == "none":
            return self._emit(HeartbeatResult("ran", "no-target"), started, status="skipped", reason="no-target", preview=preview)
        result = await self.delivery.deliver(text, self.config.target, self.config.to, key, run_id, in_transcript=True)
        if not result.delivered:
            return self._emit(HeartbeatResult("skipped", result.error), started, status="skipped", reason=result.error or "not delivered", preview=preview, channel=self.config.target)
        return self._emit(HeartbeatResult("ran"), started, status="sent", to=result.to, preview=preview, channel=result.channel)

    def _emit(self, result: HeartbeatResult, started: int, **fields: Any) -> HeartbeatResult:
        event = {"ts": self.now_ms(), **{k: v for k, v in fields.items() if v is not None}, "durationMs": max(0, self.now_ms() - started)}
        kind = indicator(event["status"])
        if kind:
            event["indicatorType"] = kind
        self.last = event
        self.events.emit("heartbeat", event)
        return attrs.evolve(result, event=event)

    # -- what status and health show

    def summary(self) -> dict[str, Any]:
        """For L{openclaw.gateway.health.HeartbeatReport}: no interval (C{every: "0m"}) in upstream's disabled shape."""
        c = self.config
        every, every_ms = (c.every, c.every_ms) if c.every_ms > 0 else ("disabled", None)
        return {"enabled": self.active, "every": every, "everyMs": every_ms, "prompt": c.prompt, "target": c.target, "ackMaxChars": c.ack_max_chars}
