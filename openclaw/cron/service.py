# -*- test-case-name: tests.test_cron_service -*-
"""
The cron scheduler: jobs in a crash-safe store, one timer armed for the
next due job (re-armed on every change), runs bounded by
C{cron.maxConcurrentRuns}, and a run log per job.

Downtime: a job whose time came while the gateway was down runs once at
start-up (C{cron.missedRuns: "run-once"}, the default) or is recorded as
skipped (C{"skip"}); never once per missed occurrence. A run the gateway was
stopped in the middle of is recorded as an error. Clock jumps: each timer
fire looks at the wall clock again, and a timer is never armed for more than
an hour, so a clock set back is noticed within the hour.
"""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.cron import schedule as sched
from openclaw.cron.heartbeat import HeartbeatRunner, strip_token
from openclaw.cron.jobs import CronInputError, Job, apply_patch, new_job
from openclaw.cron.ports import KEY_ERRORS, AgentPort, DeliveryPort, DiskPort, EventPort
from openclaw.cron.store import JobStore, RunLog

log = Logger(namespace="openclaw.cron")

MAX_ARM_SECONDS = 3600.0
MAX_JOBS = 1000
SUMMARY_CHARS = 2000
POST_MAX_CHARS = 8000
ERROR_BACKOFF_MS = (30_000, 60_000, 5 * 60_000, 15 * 60_000, 60 * 60_000)
ONE_SHOT_ATTEMPTS = 3  # a one-shot that keeps failing is disabled after this many tries
MISSED_POLICIES = ("run-once", "skip")
Entries = list[dict[str, Any]]  # run log entries (a name: CronService.list hides the builtin in its body)


@attrs.frozen
class CronSettings:
    store_path: Path
    enabled: bool = True
    max_concurrent: int = 1
    missed: str = "run-once"
    problems: tuple[str, ...] = ()


def cron_settings(config: Mapping[str, Any], state_dir: Path, env: Mapping[str, str] | None = None) -> CronSettings:
    """The top-level C{cron} section (and C{OPENCLAW_SKIP_CRON=1})."""
    section: Mapping[str, Any] = config["cron"] if isinstance(config.get("cron"), dict) else {}
    problems = []
    store = section.get("store")
    path = Path(store).expanduser() if isinstance(store, str) and store.strip() else Path(state_dir) / "cron" / "jobs.json"
    enabled = section.get("enabled", True) is not False and (env or {}).get("OPENCLAW_SKIP_CRON") != "1"
    limit = section.get("maxConcurrentRuns", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 32:
        problems.append("cron.maxConcurrentRuns: expected 1 to 32; using 1")
        limit = 1
    missed = section.get("missedRuns", "run-once")
    if missed not in MISSED_POLICIES:
        problems.append(f"cron.missedRuns: expected run-once or skip, got {missed!r}; using run-once")
        missed = "run-once"
    return CronSettings(path, enabled, limit, missed, tuple(problems))


class JobNotFound(KeyError):
    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


@attrs.define
class Outcome:
    status: str
    error: str | None = None
    summary: str | None = None
    session_key: str | None = None
    delivered: bool | None = None
    delivery_status: str = "not-requested"
    model: str | None = None  # "provider/model", as the run reports it
    usage: Mapping[str, int] = attrs.field(factory=dict)  # the run's tokens (the agent's form)
    diagnostics: tuple[Mapping[str, Any], ...] = ()  # e.g. an exec denied for want of an approval


def run_usage(usage: Mapping[str, int]) -> dict[str, int]:
    """A run's tokens in the run log's shape (upstream's C{CronRunLogEntry.usage})."""
    names = {"input": "input_tokens", "output": "output_tokens", "total": "total_tokens", "cacheRead": "cache_read_tokens", "cacheWrite": "cache_write_tokens"}
    return {names[k]: v for k, v in usage.items() if k in names and isinstance(v, int)}


class CronService:
    def __init__(
        self,
        settings: CronSettings,
        clock: IReactorTime,
        agent: AgentPort,
        events: EventPort,
        delivery: DeliveryPort,
        heartbeat: HeartbeatRunner | None = None,
        agent_id: str = "main",
        disk: DiskPort | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.agent = agent
        self.events = events
        self.delivery = delivery
        self.heartbeat = heartbeat
        self.default_agent = agent_id
        self.store = JobStore(settings.store_path, disk)
        self.runs = RunLog(settings.store_path.parent / "runs", disk=disk)
        self.jobs: dict[str, Job] = {}
        self.running = False
        self._timer: IDelayedCall | None = None
        self._queue: deque[tuple[str, str]] = deque()  # (job id, run id)
        self._active: dict[str, str] = {}  # job id → run id
        self._waiters: dict[str, list[Deferred[dict[str, Any]]]] = {}  # run id → who waits for its log entry
        self._loaded = False
        self.on_change: Callable[[], None] = lambda: None
        self.finished: dict[str, int] = {}  # runs recorded since start, by status (ok, error, skipped): for /metrics

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- lifecycle

    def load(self) -> None:
        if not self._loaded:
            self.jobs = {job.id: job for job in self.store.load()}
            self._loaded = True

    def start(self) -> None:
        self.load()
        for problem in self.settings.problems:
            log.warn("config: {problem}", problem=problem)
        self.runs.prune_orphans(set(self.jobs), self.clock.seconds())
        if not self.settings.enabled:
            log.info("cron: disabled (jobs are kept but do not run)")
            return
        now = self.now_ms()
        for job in list(self.jobs.values()):
            self._recover(job, now)
        self._save()
        self.running = True
        self._arm()
        log.info("cron: started with {jobs} jobs, next wake {next}", jobs=len(self.jobs), next=self.next_wake())

    def stop(self) -> None:
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _recover(self, job: Job, now: int) -> None:
        """A job as the gateway finds it at start: interrupted runs, missed runs."""
        state = job.state
        if not job.enabled:
            state.next_run_ms = state.running_ms = None
            return
        if state.running_ms is not None:
            started = state.running_ms
            state.running_ms = None
            self._record(job, f"restart-{uuid.uuid4()}", started, now, Outcome("error", "interrupted: the gateway stopped during this run"))
        if state.next_run_ms is None:
            state.next_run_ms = self._first_run(job, now)
        elif state.next_run_ms <= now and self.settings.missed == "skip":
            missed_at = state.next_run_ms
            state.next_run_ms = None if job.one_shot else self._next_after(job, now)
            if job.one_shot:
                job.enabled = False
            self._record(job, f"missed-{uuid.uuid4()}", missed_at, now, Outcome("skipped", "missed while the gateway was down (cron.missedRuns: skip)"))
        elif state.next_run_ms > now and not job.one_shot:
            fresh = self._next_after(job, now)
            if fresh is not None and fresh < state.next_run_ms:
                state.next_run_ms = fresh  # the clock was set back, or the schedule moved

    # -- schedule math for one job

    def _schedule(self, job: Job, now: int) -> dict[str, Any]:
        if job.schedule["kind"] == "every" and "anchorMs" not in job.schedule:
            # A steady cadence in step with the creation time (also when the clock reads earlier).
            every, anchor = job.schedule["everyMs"], job.created_ms
            if now < anchor:
                anchor -= ((anchor - now) // every + 1) * every
            return {**job.schedule, "anchorMs": anchor}
        return job.schedule

    def _first_run(self, job: Job, now: int) -> int | None:
        if not job.enabled:
            return None
        if job.one_shot:
            return None if job.state.last_status == "ok" else job.schedule["atMs"]
        return self._next_after(job, now)

    def _next_after(self, job: Job, now: int) -> int | None:
        try:
            return sched.next_run(self._schedule(job, now), now, job.id)
        except sched.ScheduleError as e:
            log.warn("cron job {id}: {problem}", id=job.id, problem=str(e))
            return None

    def next_wake(self) -> int | None:
        times = [j.state.next_run_ms for j in self.jobs.values() if j.enabled and j.state.next_run_ms is not None and j.id not in self._active]
        return min(times) if times else None

    # -- the timer

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.running:
            return
        queued = {job_id for job_id, _ in self._queue}
        times = [j.state.next_run_ms for j in self.jobs.values() if j.enabled and j.state.next_run_ms is not None and j.id not in self._active and j.id not in queued]
        if not times:
            return
        delay = max(0.0, (min(times) - self.now_ms()) / 1000)
        self._timer = self.clock.callLater(min(delay, MAX_ARM_SECONDS), self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.now_ms()
        queued = {job_id for job_id, _ in self._queue}
        due = []
        for job in self.jobs.values():
            state = job.state
            if not job.enabled or state.next_run_ms is None or job.id in self._active or job.id in queued:
                continue
            if state.next_run_ms <= now:
                due.append(job)
            elif not job.one_shot:
                fresh = self._next_after(job, now)
                if fresh is not None and fresh < state.next_run_ms:
                    state.next_run_ms = fresh  # the clock went back: the stored time is too far out
        for job in sorted(due, key=lambda j: j.state.next_run_ms or 0):
            self._queue.append((job.id, f"cron-{uuid.uuid4()}"))
        self._pump()
        self._arm()

    def _pump(self) -> None:
        # Stopped (the gateway is shutting down): what waits stays queued, and is
        # found due again at the next start.
        while self.running and self._queue and len(self._active) < self.settings.max_concurrent:
            job_id, run_id = self._queue.popleft()
            job = self.jobs.get(job_id)
            if job is None or job_id in self._active:
                continue
            self._active[job_id] = run_id
            d = Deferred.fromCoroutine(self._execute(job, run_id))
            d.addErrback(self._crashed, job_id)

    def _crashed(self, failure: Failure, job_id: str) -> None:
        log.failure("cron job {id} crashed", failure, id=job_id)

    # -- running a job

    async def _execute(self, job: Job, run_id: str) -> None:
        started = self.now_ms()
        job.state.running_ms = started
        self._save_soon()
        self._emit(job.id, "started", runAtMs=started, runId=run_id)
        try:
            outcome = await self._perform(job, run_id)
        except Exception as e:  # a port that broke its promise: record it, keep scheduling
            log.failure("cron job {id} failed", id=job.id)
            outcome = Outcome("error", f"internal error: {e}")
        self._finish(job.id, run_id, started, outcome)

    async def _perform(self, job: Job, run_id: str) -> Outcome:
        agent_id = job.agent_id or self.default_agent
        if job.session_target == "main":
            text = job.payload["text"]
            try:
                key = self.agent.session_key(job.session_key, agent_id)
            except KEY_ERRORS as e:
                return Outcome("error", str(e))
            self.agent.enqueue_event(key, text)
            if job.wake_mode == "now" and self.heartbeat is not None:
                beat = await self.heartbeat.request(f"cron:{job.id}", key)
                status = {"ran": "ok", "skipped": "skipped"}.get(beat.status, "error")
                return Outcome(status, None if status == "ok" else f"heartbeat {beat.status}: {beat.reason}", text, key)
            return Outcome("ok", None, text, key)
        named = job.session_target.startswith("session:")
        try:
            key = self.agent.session_key(job.session_target[8:] if named else f"cron:{job.id}", agent_id)
        except KEY_ERRORS as e:
            return Outcome("error", str(e))
        message = f"[cron:{job.id} {job.name}] {job.payload['message']}"
        timeout = job.payload.get("timeoutSeconds")
        turn = await self.agent.run(key, message, run_id, timeout=float(timeout) if timeout else None, fresh=not named)
        if turn.status != "ok":
            error = "aborted (the run was stopped, or the gateway)" if turn.status == "aborted" else turn.error or turn.status
            outcome = Outcome("error", error, None, key, model=turn.model, usage=turn.usage, diagnostics=tuple(turn.diagnostics))
        else:
            outcome = Outcome("ok", None, turn.text.strip()[:SUMMARY_CHARS] or None, key, model=turn.model, usage=turn.usage, diagnostics=tuple(turn.diagnostics))
            await self._deliver(job, run_id, turn.text, outcome)
        self._post_to_main(job, agent_id, outcome, turn.text)
        return outcome

    async def _deliver(self, job: Job, run_id: str, text: str, outcome: Outcome) -> None:
        delivery = job.delivery
        if not delivery or delivery.get("mode") != "announce":
            return
        drop, cleaned = strip_token(text, heartbeat=False)
        if drop or cleaned == "NO_REPLY":
            outcome.delivery_status = "not-delivered"
            outcome.delivered = False
            return
        main = self.agent.session_key(None, job.agent_id or self.default_agent)
        thread = delivery.get("threadId")
        result = await self.delivery.deliver(
            cleaned, delivery.get("channel") or "last", delivery.get("to"), main, run_id, account_id=delivery.get("accountId"), thread_id=str(thread) if thread is not None else None
        )
        outcome.delivered = result.delivered
        outcome.delivery_status = "delivered" if result.delivered else "not-delivered"
        if not result.delivered and not delivery.get("bestEffort"):
            outcome.status = "error"
            outcome.error = f"delivery failed: {result.error}"

    def _post_to_main(self, job: Job, agent_id: str, outcome: Outcome, text: str) -> None:
        """An isolated run leaves a line for the main session (upstream's postToMain)."""
        isolation = job.isolation or {}
        prefix = (isolation.get("postToMainPrefix") or "Cron").strip() or "Cron"
        body = (outcome.summary or outcome.error or outcome.status).strip()
        if isolation.get("postToMainMode") == "full" and text.strip():
            limit = isolation.get("postToMainMaxChars", POST_MAX_CHARS)
            body = text.strip() if len(text.strip()) <= limit else text.strip()[:limit] + "…"
        label = prefix if outcome.status == "ok" else f"{prefix} ({outcome.status})"
        try:
            main = self.agent.session_key(None, agent_id)
        except KEY_ERRORS:
            return
        self.agent.enqueue_event(main, f"{label}: {body}")
        if job.wake_mode == "now" and self.heartbeat is not None:
            self.heartbeat.request(f"cron:{job.id}:post", main)

    def _finish(self, job_id: str, run_id: str, started: int, outcome: Outcome) -> None:
        self._active.pop(job_id, None)
        job = self.jobs.get(job_id)
        ended = self.now_ms()
        if job is None:  # removed while it ran: its log still says how it went
            self._record_entry(job_id, None, run_id, started, ended, outcome, None)
        else:
            state = job.state
            state.running_ms = None
            state.last_run_ms = started
            state.last_status = outcome.status
            state.last_error = outcome.error
            state.last_duration_ms = max(0, ended - started)
            state.last_delivered = outcome.delivered
            state.last_delivery_status = outcome.delivery_status
            state.consecutive_errors = state.consecutive_errors + 1 if outcome.status == "error" else 0
            deleted = False
            if job.one_shot:
                if outcome.status == "ok" and job.delete_after_run:
                    del self.jobs[job_id]
                    deleted = True
                elif outcome.status == "error" and state.consecutive_errors < ONE_SHOT_ATTEMPTS and job.enabled:
                    state.next_run_ms = ended + self._backoff(state.consecutive_errors)
                else:
                    job.enabled = False  # done (or given up on): kept to show how it went
                    state.next_run_ms = None
            elif job.enabled:
                nxt = self._next_after(job, ended)
                if outcome.status == "error" and nxt is not None:
                    nxt = max(nxt, ended + self._backoff(state.consecutive_errors))
                state.next_run_ms = nxt
            else:
                state.next_run_ms = None
            self._record_entry(job_id, job.name, run_id, started, ended, outcome, None if deleted else state.next_run_ms)
            if deleted:
                self._emit(job_id, "removed")
        self._save_soon()
        self._pump()
        self._arm()

    def _backoff(self, errors: int) -> int:
        return ERROR_BACKOFF_MS[min(max(errors, 1), len(ERROR_BACKOFF_MS)) - 1]

    def _record(self, job: Job, run_id: str, started: int, ended: int, outcome: Outcome) -> None:
        job.state.last_run_ms = started
        job.state.last_status = outcome.status
        job.state.last_error = outcome.error
        self._record_entry(job.id, job.name, run_id, started, ended, outcome, job.state.next_run_ms)

    def _record_entry(self, job_id: str, name: str | None, run_id: str, started: int, ended: int, outcome: Outcome, next_run: int | None) -> None:
        entry: dict[str, Any] = {"ts": ended, "jobId": job_id, "action": "finished", "status": outcome.status}
        self.finished[outcome.status] = self.finished.get(outcome.status, 0) + 1
        if outcome.error:
            entry["error"] = outcome.error
        if outcome.summary:
            entry["summary"] = outcome.summary
        entry.update(runAtMs=started, durationMs=max(0, ended - started))
        if next_run is not None:
            entry["nextRunAtMs"] = next_run
        if outcome.session_key:
            entry["sessionKey"] = outcome.session_key
        entry["runId"] = run_id
        if outcome.delivered is not None:
            entry["delivered"] = outcome.delivered
        entry["deliveryStatus"] = outcome.delivery_status
        if outcome.model:
            provider, slash, model = outcome.model.partition("/")
            entry["model"] = model if slash else provider
            if slash:
                entry["provider"] = provider
        if outcome.usage:
            entry["usage"] = run_usage(outcome.usage)
        if outcome.diagnostics:
            entry["diagnostics"] = {"summary": outcome.diagnostics[0]["message"], "entries": [dict(d) for d in outcome.diagnostics]}
        if name:
            entry["jobName"] = name
        try:
            self.runs.append(entry)
        except OSError as e:
            log.error("cron run log for {id} not written: {error}", id=job_id, error=str(e))
        event = {k: v for k, v in entry.items() if k not in ("ts", "action", "jobId", "delivered", "deliveryStatus", "model", "jobName")}
        self._emit(job_id, "finished", **event)
        for waiter in self._waiters.pop(run_id, []):
            waiter.callback(entry)

    # -- events and persistence

    def _emit(self, job_id: str, action: str, **fields: Any) -> None:
        self.events.emit("cron", {"jobId": job_id, "action": action, **{k: v for k, v in fields.items() if v is not None}})

    def _save_soon(self) -> None:
        """A run's bookkeeping: the jobs file in the next group commit (no disk wait on the reactor thread)."""
        if self.store.disk is None:
            self._save()
            return
        self.store.save_later(lambda: list(self.jobs.values()))
        self.on_change()

    def _save(self) -> None:
        try:
            self.store.save(list(self.jobs.values()))
        except OSError as e:
            log.error("cron store {path} not written: {error}", path=str(self.store.path), error=str(e))
            raise
        self.on_change()

    # -- the API the methods, the CLI and the agent tool use

    def get(self, job_id: str) -> Job:
        self.load()
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self, include_disabled: bool = False) -> list[Job]:
        self.load()
        jobs = [j for j in self.jobs.values() if include_disabled or j.enabled]
        return sorted(jobs, key=lambda j: (j.state.next_run_ms is None, j.state.next_run_ms or 0, j.created_ms))

    def add(self, params: Any, version: int) -> tuple[Job, bool]:
        """Add a job (or, with a known C{declarationKey}, update that one); C{(job, created)}."""
        self.load()
        job = new_job(params, version, self.now_ms())
        if job.declaration_key:
            for existing in self.jobs.values():
                if existing.declaration_key == job.declaration_key:
                    patch = {k: v for k, v in params.items() if k not in ("declarationKey", "owner")}
                    return self.update(existing.id, patch, version), False
        if len(self.jobs) >= MAX_JOBS:
            raise CronInputError(f"too many cron jobs (at most {MAX_JOBS}); remove some first")
        job.state.next_run_ms = self._first_run(job, job.created_ms)
        self.jobs[job.id] = job
        self._save()
        self._emit(job.id, "added", nextRunAtMs=job.state.next_run_ms)
        self._arm()
        return job, True

    def update(self, job_id: str, patch: Any, version: int) -> Job:
        old = self.get(job_id)
        job = apply_patch(old, patch, version, self.now_ms())
        if job.enabled:
            changed = job.schedule != old.schedule or not old.enabled
            if job.one_shot and changed:
                job.state.last_status = None if job.schedule != old.schedule else job.state.last_status
                job.state.consecutive_errors = 0
            if changed or job.state.next_run_ms is None:
                job.state.next_run_ms = self._first_run(job, self.now_ms())
        else:
            job.state.next_run_ms = None
        if job_id in self._active:
            job.state.running_ms = old.state.running_ms
        self.jobs[job_id] = job
        self._save()
        self._emit(job_id, "updated", nextRunAtMs=job.state.next_run_ms)
        self._arm()
        return job

    def remove(self, job_id: str) -> bool:
        self.load()
        if self.jobs.pop(job_id, None) is None:
            return False
        for queued, run_id in [q for q in self._queue if q[0] == job_id]:
            now = self.now_ms()  # a run asked for (cron.run) that will not happen now: its caller hears so
            for waiter in self._waiters.pop(run_id, []):
                waiter.callback({"ts": now, "jobId": queued, "action": "finished", "status": "skipped", "error": "the job was removed before it ran", "runId": run_id})
        self._queue = deque(q for q in self._queue if q[0] != job_id)
        self._save()
        self._emit(job_id, "removed")
        self._arm()
        return True

    def run(self, job_id: str, force: bool) -> tuple[str | None, Deferred[dict[str, Any]] | None]:
        """
        Run a job now (C{force}) or only when due: C{(run id, its log entry
        when it finishes)}, or C{(None, None)} when it is not due.
        """
        job = self.get(job_id)
        due = job.enabled and job.state.next_run_ms is not None and job.state.next_run_ms <= self.now_ms()
        if not (force or due) or job_id in self._active:
            return None, None
        run_id = f"cron-{uuid.uuid4()}"
        finished: Deferred[dict[str, Any]] = Deferred()
        self._waiters.setdefault(run_id, []).append(finished)
        self._queue = deque(q for q in self._queue if q[0] != job_id)
        self._queue.append((job_id, run_id))
        self._pump()
        self._arm()
        return run_id, finished

    def is_running(self, job_id: str) -> bool:
        return job_id in self._active

    def entries(self, job_id: str) -> Entries:
        return self.runs.entries(job_id)

    def status(self) -> dict[str, Any]:
        self.load()
        return {
            "enabled": self.settings.enabled,
            "storePath": str(self.store.path),
            "jobs": len(self.jobs),
            "nextWakeAtMs": self.next_wake() if self.settings.enabled else None,
        }

    def wake(self, text: str, mode: str, session_key: str | None = None, agent_id: str | None = None) -> None:
        """C{wake}: a system event for the session; C{now} also runs a heartbeat there."""
        key = self.agent.session_key(session_key, agent_id or self.default_agent)
        self.agent.enqueue_event(key, text)
        if mode == "now" and self.heartbeat is not None:
            self.heartbeat.request("wake", key)
