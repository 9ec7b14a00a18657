# -*- test-case-name: tests.test_cron_gateway -*-
"""
The agent's C{cron} tool: "remind me at 5" becomes a one-shot C{at} job
bound to the session the request came from. When it is due the reminder is
a system event in that session and wakes it, so the assistant's reply lands
where the user asked. The tool lists and removes only its session's jobs.
"""

from __future__ import annotations

from typing import Any

from openclaw.agent.providers import ToolSpec
from openclaw.agent.tools import Tool, ToolContext, ToolError
from openclaw.cron import schedule as sched
from openclaw.cron.jobs import CronInputError
from openclaw.cron.service import CronService, JobNotFound

DESCRIPTION = (
    "Schedule a reminder for this conversation, list this conversation's reminders, or remove one. "
    "action=add needs text and either in (a duration such as 20m, 2h) or at (an ISO time, or HH:MM "
    "in tz, default the host's zone). You get the reminder back here when it is due."
)
PARAMETERS = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["add", "list", "remove"]},
        "text": {"type": "string", "description": "What to remind about."},
        "in": {"type": "string", "description": "Delay from now, e.g. 20m, 1h30m, 2d."},
        "at": {"type": "string", "description": "ISO 8601 time, or HH:MM (next occurrence)."},
        "tz": {"type": "string", "description": "IANA zone for HH:MM (e.g. Europe/Berlin)."},
        "jobId": {"type": "string", "description": "The reminder to remove."},
    },
    "required": ["action"],
}
MAX_REMINDER_CHARS = 2000


def reminder_params(text: str, at_ms: int, session_key: str | None) -> dict[str, Any]:
    """C{cron.add} params (v4 shape) for a one-shot reminder into a session."""
    text = text.strip()
    params: dict[str, Any] = {
        "name": "Reminder: " + (text[:60] + "…" if len(text) > 60 else text),
        "schedule": {"kind": "at", "at": sched.iso_ms(at_ms)},
        "sessionTarget": "main",
        "wakeMode": "now",
        "payload": {"kind": "systemEvent", "text": f"Reminder: {text}"},
        "deleteAfterRun": True,
    }
    if session_key:
        params["sessionKey"] = session_key
    return params


def when(args: dict[str, Any], now_ms: int) -> int:
    """The reminder time from C{in} or C{at}. @raise ScheduleError."""
    delay, at = args.get("in"), args.get("at")
    if isinstance(delay, str) and delay.strip():
        ms = sched.parse_duration(delay.strip().lstrip("+"), default_unit="m")
        if ms <= 0:
            raise sched.ScheduleError("in must be more than zero")
        return now_ms + ms
    if isinstance(at, str) and at.strip():
        if ":" in at and len(at.strip()) <= 5:
            return sched.wall_time_today(at, now_ms, args.get("tz") if isinstance(args.get("tz"), str) else None)
        return sched.parse_instant(at)
    raise sched.ScheduleError("give in (e.g. 20m) or at (an ISO time or HH:MM)")


def cron_tool(service: CronService) -> Tool:
    async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
        action = args.get("action")
        mine = [j for j in service.list(include_disabled=False) if j.session_key == ctx.session_key]
        if action == "list":
            if not mine:
                return "No reminders for this conversation."
            return "\n".join(f"{j.id}  {j.name}  next: {sched.iso_ms(j.state.next_run_ms) if j.state.next_run_ms else '-'}" for j in mine)
        if action == "remove":
            job_id = args.get("jobId")
            if not isinstance(job_id, str) or not any(j.id == job_id for j in mine):
                raise ToolError(f"no reminder {job_id!r} in this conversation")
            service.remove(job_id)
            return f"Removed reminder {job_id}."
        if action != "add":
            raise ToolError("action must be add, list or remove")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ToolError("text is required")
        if len(text) > MAX_REMINDER_CHARS:
            raise ToolError(f"text is longer than {MAX_REMINDER_CHARS} characters")
        try:
            at_ms = when(args, service.now_ms())
            job, _ = service.add(reminder_params(text, at_ms, ctx.session_key), 4)
        except (sched.ScheduleError, CronInputError, JobNotFound) as e:
            raise ToolError(str(e))
        return f"Reminder set for {sched.iso_ms(at_ms)} (job {job.id})."

    return Tool(ToolSpec("cron", DESCRIPTION, PARAMETERS), run)
