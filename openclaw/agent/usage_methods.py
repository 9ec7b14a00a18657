# -*- test-case-name: tests.test_usage -*-
"""
C{usage.status} (requests, tokens and cost per provider and model since
start) and C{usage.cost} (totals per day and per model from the transcripts:
C{USAGE_METHODS}, deps L{UsageDeps}).
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.threads import deferToThreadPool

from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.usage import MAX_DAYS, Window, cost_summary
from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Either, Int, Null, Num, Obj, Str

DEFAULT_DAYS = 30
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_OFFSET = re.compile(r"^UTC([+-])(\d{1,2})(?::([0-5]\d))?$")


@attrs.frozen
class UsageDeps:
    """What the usage methods work with."""

    runtime: AgentRuntime


USAGE_METHODS: MethodTable[UsageDeps] = MethodTable()


@USAGE_METHODS.method("usage.status")
def usage_status(ud: UsageDeps, caller: Caller, params: Params) -> JSON:
    return {"updatedAt": ud.runtime.now_ms(), "providers": ud.runtime.meter.providers()}


_COST = Obj(
    {
        "startDate": Either((Str(), Null())),
        "endDate": Either((Str(), Null())),
        "days": Either((Num(), Str())),
        "agentId": Str(),
        "agentScope": Str(("all",)),
        "mode": Str(("utc", "gateway", "specific")),
        "utcOffset": Str(),
        "range": Str(("7d", "30d", "90d", "1y", "all")),
    },
    closed=True,
)


def _day_start(date: str, offset: int | None) -> int:
    """Milliseconds at 00:00 of C{YYYY-MM-DD} in the summary's days (UTC, an offset, or local time)."""
    match = _DATE.match(date.strip())
    if not match:
        raise GatewayError(INVALID_REQUEST, f"invalid date {date[:20]!r}: expected a valid YYYY-MM-DD calendar date")
    year, month, day = (int(g) for g in match.groups())
    try:
        parsed = time.strptime(f"{year:04d}-{month:02d}-{day:02d}", "%Y-%m-%d")
    except ValueError:
        raise GatewayError(INVALID_REQUEST, f"invalid date {date[:20]!r}: expected a valid YYYY-MM-DD calendar date")
    if offset is None:
        return int(time.mktime((year, month, day, 0, 0, 0, 0, 0, -1)) * 1000)
    return (calendar.timegm(parsed) - offset * 60) * 1000


def window_of(params: Params, now_ms: int) -> tuple[Window, int]:
    """The days C{usage.cost} covers (upstream's rules: both dates, else C{range}, else C{days}, else 30) and how many."""
    offset: int | None = 0
    if params.get("mode") == "gateway":
        offset = None
    elif params.get("mode") == "specific" and params.get("utcOffset"):
        match = _OFFSET.match(params["utcOffset"].strip())
        if not match:
            raise GatewayError(INVALID_REQUEST, "invalid utcOffset: expected UTC-12:00 through UTC+14:00")
        minutes = int(match.group(2)) * 60 + int(match.group(3) or 0)
        offset = minutes if match.group(1) == "+" else -minutes
        if not -720 <= offset <= 840:
            raise GatewayError(INVALID_REQUEST, "invalid utcOffset: expected UTC-12:00 through UTC+14:00")
    today = Window(0, now_ms, offset).day(now_ms)
    end_ms = _day_start(today, offset) + 86_400_000 - 1
    start, end = params.get("startDate") or None, params.get("endDate") or None
    if (start is None) != (end is None):
        raise GatewayError(INVALID_REQUEST, "startDate and endDate must be provided together")
    if start is not None and end is not None:
        start_ms, end_start = _day_start(start, offset), _day_start(end, offset)
        if start_ms > end_start:
            raise GatewayError(INVALID_REQUEST, "startDate must not be after endDate")
        return Window(start_ms, end_start + 86_400_000 - 1, offset), (end_start - start_ms) // 86_400_000 + 1
    if params.get("range") == "all":
        return Window(0, end_ms, offset), MAX_DAYS
    days: Any = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}.get(params.get("range") or "", params.get("days", DEFAULT_DAYS))
    try:
        days = int(float(days))
    except (TypeError, ValueError, OverflowError):
        raise GatewayError(INVALID_REQUEST, f"invalid days {str(days)[:20]!r}: expected a positive whole number")
    days = min(max(days, 1), MAX_DAYS)
    return Window(end_ms + 1 - days * 86_400_000, end_ms, offset), days


@USAGE_METHODS.method("usage.cost", _COST)
async def usage_cost(ud: UsageDeps, caller: Caller, params: Params) -> JSON:
    runtime = ud.runtime
    if params.get("agentScope") == "all" and params.get("agentId"):
        raise GatewayError(INVALID_REQUEST, "agentScope=all cannot be combined with agentId")
    agents = sorted(runtime.agents()) if params.get("agentScope") == "all" else [runtime.key("main", params.get("agentId") or runtime.settings.agents.default_id).split(":", 2)[1]]
    now = int(time.time() * 1000)
    window, days = window_of(params, now)
    folders = {agent: runtime.settings.state_dir / "agents" / agent / "sessions" for agent in agents}
    return await summarize(runtime, folders, window, days, now)


async def summarize(runtime: AgentRuntime, folders: dict[str, Path], window: Window, days: int, now: int) -> dict[str, Any]:
    """The cost summary, read off the reactor thread."""
    return await deferToThreadPool(runtime.reactor, runtime.tool_pool(), cost_summary, folders, runtime.settings.config, window, days, now)
