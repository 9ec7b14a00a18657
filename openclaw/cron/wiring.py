# -*- test-case-name: tests.test_cron_gateway -*-
"""
Where scheduled work plugs into the gateway: L{ScheduledWork}, the service
that owns the cron scheduler and the heartbeat, and L{install}, which builds
it over the core's collaborators and hooks it in.

The ports of L{openclaw.cron.ports} are the core's own parts: the agent
runtime (C{core.agent}) is the agent port, the broadcaster (C{core.events})
the event port. Delivery into the session itself is L{SessionDelivery}; the
gateway wraps it in the channels' delivery
(L{openclaw.channels.wiring.ChannelDelivery}) so that C{last} and channel
ids reach chats.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceCollection, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.agent.runtime import AgentRuntime, text_message
from openclaw.agent.sessions import SessionError, agent_of
from openclaw.config.settings import GatewaySettings
from openclaw.cron.heartbeat import HeartbeatRunner, heartbeat_config
from openclaw.cron.methods import CRON_METHODS, CronDeps
from openclaw.cron.ports import AgentPort, DeliveryPort, DeliveryResult, DiskPort, EventPort
from openclaw.cron.service import CronService, cron_settings
from openclaw.cron.tool import cron_tool
from openclaw.gateway.core import GatewayCore
from openclaw.interfaces import SessionEvents

log = Logger(namespace="openclaw.cron")

INTERNAL_CHANNELS = ("last", "webchat")


class SessionDelivery:
    """
    L{openclaw.cron.ports.DeliveryPort} into the session itself: C{last}
    (and C{webchat}) means its transcript and its C{chat} events; any other
    channel is not available. With channels, it is what
    L{openclaw.channels.wiring.ChannelDelivery} falls back to.
    """

    def __init__(self, agent: AgentRuntime, events: SessionEvents) -> None:
        self.agent = agent
        self.events = events

    def deliver(
        self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False, account_id: str | None = None, thread_id: str | None = None
    ) -> Deferred[DeliveryResult]:
        if channel not in INTERNAL_CHANNELS:
            return succeed(DeliveryResult(False, channel, to, f"channel {channel!r} is not available (no messaging channels are configured in this gateway)"))
        message = text_message("assistant", text)
        if in_transcript:
            return succeed(self._announce(message, session_key, run_id))
        try:
            store = self.agent.store(agent_of(session_key))
            store.append_message(session_key, message)
        except (OSError, SessionError) as e:
            return succeed(DeliveryResult(False, "webchat", session_key, f"could not write to {session_key}: {e}"))
        # "final" (and "delivered") only once the line is on disk, as for a chat reply (the fsync runs off the reactor)
        d: Deferred[DeliveryResult] = store.flushed().addCallback(lambda _: self._announce(message, session_key, run_id))
        return d.addErrback(lambda f: DeliveryResult(False, "webchat", session_key, f"could not write to {session_key}: {f.getErrorMessage()}"))

    def _announce(self, message: dict[str, Any], session_key: str, run_id: str) -> DeliveryResult:
        self.events.to_session("chat", {"runId": run_id, "sessionKey": session_key, "seq": 0, "state": "final", "message": message}, session_key)
        return DeliveryResult(True, "webchat", session_key)


class ScheduledWork(Service):
    """The cron scheduler and the heartbeat, started and stopped with the gateway."""

    name = "scheduled-work"

    def __init__(self, settings: GatewaySettings, clock: IReactorTime, agent: AgentPort, events: EventPort, delivery: DeliveryPort, disk: DiskPort | None = None) -> None:
        config = settings.config
        self.heartbeat = HeartbeatRunner(heartbeat_config(config), clock, agent, events, delivery)
        self.cron = CronService(cron_settings(config, settings.state_dir, settings.env), clock, agent, events, delivery, self.heartbeat, disk=disk)

    def startService(self) -> None:
        # A child of the gateway service: it starts with the state dir locked.
        super().startService()
        self.cron.start()
        self.heartbeat.start()

    def quiesce(self) -> None:
        """Start nothing new (timers off); runs in flight end with the agent's. Idempotent."""
        self.heartbeat.stop()
        self.cron.stop()

    def stopService(self) -> None:
        self.quiesce()
        super().stopService()


def install(core: GatewayCore, parent: IServiceCollection, delivery: DeliveryPort | None = None) -> ScheduledWork:
    """
    Build scheduled work over C{core} and plug it in: its methods, the
    heartbeat health and status report, the agent's C{cron} tool (subject to
    C{tools.allow}/C{deny} like every tool), and its service under C{parent}.
    C{delivery}: where replies go (default: the session itself, see
    L{SessionDelivery}; the gateway passes the channels'). Call while
    building the gateway, before any client connects.
    """
    # the runtime's group commit: a run's bookkeeping is not an fsync on the reactor thread
    work = ScheduledWork(core.settings, core.clock, core.agent, core.events, delivery or SessionDelivery(core.agent, core.events), core.agent.syncer)
    core.serve(CRON_METHODS.bind(CronDeps(work.cron, work.heartbeat)))
    core.heartbeats.use(work.heartbeat.summary)
    core.agent.add_tool(cron_tool(work.cron))
    work.setServiceParent(parent)
    return work
