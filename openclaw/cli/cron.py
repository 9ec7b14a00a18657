# -*- test-case-name: tests.test_cron_cli -*-
"""
`openclaw cron status|list|get|add|edit|rm|enable|disable|run|runs`,
`openclaw remind`, and `openclaw system heartbeat last|enable|disable`.

Schedules are typed as people say them: C{--at "in 20m"} (or C{+20m},
C{20m}, an ISO time, C{17:00}), C{--every 1h}, C{--cron "0 9 * * 1-5"
--tz Europe/Berlin}. The commands speak protocol v4 to the gateway.
"""

from __future__ import annotations

import time
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw.cli.base import CommandOptions
from openclaw.cli.remote import Failed, TimedOptions
from openclaw.cron import schedule as sched

ADMIN = ["operator.admin"]


def parse_at(text: str, now_ms: int, tz: str | None = None) -> int:
    """
    C{"in 20m"}, C{"+20m"}, C{"20m"}, C{"17:00"}, an ISO time or milliseconds to
    an instant. @raise usage.UsageError: none of those, or in the past.
    """
    raw = text.strip()
    lowered = raw.lower()
    try:
        if lowered.startswith("in "):
            return now_ms + sched.parse_duration(lowered[3:].strip())
        if lowered.startswith("+"):
            return now_ms + sched.parse_duration(lowered[1:].strip())
        if ":" in raw and len(raw) <= 5:
            return sched.wall_time_today(raw, now_ms, tz)
        if raw and not raw.isdigit() and raw[-1].isalpha() and not any(c in raw for c in "-T:"):
            return now_ms + sched.parse_duration(lowered)
        return sched.parse_instant(raw)
    except sched.ScheduleError as e:
        raise usage.UsageError(f"--at: {e}; use e.g. \"in 20m\", 17:00 or 2026-01-12T18:00:00Z")


def parse_every(text: str) -> int:
    try:
        ms = sched.parse_duration(text)
    except sched.ScheduleError as e:
        raise usage.UsageError(f"--every: {e}")
    if ms <= 0:
        raise usage.UsageError("--every must be more than zero")
    return ms


def schedule_of(options: usage.Options, now_ms: int, required: bool) -> dict[str, Any] | None:
    """The one schedule the options give (v4 shape), or None when none is given and none is required."""
    chosen = [name for name in ("at", "every", "cron") if options[name]]
    if len(chosen) > 1 or (required and not chosen):
        raise usage.UsageError("choose exactly one schedule: --at, --every or --cron")
    if not chosen:
        if options["tz"]:
            raise usage.UsageError("--tz goes with --cron (or with --at HH:MM)")
        return None
    if chosen[0] == "at":
        return {"kind": "at", "at": sched.iso_ms(parse_at(options["at"], now_ms, options["tz"]))}
    if chosen[0] == "every":
        return {"kind": "every", "everyMs": parse_every(options["every"])}
    expr = options["cron"].strip()
    try:
        sched.check_expr(expr)
        if options["tz"]:
            sched.zone(options["tz"])
    except sched.ScheduleError as e:
        raise usage.UsageError(f"--cron: {e}")
    return {"kind": "cron", "expr": expr, **({"tz": options["tz"]} if options["tz"] else {})}


def show_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def show_schedule(schedule: dict[str, Any]) -> str:
    if schedule.get("kind") == "at":
        try:
            return "at " + show_time(sched.parse_instant(str(schedule.get("at") or schedule.get("atMs"))))
        except sched.ScheduleError:
            return "at ?"
    return sched.describe(schedule)


class CronCommand(TimedOptions):
    """A cron command: one admin connection, calls, output."""

    async def call_admin(self, reactor: Any, env: Mapping[str, str], method: str, params: Any = None) -> Any:
        connection = await self.connection(reactor, env, ADMIN)
        try:
            return await self.call(connection, method, params)
        finally:
            connection.close()


class CronStatusOptions(CronCommand):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        status = await self.call_admin(reactor, env, "cron.status", {})
        if self["json"]:
            self.emit(out, status)
            return
        state = "enabled" if status.get("enabled") else "DISABLED (jobs are kept but do not run)"
        out.write(f"Cron {state}: {status.get('jobs', 0)} jobs, next wake {show_time(status.get('nextWakeAtMs'))}\nStore: {status.get('storePath')}\n")


class CronListOptions(CronCommand):
    optFlags = [["all", "a", "Include disabled jobs."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        listing = await self.call_admin(reactor, env, "cron.list", {"includeDisabled": bool(self["all"]), "limit": 200})
        if self["json"]:
            self.emit(out, listing)
            return
        jobs = listing.get("jobs") or []
        if not jobs:
            out.write("No cron jobs.\n")
        for job in jobs:
            state = job.get("state") or {}
            flags = "" if job.get("enabled") else " (disabled)"
            last = state.get("lastRunStatus") or state.get("lastStatus") or "-"
            out.write(f"{job['id']}  {job['name']}{flags}  {show_schedule(job['schedule'])}  next {show_time(state.get('nextRunAtMs'))}  last {last}  [{job['sessionTarget']}]\n")


class JobCommand(CronCommand):
    synopsis = "<jobId>"

    def parseArgs(self, job_id: str) -> None:
        self["id"] = job_id


class CronGetOptions(JobCommand):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        self.emit(out, await self.call_admin(reactor, env, "cron.get", {"id": self["id"]}))


class CronRemoveOptions(JobCommand):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        result = await self.call_admin(reactor, env, "cron.remove", {"id": self["id"]})
        if self["json"]:
            self.emit(out, result)
        elif result.get("removed"):
            out.write(f"Removed {self['id']}\n")
        else:
            raise Failed(f"no cron job {self['id']}")


class CronToggleOptions(JobCommand):
    enabled = True

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        job = await self.call_admin(reactor, env, "cron.update", {"id": self["id"], "patch": {"enabled": self.enabled}})
        if self["json"]:
            self.emit(out, job)
        else:
            out.write(f"{'Enabled' if self.enabled else 'Disabled'} {job['id']} ({job['name']}); next {show_time((job.get('state') or {}).get('nextRunAtMs'))}\n")


class CronEnableOptions(CronToggleOptions):
    enabled = True


class CronDisableOptions(CronToggleOptions):
    enabled = False


class CronRunOptions(JobCommand):
    optFlags = [["due", None, "Run only if it is due."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        result = await self.call_admin(reactor, env, "cron.run", {"id": self["id"], "mode": "due" if self["due"] else "force"})
        if self["json"]:
            self.emit(out, result)
        elif result.get("enqueued") or result.get("ran"):
            out.write(f"Started {self['id']}" + (f" (run {result['runId']}; see `openclaw cron runs {self['id']}`)" if result.get("runId") else "") + "\n")
        else:
            raise Failed(f"not run: {result.get('reason')}")


class CronRunsOptions(CronCommand):
    synopsis = "<jobId> [--limit N]"
    optParameters = [["limit", None, 20, "Entries (newest first).", int], ["id", None, None, "Job id (instead of the argument)."]]

    def parseArgs(self, job_id: str | None = None) -> None:
        if job_id:
            self["id"] = job_id

    def postOptions(self) -> None:
        if not self["id"]:
            raise usage.UsageError("give the job id")
        if not 1 <= self["limit"] <= 200:
            raise usage.UsageError("--limit: 1 to 200")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        runs = await self.call_admin(reactor, env, "cron.runs", {"id": self["id"], "limit": self["limit"]})
        if self["json"]:
            self.emit(out, runs)
            return
        entries = runs.get("entries") or []
        if not entries:
            out.write("No runs yet.\n")
        for entry in entries:
            detail = entry.get("error") or entry.get("summary") or ""
            out.write(f"{show_time(entry.get('runAtMs', entry['ts']))}  {entry.get('status', '?')}  {entry.get('durationMs', 0)} ms  {detail[:120]}\n")


class JobFieldsOptions(CronCommand):
    """The options add and edit share."""

    optParameters = [
        ["name", None, None, "Job name."],
        ["description", None, None, "Description."],
        ["at", None, None, 'Run once: "in 20m", +20m, 17:00, or an ISO time.'],
        ["every", None, None, "Run every DURATION (e.g. 10m, 1h)."],
        ["cron", None, None, 'Cron expression, e.g. "0 9 * * 1-5".'],
        ["tz", None, None, "IANA time zone for --cron (and --at HH:MM)."],
        ["session", None, None, "main (system event) or isolated (agent turn)."],
        ["session-key", None, None, "Session a main job's event goes to (default: the main session)."],
        ["wake", None, None, "now or next-heartbeat."],
        ["system-event", None, None, "System event text (main-session job)."],
        ["message", "m", None, "Agent message (isolated job)."],
        ["timeout-seconds", None, None, "Timeout of an isolated job's turn.", int],
        ["channel", None, None, "Delivery channel for an isolated job's output (last: the main session)."],
        ["to", None, None, "Delivery recipient."],
        ["agent", None, None, "Agent id."],
    ]
    optFlags = [
        ["announce", None, "Deliver an isolated job's output."],
        ["no-deliver", None, "Keep an isolated job's output internal."],
        ["delete-after-run", None, "Delete a one-shot job after it succeeds."],
    ]

    def payload(self, required: bool) -> dict[str, Any] | None:
        if self["system-event"] and self["message"]:
            raise usage.UsageError("choose one payload: --system-event or --message")
        if self["system-event"]:
            return {"kind": "systemEvent", "text": self["system-event"]}
        if self["message"]:
            payload: dict[str, Any] = {"kind": "agentTurn", "message": self["message"]}
            if self["timeout-seconds"] is not None:
                payload["timeoutSeconds"] = self["timeout-seconds"]
            return payload
        if required:
            raise usage.UsageError("give a payload: --system-event TEXT (main session) or --message TEXT (isolated turn)")
        return None

    def delivery(self) -> dict[str, Any] | None:
        if self["announce"] and self["no-deliver"]:
            raise usage.UsageError("choose --announce or --no-deliver")
        if self["no-deliver"]:
            return {"mode": "none"}
        if self["announce"] or self["channel"] or self["to"]:
            out: dict[str, Any] = {"mode": "announce", "channel": self["channel"] or "last"}
            if self["to"]:
                out["to"] = self["to"]
            return out
        return None

    def check_choices(self) -> None:
        if self["session"] not in (None, "main", "isolated"):
            raise usage.UsageError("--session: main or isolated")
        if self["wake"] not in (None, "now", "next-heartbeat"):
            raise usage.UsageError("--wake: now or next-heartbeat")


class CronAddOptions(JobFieldsOptions):
    synopsis = "--name NAME (--at WHEN | --every DURATION | --cron EXPR [--tz ZONE]) (--system-event TEXT | --message TEXT) [options]"
    optFlags = [["disabled", None, "Create it disabled."]]

    def postOptions(self) -> None:
        self.check_choices()
        if not self["name"]:
            raise usage.UsageError("--name is required")
        now = int(time.time() * 1000)
        schedule = schedule_of(self, now, True)
        payload = self.payload(True)
        assert schedule is not None and payload is not None
        target = self["session"] or ("main" if payload["kind"] == "systemEvent" else "isolated")
        params: dict[str, Any] = {
            "name": self["name"],
            "schedule": schedule,
            "sessionTarget": target,
            "wakeMode": self["wake"] or "now",
            "payload": payload,
            "enabled": not self["disabled"],
            "deleteAfterRun": bool(self["delete-after-run"]),
        }
        for option, name in (("description", "description"), ("agent", "agentId"), ("session-key", "sessionKey")):
            if self[option]:
                params[name] = self[option]
        delivery = self.delivery()
        if delivery is not None:
            if target == "main":
                raise usage.UsageError("--announce/--channel/--to go with isolated jobs (--message)")
            params["delivery"] = delivery
        self["params"] = params

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        job = await self.call_admin(reactor, env, "cron.add", self["params"])
        if self["json"]:
            self.emit(out, job)
        else:
            out.write(f"Added {job['id']} ({job['name']}): {show_schedule(job['schedule'])}, next {show_time((job.get('state') or {}).get('nextRunAtMs'))}\n")


class CronEditOptions(JobFieldsOptions):
    synopsis = "<jobId> [--name ...] [--at|--every|--cron ...] [--system-event|--message ...] [options]"
    optFlags = [["enable", None, "Enable it."], ["disable", None, "Disable it."], ["keep-after-run", None, "Keep a one-shot job after it succeeds."]]

    def parseArgs(self, job_id: str) -> None:
        self["id"] = job_id

    def postOptions(self) -> None:
        self.check_choices()
        patch: dict[str, Any] = {}
        schedule = schedule_of(self, int(time.time() * 1000), False)
        if schedule is not None:
            patch["schedule"] = schedule
        payload = self.payload(False)
        if payload is not None:
            patch["payload"] = payload
        if self["enable"] and self["disable"]:
            raise usage.UsageError("choose --enable or --disable")
        if self["enable"] or self["disable"]:
            patch["enabled"] = bool(self["enable"])
        if self["delete-after-run"] or self["keep-after-run"]:
            patch["deleteAfterRun"] = bool(self["delete-after-run"])
        for option, name in (("name", "name"), ("description", "description"), ("agent", "agentId"), ("session-key", "sessionKey"), ("session", "sessionTarget"), ("wake", "wakeMode")):
            if self[option]:
                patch[name] = self[option]
        delivery = self.delivery()
        if delivery is not None:
            patch["delivery"] = delivery
        if not patch:
            raise usage.UsageError("nothing to change: give at least one option")
        self["patch"] = patch

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        job = await self.call_admin(reactor, env, "cron.update", {"id": self["id"], "patch": self["patch"]})
        if self["json"]:
            self.emit(out, job)
        else:
            out.write(f"Updated {job['id']} ({job['name']}): {show_schedule(job['schedule'])}, next {show_time((job.get('state') or {}).get('nextRunAtMs'))}\n")


class CronOptions(CommandOptions):
    synopsis = "status|list|get|add|edit|rm|enable|disable|run|runs"
    subCommands = [
        ["status", None, CronStatusOptions, "Scheduler status."],
        ["list", None, CronListOptions, "List jobs (--all: also disabled)."],
        ["get", None, CronGetOptions, "One job as JSON."],
        ["add", None, CronAddOptions, "Add a job."],
        ["edit", None, CronEditOptions, "Change a job."],
        ["rm", None, CronRemoveOptions, "Remove a job."],
        ["enable", None, CronEnableOptions, "Enable a job."],
        ["disable", None, CronDisableOptions, "Disable a job."],
        ["run", None, CronRunOptions, "Run a job now (--due: only if due)."],
        ["runs", None, CronRunsOptions, "A job's run history."],
    ]


class RemindOptions(CronCommand):
    synopsis = '"TEXT" (--in DURATION | --at WHEN) [--tz ZONE] [--session-key KEY]'
    longdesc = "A one-shot reminder: when it is due the agent is woken in the main session (or KEY) with it."
    optParameters = [
        ["in", None, None, "After DURATION (e.g. 20m, 1h30m)."],
        ["at", None, None, 'At WHEN: 17:00, "in 20m", or an ISO time.'],
        ["tz", None, None, "IANA zone for --at HH:MM."],
        ["session-key", None, None, "Session to remind (default: the main session)."],
    ]

    def parseArgs(self, *words: str) -> None:
        self["text"] = " ".join(words).strip()

    def postOptions(self) -> None:
        from openclaw.cron.tool import reminder_params

        if not self["text"]:
            raise usage.UsageError("give the reminder text")
        if bool(self["in"]) == bool(self["at"]):
            raise usage.UsageError("give --in DURATION or --at WHEN")
        now = int(time.time() * 1000)
        at_ms = parse_at("in " + self["in"] if self["in"] else self["at"], now, self["tz"])
        if at_ms <= now:
            raise usage.UsageError("that time has passed")
        self["params"] = reminder_params(self["text"], at_ms, self["session-key"])

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        job = await self.call_admin(reactor, env, "cron.add", self["params"])
        if self["json"]:
            self.emit(out, job)
        else:
            out.write(f"Reminder {job['id']} set for {show_time((job.get('state') or {}).get('nextRunAtMs'))}\n")


class HeartbeatLastOptions(CronCommand):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        last = await self.call_admin(reactor, env, "last-heartbeat", {})
        if self["json"] or last is None:
            self.emit(out, last)
        else:
            detail = last.get("reason") or last.get("preview") or ""
            out.write(f"{show_time(last.get('ts'))}  {last.get('status')}  {detail}\n")


class HeartbeatSwitchOptions(CronCommand):
    enabled = True

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        result = await self.call_admin(reactor, env, "set-heartbeats", {"enabled": self.enabled})
        if self["json"]:
            self.emit(out, result)
        else:
            out.write(f"Heartbeats {'enabled' if result.get('enabled') else 'disabled'} (until the gateway restarts)\n")


class HeartbeatEnableOptions(HeartbeatSwitchOptions):
    enabled = True


class HeartbeatDisableOptions(HeartbeatSwitchOptions):
    enabled = False


class HeartbeatOptions(CommandOptions):
    synopsis = "last|enable|disable"
    subCommands = [
        ["last", None, HeartbeatLastOptions, "The last heartbeat event."],
        ["enable", None, HeartbeatEnableOptions, "Switch heartbeats on."],
        ["disable", None, HeartbeatDisableOptions, "Switch heartbeats off."],
    ]


class SystemOptions(CommandOptions):
    synopsis = "heartbeat last|enable|disable"
    subCommands = [["heartbeat", None, HeartbeatOptions, "Heartbeat status and switch."]]
