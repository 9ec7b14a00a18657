# -*- test-case-name: tests.test_cron_gateway -*-
"""
The scheduled-work methods: C{cron.*}, C{wake}, C{last-heartbeat},
C{set-heartbeats} (L{CRON_METHODS}, deps L{CronDeps}). Params are checked
against the caller's protocol generation (v3's closed shapes, or v4's) and
jobs are answered in its shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs

from openclaw.cron.heartbeat import HeartbeatRunner
from openclaw.cron.jobs import CronInputError, Job, shown, shown_entry
from openclaw.cron.service import CronService, JobNotFound
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Any_, Bool, Int, List, Obj, Str, check


@attrs.frozen
class CronDeps:
    """What the scheduled-work methods use (bound by L{openclaw.cron.wiring.install})."""

    cron: CronService
    heartbeat: HeartbeatRunner


CRON_METHODS: MethodTable[CronDeps] = MethodTable()
method = CRON_METHODS.method

ANY_OBJECT = Obj(rest=Any_())
_ID = Str(nonempty=True, max_length=200)
LIST_PAGE_MAX = 200
RUNS_PAGE_MAX = 200

_LIST4 = Obj(
    {
        "includeDisabled": Bool(),
        "limit": Int(1, LIST_PAGE_MAX),
        "offset": Int(0),
        "query": Str(),
        "enabled": Str(("all", "enabled", "disabled")),
        "scheduleKind": Str(("all", "at", "every", "cron", "on-exit", "stream")),
        "lastRunStatus": Str(("all", "ok", "error", "skipped", "unknown")),
        "trigger": Str(("all", "conditional", "unconditional")),
        "sortBy": Str(("nextRunAtMs", "updatedAtMs", "name")),
        "sortDir": Str(("asc", "desc")),
        "agentId": Str(nonempty=True),
        "compact": Bool(),
        "includeDeliveryPreviews": Bool(),
    },
    closed=True,
)
_STATUSES = Str(("ok", "error", "skipped"))
_DELIVERY_STATUSES = Str(("delivered", "not-delivered", "unknown", "not-requested"))
_RUNS4 = Obj(
    {
        "agentId": Str(nonempty=True),
        "scope": Str(("job", "all")),
        "id": _ID,
        "jobId": _ID,
        "runId": Str(nonempty=True),
        "limit": Int(1, RUNS_PAGE_MAX),
        "offset": Int(0),
        "statuses": List(_STATUSES),
        "status": Str(("all", "ok", "error", "skipped")),
        "deliveryStatuses": List(_DELIVERY_STATUSES),
        "deliveryStatus": _DELIVERY_STATUSES,
        "query": Str(),
        "sortDir": Str(("asc", "desc")),
    },
    closed=True,
)
_WAKE_FIELDS = {"mode": Str(("now", "next-heartbeat")), "text": Str(nonempty=True), "sessionKey": Str(nonempty=True), "agentId": Str(nonempty=True)}
SHAPES: dict[tuple[str, int], Obj] = {
    ("cron.status", 3): Obj(closed=True),
    ("cron.status", 4): Obj(closed=True),
    ("cron.list", 3): Obj({"includeDisabled": Bool()}, closed=True),
    ("cron.list", 4): _LIST4,
    ("cron.runs", 4): _RUNS4,
    ("wake", 3): Obj(_WAKE_FIELDS, required=("mode", "text"), closed=True),
    ("wake", 4): Obj(_WAKE_FIELDS, required=("mode", "text"), rest=Any_()),
}


def version_of(caller: Caller) -> int:
    return 4 if caller.version.number >= 4 else 3


def checked(name: str, params: Any, shape: Obj) -> dict[str, Any]:
    errors, _ = check(shape, params)
    if errors:
        raise GatewayError(INVALID_REQUEST, f"invalid {name} params: " + "; ".join(str(e) for e in errors[:5]))
    return params


def by_version(name: str, caller: Caller, params: Any) -> dict[str, Any]:
    return checked(name, params, SHAPES[(name, version_of(caller))])


def job_id(name: str, params: Any, extra: dict[str, Any], required: tuple[str, ...] = ()) -> str:
    """C{{id}} or C{{jobId}} (exactly one), with C{extra} fields."""
    errors: list[Any] = []
    for key in ("id", "jobId"):
        errors, _ = check(Obj({key: _ID, **extra}, required=(key, *required), closed=True), params)
        if not errors:
            return params[key]
    raise GatewayError(INVALID_REQUEST, f"invalid {name} params: give id (or jobId); " + "; ".join(str(e) for e in errors[:3]))


def not_found(job: str) -> GatewayError:
    return GatewayError(INVALID_REQUEST, f"cron job not found: {job}", {"code": "CRON_JOB_NOT_FOUND", "jobId": job})


def bad_input(name: str, e: CronInputError) -> GatewayError:
    return GatewayError(INVALID_REQUEST, f"invalid {name} params: {e}")


# -- status, list, get


@method("cron.status", ANY_OBJECT)
def cron_status(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    by_version("cron.status", caller, params)
    return deps.cron.status()


def _sort_key(job: Job, by: str) -> Any:
    if by == "name":
        return job.name.lower()
    if by == "updatedAtMs":
        return job.updated_ms
    return (job.state.next_run_ms is None, job.state.next_run_ms or 0)


@method("cron.list", ANY_OBJECT)
def cron_list(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    version = version_of(caller)
    p = by_version("cron.list", caller, params)
    cron = deps.cron
    if version == 3:
        return {"jobs": [shown(j, 3) for j in cron.list(bool(p.get("includeDisabled")))]}
    enabled = p.get("enabled") or ("all" if p.get("includeDisabled") else "enabled")
    jobs = cron.list(include_disabled=True)
    if enabled != "all":
        jobs = [j for j in jobs if j.enabled == (enabled == "enabled")]
    if p.get("scheduleKind", "all") != "all":
        jobs = [j for j in jobs if j.schedule["kind"] == p["scheduleKind"]]
    if p.get("lastRunStatus", "all") != "all":
        jobs = [j for j in jobs if (j.state.last_status or "unknown") == p["lastRunStatus"]]
    if p.get("trigger") == "conditional":
        jobs = []  # no conditional triggers here
    if p.get("agentId"):
        jobs = [j for j in jobs if (j.agent_id or "main") == p["agentId"]]
    query = (p.get("query") or "").strip().lower()
    if query:
        jobs = [j for j in jobs if query in " ".join([j.id, j.name, j.description or "", j.agent_id or "", j.display_name or ""]).lower()]
    jobs.sort(key=lambda j: _sort_key(j, p.get("sortBy", "nextRunAtMs")), reverse=p.get("sortDir") == "desc")
    total = len(jobs)
    offset = min(p.get("offset", 0), total)
    limit = p.get("limit") or max(1, min(LIST_PAGE_MAX, total or 50))
    page = jobs[offset : offset + limit]
    after = offset + len(page)
    revision = hashlib.sha256(json.dumps([[j.id, j.updated_ms] for j in jobs]).encode()).hexdigest()[:16]
    rows = [{**shown(j, 4), "effectiveAgentId": j.agent_id or cron.default_agent} for j in page]  # as upstream's list rows
    return {"jobs": rows, "snapshotRevision": revision, "total": total, "offset": offset, "limit": limit, "hasMore": after < total, "nextOffset": after if after < total else None}


@method("cron.get", ANY_OBJECT)
def cron_get(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    wanted = job_id("cron.get", params, {})
    try:
        return shown(deps.cron.get(wanted), version_of(caller))
    except JobNotFound:
        raise not_found(wanted)


# -- add, update, remove


@method("cron.add", ANY_OBJECT)
def cron_add(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    version = version_of(caller)
    try:
        job, created = deps.cron.add(params, version)
    except CronInputError as e:
        raise bad_input("cron.add", e)
    if version >= 4 and job.declaration_key:
        return {"created": created, "updated": not created, "job": shown(job, 4)}
    return shown(job, version)


_UPDATE_IGNORED = (Ignored("jobs live in their own store here, not in the config file: there is no config revision to check", {"expectedConfigRevision": Str(nonempty=True, max_length=128)}),)


@method("cron.update", ANY_OBJECT, ignored=_UPDATE_IGNORED)
def cron_update(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    version = version_of(caller)
    wanted = job_id("cron.update", params, {"patch": Any_()}, ("patch",))
    if not isinstance(params["patch"], dict):
        raise GatewayError(INVALID_REQUEST, "invalid cron.update params: patch must be an object")
    try:
        return shown(deps.cron.update(wanted, params["patch"], version), version)
    except JobNotFound:
        raise not_found(wanted)
    except CronInputError as e:
        raise bad_input("cron.update", e)


@method("cron.remove", ANY_OBJECT)
def cron_remove(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    wanted = job_id("cron.remove", params, {})
    return {"ok": True, "removed": deps.cron.remove(wanted)}


# -- run, runs


@method("cron.run", ANY_OBJECT)
async def cron_run(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    version = version_of(caller)
    modes = ("due", "force", "if-enabled") if version >= 4 else ("due", "force")
    extra = {"mode": Str(modes)}
    if version >= 4:
        extra["expectedProcessInstanceId"] = Str(nonempty=True)  # one process here: nothing to compare
    wanted = job_id("cron.run", params, extra)
    cron = deps.cron
    mode = params.get("mode", "due")
    try:
        job = cron.get(wanted)
        force = mode == "force" or (mode == "if-enabled" and job.enabled)
        run_id, finished = cron.run(wanted, force)
    except JobNotFound:
        raise not_found(wanted)
    if run_id is None or finished is None:
        reason = "already-running" if cron.is_running(wanted) else ("disabled" if mode == "if-enabled" else "not-due")
        return {"ok": True, "ran": False, "reason": reason}
    if version >= 4:
        return {"ok": True, "enqueued": True, "runId": run_id}
    await finished  # v3 answers when the run is over
    return {"ok": True, "ran": True}


@method("cron.runs", ANY_OBJECT)
def cron_runs(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    version = version_of(caller)
    cron = deps.cron
    if version == 3:
        try:
            entries = cron.entries(job_id("cron.runs", params, {"limit": Int(1, 5000)}))
        except ValueError:
            raise GatewayError(INVALID_REQUEST, "invalid cron.runs params: invalid job id")
        return {"entries": [shown_entry(e, 3) for e in entries[-params.get("limit", 200) :]]}
    p = by_version("cron.runs", caller, params)
    wanted: str | None = p.get("id") or p.get("jobId")
    scope = p.get("scope") or ("job" if wanted else "all")
    try:
        if scope == "all":
            entries = cron.runs.all_entries()
        elif not wanted:
            raise GatewayError(INVALID_REQUEST, "invalid cron.runs params: give id (or jobId), or scope all")
        else:
            entries = cron.entries(wanted)
            if not entries and wanted not in cron.jobs:
                raise not_found(wanted)
    except ValueError:
        raise GatewayError(INVALID_REQUEST, "invalid cron.runs params: invalid job id")
    if p.get("runId"):
        entries = [e for e in entries if e.get("runId") == p["runId"]]
    statuses = p.get("statuses") or ([p["status"]] if p.get("status") not in (None, "all") else None)
    if statuses:
        entries = [e for e in entries if e.get("status") in statuses]
    deliveries = p.get("deliveryStatuses") or ([p["deliveryStatus"]] if p.get("deliveryStatus") else None)
    if deliveries:
        entries = [e for e in entries if e.get("deliveryStatus", "not-requested") in deliveries]
    query = (p.get("query") or "").strip().lower()
    if query:
        entries = [e for e in entries if query in " ".join(str(e.get(k, "")) for k in ("summary", "error", "jobName", "jobId")).lower()]
    entries.sort(key=lambda e: (e.get("runAtMs", e["ts"]), e["ts"]), reverse=p.get("sortDir", "desc") == "desc")
    total = len(entries)
    offset = min(p.get("offset", 0), total)
    limit = p.get("limit", 50)
    page = entries[offset : offset + limit]
    after = offset + len(page)
    return {"entries": [shown_entry(e, 4) for e in page], "total": total, "offset": offset, "limit": limit, "hasMore": after < total, "nextOffset": after if after < total else None}


# -- wake and heartbeats


@method("wake", ANY_OBJECT)
def wake(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    """A system event for the main (or given) session; C{now} runs a heartbeat there at once."""
    p = by_version("wake", caller, params)
    try:
        deps.cron.wake(p["text"], p["mode"], p.get("sessionKey"), p.get("agentId"))
    except ValueError as e:
        raise GatewayError(INVALID_REQUEST, f"invalid wake params: {e}")
    return {"ok": True}


@method("last-heartbeat")
def last_heartbeat(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    return deps.heartbeat.last


@method("set-heartbeats", Obj({"enabled": Bool()}, required=("enabled",), closed=True))
def set_heartbeats(deps: CronDeps, caller: Caller, params: Params) -> JSON:
    deps.heartbeat.set_enabled(params["enabled"])
    return {"ok": True, "enabled": params["enabled"]}
