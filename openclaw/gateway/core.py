# -*- test-case-name: tests.test_core -*-
"""
L{GatewayCore}: every collaborator of one gateway, built in one place.

No sockets, no listeners: L{openclaw.service.GatewayService} adds those
around a core, and tests use a core alone with a L{Clock}. Building a core
reads no file; L{GatewayCore.load} does, once the state directory is locked,
and L{GatewayCore.start} starts the timers.

Who uses what (see docs/architecture.md for the picture):

  - connections (L{Gate}): handshake, hello, roster, methods, send stats;
  - the JSONL bridge (L{openclaw.bridge.session.BridgeEnv}, built by the
    service from these parts): node pairing, the node registry and events,
    presence, methods;
  - the HTTP API: bearer auth (auth state + failure limiter), the agent runner;
  - method handlers: their module's deps (L{GatewayDeps}, L{NodeDeps},
    L{AgentDeps}), bound once here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import treq
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.agent.approval_methods import APPROVAL_METHODS, ApprovalDeps
from openclaw.agent.approvals import ApprovalQueue, ExecGate
from openclaw.agent.chatview import CHAT_VIEW_METHODS, ChatViewDeps, session_info
from openclaw.agent.commands import ChatCommands
from openclaw.agent.methods import AGENT_METHODS, AgentDeps
from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.usage_methods import USAGE_METHODS, UsageDeps
from openclaw.config.settings import AuthSettings, GatewaySettings
from openclaw.gateway.absent import ABSENT_METHODS, AbsentDeps
from openclaw.gateway.auth import AuthState, FailureLimiter
from openclaw.gateway.boot import Boot
from openclaw.gateway.configwatch import ConfigWatch
from openclaw.gateway.connection import Gate
from openclaw.gateway.connections import Connections
from openclaw.gateway.devices import PairingStore
from openclaw.gateway.events import Broadcaster, StateVersion
from openclaw.gateway.handshake import Handshake
from openclaw.gateway.handshake.channel import ChannelAdmission
from openclaw.gateway.handshake.hello import Hello
from openclaw.gateway.health import ChannelReport, Health, HeartbeatReport
from openclaw.gateway.hostinfo import HOST_METHODS, HostDeps
from openclaw.gateway.inventory import INVENTORY_METHODS, InventoryDeps
from openclaw.gateway.methods import METHODS, GatewayDeps
from openclaw.gateway.presence import Presence
from openclaw.gateway.roster import Roster
from openclaw.gateway.scopes import has_scope
from openclaw.gateway.stability import Stability
from openclaw.gateway.subscriptions import FEED_METHODS, FeedDeps, SessionFeeds
from openclaw.gateway.voicewake import VoiceWake
from openclaw.logs import Redactor, gateway_redactor
from openclaw.nodes.events import NodeEvents
from openclaw.nodes.methods import NODE_METHODS, NodeDeps
from openclaw.nodes.pairing import NodePairingStore
from openclaw.nodes.registry import NodeRegistry
from openclaw.protocol.connect import APPROVALS
from openclaw.protocol.dispatch import Bound, Caller, Methods, Params
from openclaw.skills.methods import SKILL_METHODS, SkillDeps

log = Logger(namespace="openclaw.gateway")


class GatewayCore:
    """The collaborators of one gateway; each field is typed and built in L{__init__}."""

    def __init__(self, settings: GatewaySettings, clock: IReactorTime, redactor: Redactor | None = None, http: Any = treq, canvas_url: Callable[[], str | None] = lambda: None) -> None:
        self.settings = settings
        self.clock = clock
        self.redactor = redactor if redactor is not None else gateway_redactor(settings)
        self.boot = Boot(clock)

        # events to connections
        self.connections = Connections()
        self.versions = StateVersion()
        self.events = Broadcaster(self.connections, self.versions, clock)
        self.presence = Presence(self.boot, self.events, self.versions)

        # auth: secrets (hot-reloaded), failures, device pairing
        self.config = ConfigWatch(settings, clock)
        self.auth = AuthState(settings.auth, settings.flags)
        self.config.subscribe(self.auth.config_changed)
        self.auth.on_change.append(self._secrets_changed)
        limit = settings.rate_limit
        self.limiter = FailureLimiter(clock, max_attempts=limit.max_attempts, window=limit.window, lockout=limit.lockout)
        self.pairing = PairingStore(settings.state_dir)

        # agent runs (exec behind approvals; followed through the session feeds), nodes
        self.feeds = SessionFeeds(self.events.to_members, self.boot.now_ms, self.session_row)
        self.nodes = NodeRegistry(clock, settings.state_dir, settings.nodes.allow_commands, settings.nodes.deny_commands)
        self.approvals = ApprovalQueue(clock, self.events, self.redactor.scrub)
        self.exec_gate = ExecGate(settings, clock, self.approvals, approvers=lambda: self.approver_besides(None))
        self.agent = AgentRuntime(settings, clock, self.events, http=http, redactor=self.redactor, exec_gate=self.exec_gate, nodes=self.nodes, watch=self.feeds)
        self.commands = ChatCommands(self.agent)  # people's messages (WebSocket, channels): commands first
        self.node_pairing = NodePairingStore(settings.state_dir, clock)
        self.node_events = NodeEvents(self.presence, self.agent)
        self.voicewake = VoiceWake(settings.state_dir, self.boot, self.events)

        # what the gateway says about itself
        self.stability = Stability(clock, self.vitals)
        self.heartbeats = HeartbeatReport(settings.agents.heartbeat)
        self.health = Health(settings.agents, self.heartbeats, self.boot, self.events, self.versions, self.agent, self.stability, clock, ChannelReport(settings.channels))

        # methods, and what a connection is wired to
        self.methods = Methods()
        self.serve(METHODS.bind(GatewayDeps(settings, self.boot, self.connections, self.events, self.presence, self.health, self.stability, self.heartbeats, self.pairing, self.voicewake, self.config, self.agent)))
        self.serve(NODE_METHODS.bind(NodeDeps(self.nodes, self.node_pairing, self.pairing, self.events, self.node_events)))
        self.serve(AGENT_METHODS.bind(AgentDeps(self.agent, self.events, clock, self.commands)))
        self.serve(APPROVAL_METHODS.bind(ApprovalDeps(settings, self.exec_gate.file, self.approvals, self.nodes, self.approver_besides)))
        self.serve(USAGE_METHODS.bind(UsageDeps(self.agent)))
        self.serve(SKILL_METHODS.bind(SkillDeps(self.agent.skills, settings.agents.ids, clock)))
        # what the Control UIs read besides: chat views, session feeds, this host, the inventory, absent features
        self.serve(CHAT_VIEW_METHODS.bind(ChatViewDeps(self.agent)))
        self.serve(FEED_METHODS.bind(FeedDeps(self.feeds, self.agent.key, self._list_sessions, self.boot.now_ms)))
        self.serve(HOST_METHODS.bind(HostDeps(self.boot, self.stability, settings.state_dir, self.agent.workspace)))
        # (platform id, label) of the channel platforms this gateway runs: filled by channels/wiring.py
        self.channel_platforms: list[tuple[str, str]] = []
        self.serve(INVENTORY_METHODS.bind(InventoryDeps(settings, self.agent, lambda: self.channel_platforms)))
        self.serve(ABSENT_METHODS.bind(AbsentDeps()))
        hello = Hello(self.boot, self.presence, self.health, self.versions, self.methods, settings.layout.config_path, settings.state_dir, canvas_url)
        self.channel_admission = ChannelAdmission()  # role channel: the channels plug their access in
        handshake = Handshake(self.boot, self.auth, self.limiter, self.pairing, self.events, limit.exempt_loopback, settings.nodes.auto_approve_local, self.channel_admission)
        self.roster = Roster(self.connections, self.presence, self.nodes, self.voicewake)
        self.gate = Gate(clock, self.boot, handshake, hello, self.roster, self.methods, self.connections.stats)

    def serve(self, table: Mapping[str, Bound]) -> None:
        """Serve more methods (a subsystem's bound table); before any client connects."""
        self.methods.add(table)

    def approver_besides(self, caller: Caller | None) -> bool:
        """Whether a connection other than C{caller} (None: any) may answer exec approvals (C{operator.approvals})."""
        return any(c is not caller and c.role == "operator" and has_scope(c.scopes, APPROVALS) for c in self.connections)

    def _secrets_changed(self, auth: AuthSettings) -> None:
        # New secrets never reach a log line; sessions that used the old ones end.
        self.redactor.add(*auth.secrets)
        self.connections.close_where(lambda c: c.auth_method in ("token", "password"), 4001, "gateway auth changed")

    def session_row(self, key: str) -> dict[str, Any]:
        """A session's row for the feeds (its store's entry; none after a delete)."""
        return session_info(self.agent, key, self.agent.store(key.split(":", 2)[1]).get(key))

    def _list_sessions(self, caller: Caller, params: Params) -> Any:
        return self.methods["sessions.list"](caller, params)

    def vitals(self) -> dict[str, Any]:
        """Load figures for the stability record."""
        runs = {"active": len(self.agent.active), "queued": sum(len(q) for q in self.agent.queued.values())}
        return {"connections": len(self.connections), "sockets": self.connections.open_sockets(), "nodes": len(self.nodes.links), "runs": runs, "uptimeMs": self.boot.uptime_ms()}

    # -- lifecycle

    def load(self) -> None:
        """Read the stores (device and node pairing, node names): at start, with the state dir locked."""
        self.pairing.load()
        self.node_pairing.load()
        self.nodes.load()

    def start(self) -> None:
        self.stability.start()
        self.health.start()
        self.events.start()
        self.config.start()

    def stop(self, reason: str = "gateway stopping") -> None:
        """Abort runs, stop the timers, write what waits, say goodbye and close every connection (1012)."""
        self.agent.stop()
        self.events.stop()
        self.health.stop()
        self.config.stop()
        self.stability.stop()
        self.node_pairing.flush()
        self.nodes.flush()
        self.events.broadcast("shutdown", {"reason": reason})
        for conn in self.connections:
            conn.close(1012, "service restart")
