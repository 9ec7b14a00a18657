# -*- test-case-name: tests.test_cron_schedule -*-
"""
When scheduled work is due (sans-IO): one-shot C{at}, C{every} with an
anchor, and C{cron} expressions in an IANA time zone.

Cron expressions are matched on local wall-clock time with croniter, and
each wall time is turned into an instant with zoneinfo: a time that does not
exist (the hour skipped in spring) runs when the clock jumps past it; a time
that happens twice (the hour repeated in autumn) runs once, unless the
expression runs every hour, which then runs in both.
"""

from __future__ import annotations

import os
import re
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

MAX_MS = 8_640_000_000_000_000  # JavaScript's largest date
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.I)
_SCAN_LIMIT = 4000  # wall-clock candidates looked at for one answer


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says why."""


def parse_duration(text: str, default_unit: str = "ms") -> int:
    """
    C{"90s"}, C{"20m"}, C{"1h30m"}, C{"2d"} (or a bare number in C{default_unit})
    to milliseconds.

    @raise ScheduleError: not a duration.
    """
    raw = text.strip().lower() if isinstance(text, str) else ""
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return int(float(raw) * _UNITS[default_unit])
    pos, total = 0, 0.0
    for match in _DURATION.finditer(raw):
        if raw[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if not raw or pos == 0 or raw[pos:].strip():
        raise ScheduleError(f"not a duration: {text!r} (use e.g. 90s, 20m, 1h30m, 2d)")
    return int(total)


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as upstream writes instants: C{2026-01-12T18:00:00.000Z}."""
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant(text: str) -> int:
    """
    An instant: milliseconds as digits, or ISO 8601 (without an offset it is UTC,
    as upstream reads it).

    @raise ScheduleError: neither.
    """
    raw = text.strip() if isinstance(text, str) else ""
    if re.fullmatch(r"\d{1,16}", raw):
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ScheduleError(f"not a time: {text!r} (use an ISO time such as 2026-01-12T18:00:00Z, or milliseconds)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def zone(name: str | None) -> Any:
    """The IANA zone C{name}, or this host's zone when empty. @raise ScheduleError."""
    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone: {name!r} (use an IANA name such as Europe/Berlin)") from None


def local_zone() -> Any:
    """The host's zone: C{TZ}, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return timezone.utc


def check_expr(expr: str) -> None:
    """@raise ScheduleError: not a 5-field (or 6-field, with seconds) cron expression."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday)")
    try:
        croniter(expr, datetime(2026, 1, 1), second_at_beginning=len(fields) == 6)
    except (CroniterError, ValueError, KeyError) as e:
        raise ScheduleError(f"invalid cron expression {expr!r}: {e}") from None


def check(schedule: Mapping[str, Any]) -> None:
    """@raise ScheduleError: a schedule (canonical form) that can never be computed."""
    kind = schedule.get("kind")
    if kind == "cron":
        check_expr(schedule["expr"])
        zone(schedule.get("tz"))
    elif kind == "every":
        if not 1 <= schedule["everyMs"] <= MAX_MS:
            raise ScheduleError("everyMs must be at least 1")
    elif kind != "at":
        raise ScheduleError(f"unsupported schedule kind: {kind!r}")


def _instants(naive: datetime, tz: Any, every_hour: bool) -> list[datetime]:
    """The instants a wall-clock time stands for in C{tz} (see the module docstring)."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    before, after = first.utcoffset(), second.utcoffset()  # both known: tz is a zone
    if before is None or after is None or before == after:
        return [first]
    if before > after:  # repeated: fold 0 is the earlier instant
        return [first, second] if every_hour else [first]
    # Skipped: the instant the clock jumps past it.
    return [_gap_end(first)]


def _gap_end(moment: datetime) -> datetime:
    """The first instant after a spring-forward gap that contains C{moment}'s wall time."""
    utc = moment.astimezone(timezone.utc)  # fold=0 uses the offset before the gap: a later instant
    low, high = utc - timedelta(hours=3), utc
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(moment.tzinfo).replace(tzinfo=None) < moment.replace(tzinfo=None):
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def cron_next(expr: str, tz_name: str | None, after_ms: int) -> int | None:
    """The first instant strictly after C{after_ms} that C{expr} names in C{tz_name}."""
    tz = zone(tz_name)
    fields = expr.split()
    seconds = len(fields) == 6
    every_hour = fields[2 if seconds else 1] == "*"
    after = datetime.fromtimestamp(after_ms / 1000, timezone.utc)
    # Start two hours back in wall time, so a repeated hour's second pass is seen.
    start = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=2)
    try:
        it = croniter(expr, start, second_at_beginning=seconds)
    except (CroniterError, ValueError, KeyError) as e:
        raise ScheduleError(f"invalid cron expression {expr!r}: {e}") from None
    best: datetime | None = None
    for _ in range(_SCAN_LIMIT):
        try:
            naive = it.get_next(datetime)
        except (CroniterError, StopIteration):
            break
        if best is not None and naive.replace(tzinfo=None) - best.astimezone(tz).replace(tzinfo=None) > timedelta(hours=3):
            break
        for moment in _instants(naive, tz, every_hour):
            if moment > after and (best is None or moment < best):
                best = moment
    if best is None:
        return None
    return int(best.timestamp() * 1000)


def stagger_offset(job_id: str, stagger_ms: int) -> int:
    """A job's fixed offset inside its stagger window (the same on every run)."""
    if stagger_ms <= 0:
        return 0
    return zlib.crc32(job_id.encode("utf-8")) % stagger_ms


def next_run(schedule: Mapping[str, Any], after_ms: int, job_id: str = "") -> int | None:
    """
    When a schedule (canonical form) is next due, strictly after C{after_ms};
    None when it never is again.
    """
    kind = schedule["kind"]
    if kind == "at":
        at = schedule["atMs"]
        return at if at > after_ms else None
    if kind == "every":
        every = max(1, int(schedule["everyMs"]))
        anchor = int(schedule.get("anchorMs", after_ms))
        if after_ms < anchor:
            return anchor
        steps = (after_ms - anchor) // every + 1
        return anchor + steps * every
    if kind == "cron":
        offset = stagger_offset(job_id, int(schedule.get("staggerMs") or 0))
        found = cron_next(schedule["expr"], schedule.get("tz"), after_ms - offset)
        return None if found is None else found + offset
    raise ScheduleError(f"unsupported schedule kind: {kind!r}")


def describe(schedule: Mapping[str, Any]) -> str:
    """A short human text for listings."""
    kind = schedule.get("kind")
    if kind == "at":
        return "at " + iso_ms(schedule["atMs"])
    if kind == "every":
        return "every " + human_ms(schedule["everyMs"])
    tz = schedule.get("tz")
    return f"cron {schedule.get('expr')}" + (f" ({tz})" if tz else "")


def human_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def wall_time_today(hhmm: str, now_ms: int, tz_name: str | None) -> int:
    """
    The next C{HH:MM} (today, else tomorrow) in C{tz_name} as milliseconds.

    @raise ScheduleError: not a clock time.
    """
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", hhmm.strip())
    if not match:
        raise ScheduleError(f"not a clock time: {hhmm!r} (use HH:MM)")
    tz = zone(tz_name)
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    for days in (0, 1, 2):
        day = (now + timedelta(days=days)).date()
        naive = datetime(day.year, day.month, day.day, int(match.group(1)), int(match.group(2)))
        moment = _instants(naive, tz, False)[0]
        if moment.timestamp() * 1000 > now_ms:
            return int(moment.timestamp() * 1000)
    raise ScheduleError(f"no next {hhmm}")  # unreachable: tomorrow always comes
