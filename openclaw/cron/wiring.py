# -*- test-case-name: tests.test_cron_gateway -*-
"""
The one place scheduled work meets today's gateway: the ports of
L{openclaw.cron.ports} over the hub and the agent runtime, and
L{ScheduledWork}, the service that owns the cron scheduler and the heartbeat.

Replacing the hub means replacing this module and nothing else in
C{openclaw.cron}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.agent.runtime import AgentRuntime, text_message
from openclaw.agent.sessions import SessionError, agent_of, canonical_key
from openclaw.cron.heartbeat import HeartbeatRunner, heartbeat_config
from openclaw.cron.ports import DeliveryResult, TurnOutcome
from openclaw.cron.service import CronService, cron_settings
from openclaw.cron.tool import cron_tool

log = Logger(namespace="openclaw.cron")

HEARTBEAT_FILE_CAP = 64 * 1024
INTERNAL_CHANNELS = ("last", "webchat")


class RuntimeAgent:
    """L{openclaw.cron.ports.AgentPort} over the L{AgentRuntime}."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime

    def session_key(self, key: str | None, agent_id: str | None = None) -> str:
        try:
            return canonical_key(key or "main", agent_id or "main")
        except SessionError as e:
            raise ValueError(str(e)) from None

    def enqueue_system_event(self, session_key: str, text: str) -> None:
        self.runtime.enqueue_event(session_key, text)

    def _pending(self, session_key: str) -> list[Any]:
        runs = [self.runtime.active.get(session_key), *self.runtime.queued.get(session_key, [])]
        return [r for r in runs if r is not None and not r.outcome.done]

    def busy(self, session_key: str) -> bool:
        return bool(self._pending(session_key))

    def idle(self, session_key: str) -> Deferred[None]:
        pending = self._pending(session_key)
        if not pending:
            return succeed(None)
        waited = pending[-1].outcome.wait()
        waited.addBoth(lambda _: self.idle(session_key))  # others may have queued meanwhile
        return waited

    def start_turn(self, session_key: str, message: str, run_id: str, quiet: bool = False, timeout: float | None = None, fresh: bool = False) -> Deferred[TurnOutcome]:
        runtime = self.runtime
        try:
            if fresh:
                runtime.store(agent_of(session_key)).reset(session_key)
            run, _ = runtime.submit(session_key, message, run_id, timeout=timeout, quiet=quiet)
        except Exception as e:  # a full queue, a bad key: the job's run fails, the scheduler goes on
            return succeed(TurnOutcome(run_id, session_key, "error", error=str(e) or type(e).__name__))
        waited = run.outcome.wait()
        waited.addCallback(lambda _: TurnOutcome(run.run_id, run.session_key, run.status, run.text, run.error, run.model))
        waited.addErrback(lambda f: TurnOutcome(run_id, session_key, "error", error=f.getErrorMessage()))
        return waited

    def heartbeat_file(self, agent_id: str | None = None) -> str | None:
        try:
            with open(self.runtime.workspace() / "HEARTBEAT.md", "rb") as f:
                return f.read(HEARTBEAT_FILE_CAP).decode("utf-8", "replace")
        except OSError:
            return None


class HubEvents:
    """L{openclaw.cron.ports.EventPort}: broadcasts to every socket (both events are ungated)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        self.hub.broadcast(name, payload, drop_if_slow=True)


class SessionDelivery:
    """
    L{openclaw.cron.ports.DeliveryPort} while the gateway has no messaging
    channels: C{last} (and C{webchat}) means the session itself — its
    transcript and its C{chat} events; any other channel is not available.
    """

    def __init__(self, runtime: AgentRuntime, hub: Any) -> None:
        self.runtime = runtime
        self.hub = hub

    def deliver(self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False) -> Deferred[DeliveryResult]:
        if channel not in INTERNAL_CHANNELS:
            return succeed(DeliveryResult(False, channel, to, f"channel {channel!r} is not available (no messaging channels are configured in this gateway)"))
        message = text_message("assistant", text)
        if not in_transcript:
            try:
                self.runtime.store(agent_of(session_key)).append_message(session_key, message)
            except (OSError, SessionError) as e:
                return succeed(DeliveryResult(False, "webchat", session_key, f"could not write to {session_key}: {e}"))
        self.hub.broadcast_session("chat", {"runId": run_id, "sessionKey": session_key, "seq": 0, "state": "final", "message": message}, session_key)
        return succeed(DeliveryResult(True, "webchat", session_key))


class ScheduledWork(Service):
    """The cron scheduler and the heartbeat, started and stopped with the gateway."""

    name = "scheduled-work"

    def __init__(self, hub: Any, runtime: AgentRuntime, clock: IReactorTime) -> None:
        settings = hub.settings
        self.agent = RuntimeAgent(runtime)
        self.events = HubEvents(hub)
        self.delivery = SessionDelivery(runtime, hub)
        self.heartbeat = HeartbeatRunner(heartbeat_config(dict(settings.config)), clock, self.agent, self.events, self.delivery)
        self.cron = CronService(cron_settings(dict(settings.config), settings.state_dir, settings.env), clock, self.agent, self.events, self.delivery, self.heartbeat)

    def startService(self) -> None:
        super().startService()
        self.cron.start()
        self.heartbeat.start()

    def stopService(self) -> None:
        self.heartbeat.stop()
        self.cron.stop()
        return super().stopService()


def tool_allowed(config: dict[str, Any], name: str) -> bool:
    """C{tools.allow}/C{tools.deny} as the agent's own tools read them."""
    section = config.get("tools") if isinstance(config.get("tools"), dict) else {}
    allow = section.get("allow") if isinstance(section.get("allow"), list) else None
    deny = section.get("deny") if isinstance(section.get("deny"), list) else []
    return name not in deny and (allow is None or name in allow)


def install(hub: Any, runtime: AgentRuntime, clock: IReactorTime) -> ScheduledWork:
    """Build scheduled work and hook it into the hub (methods, status, health) and the runtime (tool)."""
    work = ScheduledWork(hub, runtime, clock)
    hub.scheduled = work
    hub.heartbeat_info = work.heartbeat.summary
    if tool_allowed(dict(hub.settings.config), "cron"):
        runtime.extra_tools.append(cron_tool(work.cron))
    return work


def scheduled_work(hub: Any) -> ScheduledWork:
    """What the methods reach through the connection's hub."""
    work = getattr(hub, "scheduled", None)
    if not isinstance(work, ScheduledWork):
        raise LookupError("scheduled work is not running in this gateway")
    return work
