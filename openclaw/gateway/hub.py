# -*- test-case-name: tests.test_ws -*-
"""
The gateway hub: live connections, presence, health, broadcasts with
per-connection C{seq}, the tick and health timers, and the method table.

No sockets here: connections reach their peers through the small
L{openclaw.gateway.connection.Transport} interface; time comes from an
injected clock.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from openclaw import __version__
from openclaw.config.errors import ConfigError
from openclaw.config.loader import load_config
from openclaw.config.settings import GatewaySettings, check_config, resolve_auth
from openclaw.gateway.auth import FailureLimiter
from openclaw.gateway.devices import PairingStore
from openclaw.gateway.scopes import has_scope
from openclaw.nodes.pairing import NodePairingStore
from openclaw.nodes.registry import NodeRegistry
from openclaw.store import read_json, write_json
from openclaw.protocol.connect import APPROVALS, PAIRING, READ
from openclaw.protocol.versions import HEALTH_REFRESH_MS, TICK_INTERVAL_MS

if TYPE_CHECKING:
    from openclaw.gateway.connection import Connection

log = Logger(namespace="openclaw.gateway")

EVENTS_V3 = [
    "connect.challenge", "agent", "chat", "presence", "tick", "talk.mode", "shutdown", "health", "heartbeat",
    "cron", "node.pair.requested", "node.pair.resolved", "node.invoke.request", "device.pair.requested",
    "device.pair.resolved", "voicewake.changed", "exec.approval.requested", "exec.approval.resolved",
]
PRESENCE_MAX = 200
MAX_NODE_SUBSCRIPTIONS = 64
DEFAULT_TRIGGERS = ["openclaw", "claude", "computer"]
CONFIG_POLL_SECONDS = 2.0
_EVENT_SCOPE = {"agent": READ, "chat": READ, "device.pair.": PAIRING, "node.pair.": PAIRING, "exec.approval.": APPROVALS}
HEARTBEAT_OFF = {"enabled": False, "every": "0m", "everyMs": 0, "prompt": "", "target": "none", "ackMaxChars": 300}
_UNGATED = {"tick", "presence", "health", "heartbeat", "shutdown", "voicewake.changed", "talk.mode", "cron"}

Handler = Callable[["Connection", dict[str, Any]], Any | Awaitable[Any]]


def event_scope(name: str) -> str | None:
    """The scope a broadcast needs (None: every authenticated socket)."""
    if name in _UNGATED:
        return None
    for prefix, scope in _EVENT_SCOPE.items():
        if name == prefix or (prefix.endswith(".") and name.startswith(prefix)):
            return scope
    return READ  # unknown families are gated


class Hub:
    """Everything connections share in one gateway process."""

    def __init__(self, settings: GatewaySettings, clock: Any, methods: dict[str, Handler] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.boot_id = str(uuid.uuid4())
        self.started_ms = self.now_ms()
        self.pairing = PairingStore(settings.state_dir)
        limit = (settings.config.get("gateway", {}).get("auth", {}) or {}).get("rateLimit", {}) or {}
        self.limiter = FailureLimiter(
            clock,
            max_attempts=limit.get("maxAttempts", 10),
            window=limit.get("windowMs", 60_000) / 1000,
            lockout=limit.get("lockoutMs", 300_000) / 1000,
        )
        self.exempt_loopback = limit.get("exemptLoopback", True)
        self.connections: set[Connection] = set()
        self._sockets = 0
        self.nodes = NodeRegistry(clock, settings.state_dir, (settings.config.get("gateway") or {}).get("nodes") or {})
        self.node_pairing = NodePairingStore(settings.state_dir)
        self.methods: dict[str, Handler] = dict(methods or {})
        self.presence: dict[str, dict[str, Any]] = {}
        self.presence_version = 1
        self.health_version = 1
        self.health_cache: dict[str, Any] | None = None
        self.health_at_ms = 0
        # What status and health say about heartbeats: off until the scheduler (openclaw.cron.wiring) sets its own.
        self.heartbeat_info: Callable[[], dict[str, Any]] = lambda: dict(HEARTBEAT_OFF)
        self.hostname = socket.gethostname()
        self._tick = LoopingCall(self._send_tick)
        self._tick.clock = clock
        self._health = LoopingCall(self.refresh_health)
        self._health.clock = clock
        self.auth = settings.auth
        self.on_secrets: Callable[[tuple[str, ...]], None] = lambda secrets: None
        self.canvas_url: Callable[[], str | None] = lambda: None
        self.agent: Any = None  # the AgentRuntime, set by the service
        self._config_stamp = self._stat_config()
        self._watch = LoopingCall(self.check_config)
        self._watch.clock = clock

    # -- time

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def uptime_ms(self) -> int:
        return max(0, self.now_ms() - self.started_ms)

    # -- lifecycle

    def start(self) -> None:
        self.refresh_health()
        self._tick.start(TICK_INTERVAL_MS / 1000, now=False)
        self._health.start(HEALTH_REFRESH_MS / 1000, now=False)
        self._watch.start(CONFIG_POLL_SECONDS, now=False)

    def stop(self, reason: str = "gateway stopping") -> None:
        for loop in (self._tick, self._health, self._watch):
            if loop.running:
                loop.stop()
        self.broadcast("shutdown", {"reason": reason})
        for conn in list(self.connections):
            conn.close(1012, "service restart")

    # -- config reload (auth secrets take effect without a restart)

    def _stat_config(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.settings.layout.config_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check_config(self) -> None:
        stamp = self._stat_config()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        self.reload_config()

    def reload_config(self) -> None:
        """Re-read the config; a changed token or password applies to new connections
        and ends shared-secret sessions with 4001."""
        self._config_stamp = self._stat_config()
        try:
            loaded = load_config(self.settings.layout.config_path, self.settings.env)
            check_config(loaded)
        except ConfigError as e:
            log.warn("config reload skipped: {problem}", problem=e.describe())
            return
        auth = resolve_auth(loaded.config, loaded.env, self.settings.flags)
        if auth == self.auth:
            return
        self.auth = auth
        self.on_secrets(auth.secrets)
        log.info("gateway auth changed; closing shared-secret sessions")
        for conn in list(self.connections):
            if conn.auth_method in ("token", "password"):
                conn.close(4001, "gateway auth changed")

    # -- connections

    def open_sockets(self) -> int:
        """Sockets still open (a closing connection leaves the set at once)."""
        return self._sockets

    def socket_opened(self) -> None:
        self._sockets += 1

    def socket_closed(self) -> None:
        self._sockets -= 1

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        entry = conn.presence_entry()
        if entry is not None:
            self._set_presence(conn.presence_key, entry)

    def remove(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if conn.presence_key and conn.presence_key in self.presence:
            if not any(c.presence_key == conn.presence_key for c in self.connections):
                del self.presence[conn.presence_key]
                self.presence_version += 1
                self.broadcast("presence", {"presence": self.presence_list()}, drop_if_slow=True)

    def _set_presence(self, key: str | None, entry: dict[str, Any]) -> None:
        if not key:
            return
        self.presence[key] = entry
        while len(self.presence) > PRESENCE_MAX:
            oldest = min(self.presence, key=lambda k: self.presence[k]["ts"])
            del self.presence[oldest]
        self.presence_version += 1
        self.broadcast("presence", {"presence": self.presence_list()}, drop_if_slow=True)

    def update_presence(self, key: str, entry: dict[str, Any]) -> None:
        self._set_presence(key, {**self.presence.get(key, {}), **entry, "ts": self.now_ms()})

    def self_presence(self) -> dict[str, Any]:
        ip = "127.0.0.1"
        version = __version__
        return {
            "host": self.hostname,
            "ip": ip,
            "version": version,
            "platform": f"{platform.system().lower()} {platform.release()}",
            "deviceFamily": platform.system() or "Linux",
            "modelIdentifier": platform.machine() or "unknown",
            "mode": "gateway",
            "reason": "self",
            "text": f"Gateway: {self.hostname} ({ip}) · app {version} · mode gateway · reason self",
            "ts": self.now_ms(),
        }

    def presence_list(self) -> list[dict[str, Any]]:
        return [self.self_presence(), *sorted(self.presence.values(), key=lambda e: e["ts"])]

    def state_version(self) -> dict[str, int]:
        return {"presence": self.presence_version, "health": self.health_version}

    # -- health

    def health_snapshot(self) -> dict[str, Any]:
        if self.health_cache is None:
            self.refresh_health()
        assert self.health_cache is not None
        return self.health_cache

    def refresh_health(self) -> dict[str, Any]:
        started = time.monotonic()
        state = self.settings.state_dir
        sessions_path = str(state / "agents" / "main" / "sessions" / "sessions.json")
        heartbeat = self.heartbeat_info()
        snapshot = {
            "ok": True,
            "ts": self.now_ms(),
            "durationMs": int((time.monotonic() - started) * 1000),
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": heartbeat["everyMs"] // 1000 if heartbeat["enabled"] else 0,
            "defaultAgentId": "main",
            "agents": [
                {
                    "agentId": "main",
                    "isDefault": True,
                    "heartbeat": heartbeat,
                    "sessions": {"path": sessions_path, "count": 0, "recent": []},
                }
            ],
            "sessions": {"path": sessions_path, "count": 0, "recent": []},
        }
        self.health_cache = snapshot
        self.health_at_ms = self.now_ms()
        self.health_version += 1
        self.broadcast("health", snapshot)
        return snapshot

    # -- events

    def broadcast(self, name: str, payload: Any, drop_if_slow: bool = False) -> None:
        """Send an event to every authenticated socket allowed to see it."""
        scope = event_scope(name)
        versioned = self.state_version() if name in ("presence", "health") else None
        for conn in list(self.connections):
            if scope is not None and not (conn.role == "operator" and has_scope(conn.scopes, scope)):
                continue
            conn.send_event(name, payload, versioned, drop_if_slow)

    def broadcast_session(self, name: str, payload: Any, session_key: str, drop_if_slow: bool = False) -> None:
        """A session's chat/agent event: to readers, and to nodes subscribed to that session."""
        self.broadcast(name, payload, drop_if_slow)
        for conn in list(self.connections):
            if conn.role == "node" and session_key in conn.subscriptions:
                conn.send_event(name, payload, None, drop_if_slow)

    def broadcast_tool(self, payload: Any, session_key: str, verbose: bool) -> None:
        """Tool events: to readers that advertised cap "tool-events", or to all when the session is verbose."""
        for conn in list(self.connections):
            if conn.role == "operator" and has_scope(conn.scopes, READ) and (verbose or "tool-events" in conn.caps):
                conn.send_event("agent", payload, None, False)
            elif conn.role == "node" and session_key in conn.subscriptions:
                conn.send_event("agent", payload, None, False)

    def _send_tick(self) -> None:
        self.broadcast("tick", {"ts": self.now_ms()}, drop_if_slow=True)

    # -- voice wake words (shared by operators and nodes)

    def _voicewake_path(self) -> Any:
        return self.settings.state_dir / "settings" / "voicewake.json"

    def voicewake_triggers(self) -> list[str]:
        stored = read_json(self._voicewake_path(), None)
        triggers = stored.get("triggers") if isinstance(stored, dict) else None
        return triggers if isinstance(triggers, list) else list(DEFAULT_TRIGGERS)

    def set_voicewake_triggers(self, triggers: list[str]) -> list[str]:
        cleaned = [t.strip() for t in triggers if t.strip()][:32] or list(DEFAULT_TRIGGERS)
        write_json(self._voicewake_path(), {"triggers": cleaned, "updatedAtMs": self.now_ms()})
        self.broadcast("voicewake.changed", {"triggers": cleaned})
        return cleaned

    # -- node events

    def node_event(self, node_id: str | None, event: str, payload: Any, payload_json: Any, conn: Any = None) -> dict[str, Any]:
        """What the gateway does with a node's event; says whether it was handled."""
        if payload is None and isinstance(payload_json, str):
            try:
                payload = json.loads(payload_json)
            except ValueError:
                return {"ok": False, "event": event, "handled": False, "reason": "payloadJSON is not JSON"}
        data = payload if isinstance(payload, dict) else {}
        if event in ("chat.subscribe", "chat.unsubscribe") and conn is not None:
            key = data.get("sessionKey")
            if not isinstance(key, str) or not key:
                return {"ok": False, "event": event, "handled": False, "reason": "sessionKey required"}
            subscriptions = conn.subscriptions
            if event == "chat.subscribe" and len(subscriptions) < MAX_NODE_SUBSCRIPTIONS:
                subscriptions.add(key)
            else:
                subscriptions.discard(key)
            return {"ok": True, "event": event, "handled": True}
        if event in ("exec.started", "exec.finished", "exec.denied"):
            log.info("node {node} {event}: {command}", node=node_id, event=event, command=str(data.get("command", ""))[:200], exitCode=data.get("exitCode"))
            return {"ok": True, "event": event, "handled": True}
        if event == "node.presence.alive" and node_id:
            self.update_presence(node_id, {k: v for k, v in data.items() if k in ("displayName", "version", "platform", "deviceFamily", "modelIdentifier") and isinstance(v, str)} | {"mode": "node", "reason": "alive", "deviceId": node_id})
            return {"ok": True, "event": event, "handled": True}
        if event in ("voice.transcript", "agent.request"):
            text = data.get("text") if event == "voice.transcript" else data.get("message")
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "event": event, "handled": False, "reason": "text required" if event == "voice.transcript" else "message required"}
            default_key = "main" if event == "voice.transcript" else f"node-{node_id}"
            key = data.get("sessionKey") if isinstance(data.get("sessionKey"), str) and data.get("sessionKey") else default_key
            run_id = data.get("idempotencyKey") if isinstance(data.get("idempotencyKey"), str) else f"{event}-{uuid.uuid4()}"
            try:
                run, _ = self.agent.submit(key, text, run_id)
            except Exception as e:  # a bad key or a full queue: say so, keep the node connected
                return {"ok": False, "event": event, "handled": False, "reason": str(e)}
            return {"ok": True, "event": event, "handled": True, "runId": run.run_id}
        return {"ok": True, "event": event, "handled": False, "reason": "unknown event"}

    # -- methods

    def features(self) -> dict[str, list[str]]:
        return {"methods": sorted(self.methods), "events": list(EVENTS_V3)}

