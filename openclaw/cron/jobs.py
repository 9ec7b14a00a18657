# -*- test-case-name: tests.test_cron_jobs -*-
"""
Cron jobs (sans-IO): the record, its stored form, the add/update params of
both protocol generations turned into it, and the job shown back in each
generation's shape (spec §11.1).

One canonical form is stored: C{at} schedules as C{atMs}; agent-turn delivery
in C{delivery} (v3's C{payload.deliver/channel/to} are read into it and shown
from it); C{sessionTarget} C{current} is stored as C{session:<key>}.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Mapping

import attrs

from openclaw.cron import schedule as sched
from openclaw.shape import Any_, Bool, Int, Kind, List, Obj, Str, check

MAX_NAME = 200
MAX_TEXT = 20_000
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
STATUSES = ("ok", "error", "skipped")
DELIVERY_STATUSES = ("delivered", "not-delivered", "unknown", "not-requested")


class CronInputError(ValueError):
    """Params that do not make a job; the message names the field."""


@attrs.define
class JobState:
    next_run_ms: int | None = None
    running_ms: int | None = None
    last_run_ms: int | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_duration_ms: int | None = None
    consecutive_errors: int = 0
    last_delivered: bool | None = None
    last_delivery_status: str | None = None


@attrs.define
class Job:
    id: str
    name: str
    enabled: bool
    created_ms: int
    updated_ms: int
    schedule: dict[str, Any]
    session_target: str  # main | isolated | session:<key>
    wake_mode: str  # now | next-heartbeat
    payload: dict[str, Any]
    description: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    delete_after_run: bool = False
    delivery: dict[str, Any] | None = None
    isolation: dict[str, Any] | None = None
    display_name: str | None = None
    declaration_key: str | None = None
    owner: dict[str, Any] | None = None
    state: JobState = attrs.field(factory=JobState)

    @property
    def one_shot(self) -> bool:
        return self.schedule["kind"] == "at"

    def label(self) -> str:
        return self.display_name or self.name


# -- stored form (cron/jobs.json)

_STATE_KEYS = {
    "nextRunAtMs": "next_run_ms",
    "runningAtMs": "running_ms",
    "lastRunAtMs": "last_run_ms",
    "lastStatus": "last_status",
    "lastError": "last_error",
    "lastDurationMs": "last_duration_ms",
    "consecutiveErrors": "consecutive_errors",
    "lastDelivered": "last_delivered",
    "lastDeliveryStatus": "last_delivery_status",
}
_OPTIONAL = {
    "description": "description",
    "agentId": "agent_id",
    "sessionKey": "session_key",
    "delivery": "delivery",
    "isolation": "isolation",
    "displayName": "display_name",
    "declarationKey": "declaration_key",
    "owner": "owner",
}


def state_json(state: JobState) -> dict[str, Any]:
    out = {}
    for name, attr in _STATE_KEYS.items():
        value = getattr(state, attr)
        if value is not None and not (attr == "consecutive_errors" and value == 0):
            out[name] = value
    return out


def to_stored(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "enabled": job.enabled,
        "deleteAfterRun": job.delete_after_run,
        "createdAtMs": job.created_ms,
        "updatedAtMs": job.updated_ms,
        "schedule": dict(job.schedule),
        "sessionTarget": job.session_target,
        "wakeMode": job.wake_mode,
        "payload": dict(job.payload),
        "state": state_json(job.state),
    }
    for name, attr in _OPTIONAL.items():
        value = getattr(job, attr)
        if value is not None:
            out[name] = value
    return out


def from_stored(raw: Any) -> Job:
    """A job read back from the store. @raise CronInputError: not a usable job."""
    if not isinstance(raw, dict):
        raise CronInputError("a job must be an object")
    try:
        if not isinstance(raw.get("id"), str) or not JOB_ID.match(raw["id"]):
            raise CronInputError("bad job id")
        schedule = _schedule(raw["schedule"], 3, "schedule", allow_at_string=True)
        payload, _ = _payload(raw["payload"], 4)
        target = raw.get("sessionTarget", "main")
        _check_target(target, payload)
        state_raw = raw["state"] if isinstance(raw.get("state"), dict) else {}
        state = JobState(**{attr: state_raw[name] for name, attr in _STATE_KEYS.items() if name in state_raw})
        job = Job(
            id=raw["id"],
            name=str(raw["name"]),
            enabled=bool(raw.get("enabled", True)),
            created_ms=int(raw.get("createdAtMs", 0)),
            updated_ms=int(raw.get("updatedAtMs", 0)),
            schedule=schedule,
            session_target=target,
            wake_mode=raw["wakeMode"] if raw.get("wakeMode") in ("now", "next-heartbeat") else "next-heartbeat",
            payload=payload,
            delete_after_run=bool(raw.get("deleteAfterRun", False)),
            state=state,
            **{attr: raw[name] for name, attr in _OPTIONAL.items() if raw.get(name) is not None},
        )
    except (KeyError, TypeError, ValueError, sched.ScheduleError) as e:
        raise CronInputError(str(e)) from None
    return job


# -- params → job fields

_AT3 = Obj({"kind": Str(("at",)), "atMs": Int(0)}, required=("kind", "atMs"), closed=True)
_AT4 = Obj({"kind": Str(("at",)), "at": Str(nonempty=True)}, required=("kind", "at"), closed=True)
_EVERY = Obj({"kind": Str(("every",)), "everyMs": Int(1, sched.MAX_MS), "anchorMs": Int(0, sched.MAX_MS)}, required=("kind", "everyMs"), closed=True)
_CRON3 = Obj({"kind": Str(("cron",)), "expr": Str(nonempty=True), "tz": Str()}, required=("kind", "expr"), closed=True)
_CRON4 = Obj({"kind": Str(("cron",)), "expr": Str(nonempty=True), "tz": Str(), "staggerMs": Int(0, sched.MAX_MS)}, required=("kind", "expr"), closed=True)

_EVENT3 = Obj({"kind": Str(("systemEvent",)), "text": Str(nonempty=True, max_length=MAX_TEXT)}, required=("kind", "text"), closed=True)
_EVENT4 = Obj({"kind": Str(("systemEvent",)), "text": Str(nonempty=True, max_length=MAX_TEXT), "toolsAllow": List(Str()), "toolsAllowIsDefault": Bool()}, required=("kind", "text"), closed=True)
_TURN3 = Obj(
    {
        "kind": Str(("agentTurn",)),
        "message": Str(nonempty=True, max_length=MAX_TEXT),
        "model": Str(),
        "thinking": Str(),
        "timeoutSeconds": Int(1, 86_400),
        "deliver": Bool(),
        "channel": Str(nonempty=True),
        "to": Str(),
        "bestEffortDeliver": Bool(),
    },
    required=("kind", "message"),
    closed=True,
)
_TURN4 = Obj(
    {
        "kind": Str(("agentTurn",)),
        "message": Str(nonempty=True, max_length=MAX_TEXT),
        "model": Str(),
        "fallbacks": List(Str()),
        "thinking": Str(),
        "timeoutSeconds": Any_(),
        "allowUnsafeExternalContent": Bool(),
        "lightContext": Bool(),
        "toolsAllow": List(Str()),
        "toolsAllowIsDefault": Bool(),
    },
    required=("kind", "message"),
    closed=True,
)
_ISOLATION = Obj({"postToMainPrefix": Str(), "postToMainMode": Str(("summary", "full")), "postToMainMaxChars": Int(0)}, closed=True)
_DESTINATION = Obj({"channel": Str(nonempty=True), "to": Str(nonempty=True), "accountId": Str(nonempty=True), "mode": Str(("announce", "webhook"))}, closed=True)
_DELIVERY = Obj(
    {
        "mode": Str(("none", "announce", "webhook")),
        "channel": Str(nonempty=True),
        "to": Str(nonempty=True),
        "threadId": Any_(),
        "accountId": Str(nonempty=True),
        "bestEffort": Bool(),
        "failureDestination": _DESTINATION,
        "completionDestination": Any_(),
    },
    required=("mode",),
    closed=True,
)
_OWNER = Obj({"agentId": Str(nonempty=True), "sessionKey": Str(nonempty=True), "accountId": Str(nonempty=True)}, closed=True)

_COMMON = {
    "name": Str(nonempty=True, max_length=MAX_NAME),
    "agentId": Any_(),
    "description": Str(max_length=MAX_TEXT),
    "enabled": Bool(),
    "deleteAfterRun": Bool(),
    "schedule": Any_(),
    "sessionTarget": Str(nonempty=True),
    "wakeMode": Str(("now", "next-heartbeat")),
    "payload": Any_(),
}
ADD3 = Obj({**_COMMON, "isolation": _ISOLATION}, required=("name", "schedule", "sessionTarget", "wakeMode", "payload"), closed=True)
ADD4 = Obj(
    {
        **_COMMON,
        "declarationKey": Str(nonempty=True, max_length=200),
        "displayName": Str(nonempty=True, max_length=200),
        "owner": _OWNER,
        "sessionKey": Any_(),
        "pacing": Any_(),
        "trigger": Any_(),
        "delivery": _DELIVERY,
        "failureAlert": Any_(),
    },
    required=("name", "schedule", "sessionTarget", "wakeMode", "payload"),
    closed=True,
)
PATCH3 = Obj({k: v for k, v in ADD3.fields.items()}, closed=True)
PATCH4 = Obj({**{k: v for k, v in ADD4.fields.items() if k not in ("declarationKey", "owner")}, "displayName": Any_(), "state": Any_()}, closed=True)


def _problems(kind: Kind, value: Any, path: str) -> None:
    errors, _ = check(kind, value)
    if errors:
        first = errors[0]
        where = f"{path}.{first.path}" if first.path else path
        raise CronInputError(f"{where}: {first.message}")


def _schedule(value: Any, version: int, path: str = "schedule", allow_at_string: bool = False) -> dict[str, Any]:
    """A schedule param (upstream's coercions first: a missing kind, an C{at} string) in canonical form."""
    if not isinstance(value, dict):
        raise CronInputError(f"{path}: expected an object")
    value = dict(value)
    if "kind" not in value:
        if "atMs" in value or "at" in value:
            value["kind"] = "at"
        elif "everyMs" in value:
            value["kind"] = "every"
        elif "expr" in value:
            value["kind"] = "cron"
    kind = value.get("kind")
    if kind == "at":
        if version >= 4 and "atMs" not in value:
            _problems(_AT4, value, path)
            at_ms = _instant(value["at"], path + ".at")
        else:
            if isinstance(value.get("atMs"), str) or (allow_at_string or version == 3) and isinstance(value.get("at"), str):
                raw = value.pop("atMs", None) if isinstance(value.get("atMs"), str) else value.pop("at")
                value["atMs"] = _instant(raw, path + ".atMs")
            value.pop("at", None)
            _problems(_AT3, value, path)
            at_ms = value["atMs"]
        return {"kind": "at", "atMs": at_ms}
    if kind == "every":
        _problems(_EVERY, value, path)
        return {k: value[k] for k in ("kind", "everyMs", "anchorMs") if k in value}
    if kind == "cron":
        _problems(_CRON4 if version >= 4 else _CRON3, value, path)
        out = {"kind": "cron", "expr": value["expr"].strip()}
        if value.get("tz", "").strip():
            out["tz"] = value["tz"].strip()
        if value.get("staggerMs"):
            out["staggerMs"] = value["staggerMs"]
        try:
            sched.check(out)
        except sched.ScheduleError as e:
            raise CronInputError(f"{path}: {e}") from None
        return out
    if kind in ("on-exit", "stream"):
        raise CronInputError(f"{path}.kind: {kind!r} schedules are not supported by this gateway (use at, every or cron)")
    raise CronInputError(f"{path}.kind: expected at, every or cron, got {kind!r}")


def _instant(raw: Any, path: str) -> int:
    try:
        return sched.parse_instant(str(raw))
    except sched.ScheduleError as e:
        raise CronInputError(f"{path}: {e}") from None


def _payload(value: Any, version: int, base: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """
    A payload param in canonical form, and the delivery v3 carried inside it
    (None: none asked). C{base}: the job's payload a patch merges into.
    """
    if not isinstance(value, dict):
        raise CronInputError("payload: expected an object")
    kind = value.get("kind")
    if base is not None and kind == base.get("kind"):
        value = {**{k: v for k, v in base.items() if k != "kind"}, **value}
    if kind == "systemEvent":
        _problems(_EVENT4 if version >= 4 else _EVENT3, value, "payload")
        if value.get("toolsAllow") is not None and not value.get("toolsAllowIsDefault"):
            raise CronInputError("payload.toolsAllow: per-job tool lists are not supported by this gateway")
        return {"kind": "systemEvent", "text": value["text"].strip()}, None
    if kind == "agentTurn":
        _problems(_TURN4 if version >= 4 else _TURN3, value, "payload")
        if value.get("model"):
            raise CronInputError("payload.model: per-job models are not supported by this gateway (the agent's configured model runs)")
        if value.get("fallbacks"):
            raise CronInputError("payload.fallbacks: per-job fallbacks are not supported by this gateway")
        if value.get("toolsAllow") is not None and not value.get("toolsAllowIsDefault"):
            raise CronInputError("payload.toolsAllow: per-job tool lists are not supported by this gateway")
        out: dict[str, Any] = {"kind": "agentTurn", "message": value["message"].strip()}
        if value.get("thinking"):
            out["thinking"] = value["thinking"]
        timeout = value.get("timeoutSeconds")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0 or timeout > 86_400:
                raise CronInputError("payload.timeoutSeconds: expected seconds from 0 to 86400")
            if timeout:
                out["timeoutSeconds"] = int(timeout)
        delivery = None
        deliver = value.get("deliver")
        if version == 3 and (deliver or (deliver is None and value.get("to"))):
            delivery = {"mode": "announce", "channel": value.get("channel") or "last"}
            if value.get("to"):
                delivery["to"] = value["to"]
            if value.get("bestEffortDeliver"):
                delivery["bestEffort"] = True
        return out, delivery
    if kind in ("command", "script", "heartbeat", "skillCollectionReview"):
        raise CronInputError(f"payload.kind: {kind!r} payloads are not supported by this gateway (use systemEvent or agentTurn)")
    raise CronInputError(f"payload.kind: expected systemEvent or agentTurn, got {kind!r}")


def _delivery(value: Any) -> dict[str, Any] | None:
    _problems(_DELIVERY, value, "delivery")
    if value["mode"] == "webhook":
        raise CronInputError("delivery.mode: webhook delivery is not supported by this gateway (use announce or none)")
    for name in ("failureDestination", "completionDestination"):
        if value.get(name):
            raise CronInputError(f"delivery.{name}: not supported by this gateway")
    if value["mode"] == "none":
        return None
    return {k: v for k, v in value.items() if k in ("mode", "channel", "to", "accountId", "threadId", "bestEffort")}


def _target(raw: str, version: int, session_key: str | None) -> str:
    if raw in ("main", "isolated"):
        return raw
    if version >= 4 and raw == "current":
        if not session_key:
            raise CronInputError("sessionTarget: \"current\" needs sessionKey (the session the job belongs to)")
        return f"session:{session_key}"
    if version >= 4 and raw.startswith("session:") and raw[8:].strip():
        return raw
    allowed = "main, isolated" + (", current or session:<key>" if version >= 4 else "")
    raise CronInputError(f"sessionTarget: expected {allowed}, got {raw!r}")


def _check_target(target: str, payload: Mapping[str, Any]) -> None:
    if target == "main" and payload.get("kind") != "systemEvent":
        raise CronInputError('main-session jobs need payload.kind "systemEvent" (isolated jobs run an agentTurn)')
    if target != "main" and payload.get("kind") != "agentTurn":
        raise CronInputError(f'{target.split(":")[0]} jobs need payload.kind "agentTurn" (main-session jobs take a systemEvent)')


def _agent_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CronInputError("agentId: expected a string or null")
    cleaned = value.strip().lower()
    if not cleaned:
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", cleaned):
        raise CronInputError(f"agentId: invalid agent id {value!r}")
    return cleaned


def _session_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 512 or any(ord(c) < 32 for c in value):
        raise CronInputError("sessionKey: expected a session key")
    return value.strip() or None


def _unsupported(params: Mapping[str, Any]) -> None:
    if params.get("pacing"):
        raise CronInputError("pacing: dynamic cadence is not supported by this gateway")
    if params.get("trigger"):
        raise CronInputError("trigger: conditional (script) triggers are not supported by this gateway")
    if params.get("failureAlert") not in (None, False):
        raise CronInputError("failureAlert: failure alerts are not supported by this gateway")


def normalize_add(params: Any) -> dict[str, Any]:
    """Upstream's lenient reading before the closed check: defaults and coercions."""
    if not isinstance(params, dict):
        return params
    out = dict(params)
    for wrapper in ("data", "job"):
        if isinstance(out.get(wrapper), dict) and "schedule" not in out:
            out = dict(out[wrapper])
    if isinstance(out.get("enabled"), str) and out["enabled"].strip().lower() in ("true", "false"):
        out["enabled"] = out["enabled"].strip().lower() == "true"
    out.setdefault("wakeMode", "next-heartbeat")
    payload = out.get("payload")
    if "sessionTarget" not in out and isinstance(payload, dict):
        out["sessionTarget"] = {"systemEvent": "main", "agentTurn": "isolated"}.get(str(payload.get("kind")), "main")
    return out


def new_job(params: Any, version: int, now: int) -> Job:
    """A job from C{cron.add} params. @raise CronInputError."""
    params = normalize_add(params)
    _problems(ADD4 if version >= 4 else ADD3, params, "")
    _unsupported(params)
    session_key = _session_key(params.get("sessionKey"))
    schedule = _schedule(params["schedule"], version)
    payload, v3_delivery = _payload(params["payload"], version)
    target = _target(params["sessionTarget"], version, session_key)
    _check_target(target, payload)
    delivery = _delivery(params["delivery"]) if params.get("delivery") is not None else v3_delivery
    job = Job(
        id=str(uuid.uuid4()),
        name=params["name"].strip(),
        enabled=params.get("enabled", True),
        created_ms=now,
        updated_ms=now,
        schedule=schedule,
        session_target=target,
        wake_mode=params["wakeMode"],
        payload=payload,
        description=(params.get("description") or "").strip() or None,
        agent_id=_agent_id(params.get("agentId")),
        session_key=session_key,
        delete_after_run=bool(params.get("deleteAfterRun", False)),
        delivery=delivery if target != "main" else None,
        isolation=params.get("isolation") or None,
        display_name=params.get("displayName"),
        declaration_key=params.get("declarationKey"),
        owner=params.get("owner"),
    )
    return job


def apply_patch(job: Job, patch: Any, version: int, now: int) -> Job:
    """A copy of C{job} with C{patch} (C{cron.update}) applied. @raise CronInputError."""
    _problems(PATCH4 if version >= 4 else PATCH3, patch, "patch")
    _unsupported(patch)
    if patch.get("state") is not None:
        raise CronInputError("patch.state: a job's run state is the scheduler's; it cannot be patched")
    new = attrs.evolve(job, state=attrs.evolve(job.state))
    if "name" in patch:
        new.name = patch["name"].strip()
    if "description" in patch:
        new.description = (patch["description"] or "").strip() or None
    if "enabled" in patch:
        new.enabled = patch["enabled"]
    if "deleteAfterRun" in patch:
        new.delete_after_run = patch["deleteAfterRun"]
    if "agentId" in patch:
        new.agent_id = _agent_id(patch["agentId"])
    if "sessionKey" in patch:
        new.session_key = _session_key(patch["sessionKey"])
    if "displayName" in patch:
        if patch["displayName"] is not None and (not isinstance(patch["displayName"], str) or not patch["displayName"].strip()):
            raise CronInputError("patch.displayName: expected a non-empty string or null")
        new.display_name = patch["displayName"]
    if "schedule" in patch:
        new.schedule = _schedule(patch["schedule"], version, "patch.schedule")
    if "wakeMode" in patch:
        new.wake_mode = patch["wakeMode"]
    if "isolation" in patch:
        new.isolation = patch["isolation"] or None
    v3_delivery = None
    if "payload" in patch:
        new.payload, v3_delivery = _payload(patch["payload"], version, job.payload)
    if "sessionTarget" in patch:
        new.session_target = _target(patch["sessionTarget"], version, new.session_key)
    if patch.get("delivery") is not None:
        new.delivery = _delivery(patch["delivery"])
    elif version == 3 and "payload" in patch and new.payload["kind"] == "agentTurn":
        new.delivery = v3_delivery
    if new.session_target == "main":
        new.delivery = None
    _check_target(new.session_target, new.payload)
    new.updated_ms = now
    return new


# -- jobs shown to clients


def shown(job: Job, version: int) -> dict[str, Any]:
    """C{CronJob} in the caller's protocol generation."""
    out: dict[str, Any] = {"id": job.id}
    if job.agent_id:
        out["agentId"] = job.agent_id
    out["name"] = job.name
    if job.description:
        out["description"] = job.description
    out.update(enabled=job.enabled, deleteAfterRun=job.delete_after_run, createdAtMs=job.created_ms, updatedAtMs=job.updated_ms)
    schedule = dict(job.schedule)
    payload = dict(job.payload)
    state = job.state
    state_out: dict[str, Any] = {}
    for name, attr in (("nextRunAtMs", "next_run_ms"), ("runningAtMs", "running_ms"), ("lastRunAtMs", "last_run_ms")):
        if getattr(state, attr) is not None:
            state_out[name] = getattr(state, attr)
    if version >= 4:
        for name in ("sessionKey", "displayName", "declarationKey", "owner"):
            value = getattr(job, _OPTIONAL[name])
            if value is not None:
                out[name] = value
        if schedule["kind"] == "at":
            schedule = {"kind": "at", "at": sched.iso_ms(schedule["atMs"])}
        out.update(schedule=schedule, sessionTarget=job.session_target, wakeMode=job.wake_mode, payload=payload)
        if job.delivery:
            out["delivery"] = dict(job.delivery)
        if state.last_status:
            state_out["lastRunStatus"] = state.last_status
            state_out["lastStatus"] = state.last_status
        for name, attr in (("lastError", "last_error"), ("lastDurationMs", "last_duration_ms"), ("lastDelivered", "last_delivered"), ("lastDeliveryStatus", "last_delivery_status")):
            if getattr(state, attr) is not None:
                state_out[name] = getattr(state, attr)
        if state.consecutive_errors:
            state_out["consecutiveErrors"] = state.consecutive_errors
    else:
        schedule.pop("staggerMs", None)
        if payload["kind"] == "agentTurn":
            delivery = job.delivery or {}
            payload["channel"] = delivery.get("channel", "last")
            if delivery:
                payload["deliver"] = True
            if delivery.get("to"):
                payload["to"] = delivery["to"]
            if delivery.get("bestEffort"):
                payload["bestEffortDeliver"] = True
        # v3 knows main and isolated; a job bound to a named session runs like an isolated one.
        out.update(schedule=schedule, sessionTarget="main" if job.session_target == "main" else "isolated", wakeMode=job.wake_mode, payload=payload)
        if job.isolation:
            out["isolation"] = dict(job.isolation)
        if state.last_status:
            state_out["lastStatus"] = state.last_status
        for name, attr in (("lastError", "last_error"), ("lastDurationMs", "last_duration_ms")):
            if getattr(state, attr) is not None:
                state_out[name] = getattr(state, attr)
    out["state"] = state_out
    return out


_ENTRY3 = ("ts", "jobId", "action", "status", "error", "summary", "runAtMs", "durationMs", "nextRunAtMs")


def shown_entry(entry: Mapping[str, Any], version: int) -> dict[str, Any]:
    """A run log line as C{CronRunLogEntry} of the caller's generation."""
    if version >= 4:
        return dict(entry)
    return {k: entry[k] for k in _ENTRY3 if k in entry}
