# -*- test-case-name: tests.test_nodes -*-
"""
The node registry: connected nodes from both transports, their invokes
(with timeouts and idempotency), and what C{node.list} shows.

A transport registers a L{NodeLink}; the registry never sees sockets.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Collection, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from openclaw.coalesce import CoalescedJSON
from openclaw.nodes.pairing import MAX_NAME, MAX_NODE_ID
from openclaw.nodes.policy import allowed_commands
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.store import read_json

log = Logger(namespace="openclaw.nodes")

DEFAULT_INVOKE_TIMEOUT_MS = 15_000
MAX_INVOKE_TIMEOUT_MS = 10 * 60 * 1000
DEDUPE_TTL_MS = 5 * 60 * 1000
DEDUPE_MAX = 1000
MAX_PENDING_INVOKES = 1000


class NodeLink(Protocol):
    """What a transport offers the registry for one connected node."""

    transport_name: str  # "ws" or "bridge"

    def send_invoke(self, invoke_id: str, command: str, params_json: str | None, timeout_ms: int, idempotency_key: str | None) -> None: ...

    def disconnect(self, reason: str) -> None: ...


@attrs.define
class NodeInfo:
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    version: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    remote_ip: str | None = None
    caps: list[str] = attrs.field(factory=list)
    commands: list[str] = attrs.field(factory=list)
    permissions: dict[str, bool] = attrs.field(factory=dict)
    path_env: str | None = None

    @classmethod
    def from_fields(cls, node_id: str, fields: dict[str, Any], remote_ip: str | None = None) -> "NodeInfo":
        strings = lambda v: [x for x in v if isinstance(x, str)] if isinstance(v, list) else []  # noqa: E731
        return cls(
            node_id=node_id,
            display_name=fields.get("displayName"),
            platform=fields.get("platform"),
            version=fields.get("version"),
            device_family=fields.get("deviceFamily"),
            model_identifier=fields.get("modelIdentifier"),
            remote_ip=remote_ip,
            caps=strings(fields.get("caps")),
            commands=strings(fields.get("commands")),
            permissions={k: v for k, v in (fields.get("permissions") or {}).items() if isinstance(v, bool)} if isinstance(fields.get("permissions"), dict) else {},
            path_env=fields.get("pathEnv"),
        )

    @classmethod
    def from_connect(cls, node_id: str, client: dict[str, Any], params: dict[str, Any], remote_ip: str) -> "NodeInfo":
        """What a node said about itself in its WebSocket C{connect}."""
        fields = {k: client.get(k) for k in ("displayName", "platform", "version", "deviceFamily", "modelIdentifier")}
        fields.update({k: params.get(k) for k in ("caps", "commands", "permissions", "pathEnv")})
        return cls.from_fields(node_id, fields, remote_ip)


class Outcome:
    """One invoke's result, which any number of callers may wait for."""

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self._waiters: list[Deferred[Any]] = []

    def wait(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if self.done:
            self._deliver(d)
        else:
            self._waiters.append(d)
        return d

    def fire(self, value: Any) -> None:
        self.done, self.value = True, value
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._deliver(d)

    def _deliver(self, d: Deferred[Any]) -> None:
        if isinstance(self.value, Exception):
            d.errback(self.value)
        else:
            d.callback(self.value)


@attrs.define
class _Pending:
    outcome: Outcome
    node_id: str
    command: str
    timer: Any


class NodeRegistry:
    def __init__(self, clock: IReactorTime, state_dir: Path, allow: Collection[str] = (), deny: Collection[str] = ()) -> None:
        self.clock = clock
        self.allow = frozenset(allow)  # gateway.nodes.commands
        self.deny = frozenset(deny)
        self.links: dict[str, tuple[NodeLink, NodeInfo, int]] = {}
        self._pending: dict[str, _Pending] = {}
        self._dedupe: OrderedDict[str, tuple[int, Outcome]] = OrderedDict()
        self._names: dict[str, str] = {}
        self._names_path = Path(state_dir) / "nodes" / "names.json"
        self._names_file = CoalescedJSON(self._names_path, lambda: self._names, clock)
        self.last_seen: dict[str, tuple[int, str]] = {}

    def load(self) -> "NodeRegistry":
        """Read the operators' node names (at start, with the state dir locked); returns self."""
        stored = read_json(self._names_path, {})
        self._names = {
            k: v for k, v in (stored.items() if isinstance(stored, dict) else ()) if isinstance(v, str) and len(k) <= MAX_NODE_ID and len(v) <= MAX_NAME
        }
        return self

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- links

    def attach(self, info: NodeInfo, link: NodeLink) -> None:
        """A node connected; a second connection for the same node replaces the first."""
        previous = self.links.get(info.node_id)
        self.links[info.node_id] = (link, info, self.now_ms())
        if previous is not None and previous[0] is not link:
            previous[0].disconnect("replaced by a new connection")
        log.info("node {node} connected over {transport}", node=info.node_id, transport=link.transport_name)

    def detach(self, node_id: str, link: NodeLink) -> None:
        current = self.links.get(node_id)
        if current is None or current[0] is not link:
            return
        del self.links[node_id]
        self.last_seen[node_id] = (self.now_ms(), "disconnect")
        for invoke_id, pending in list(self._pending.items()):
            if pending.node_id == node_id:
                self._finish(invoke_id, GatewayError(UNAVAILABLE, "node disconnected", {"code": "NOT_CONNECTED", "nodeCommandDispatched": True}))

    def connected(self, node_id: str) -> bool:
        return node_id in self.links

    # -- listing

    def describe(self, node_id: str, known: dict[str, Any] | None = None) -> dict[str, Any]:
        link = self.links.get(node_id)
        entry: dict[str, Any] = {"nodeId": node_id, "paired": known is not None, "connected": link is not None}
        source = known or {}
        if link is not None:
            info = link[1]
            entry.update(
                {
                    "displayName": info.display_name,
                    "platform": info.platform,
                    "version": info.version,
                    "deviceFamily": info.device_family,
                    "modelIdentifier": info.model_identifier,
                    "remoteIp": info.remote_ip,
                    "caps": info.caps,
                    "commands": sorted(allowed_commands(info.commands, info.platform, self.allow, self.deny)),
                    "permissions": info.permissions,
                    "pathEnv": info.path_env,
                    "connectedAtMs": link[2],
                    "transport": link[0].transport_name,
                }
            )
        else:
            entry.update({k: source.get(k) for k in ("displayName", "platform", "version", "deviceFamily", "modelIdentifier", "remoteIp")})
            entry.update({"caps": source.get("caps") or [], "commands": source.get("commands") or []})
        if node_id in self._names:
            entry["displayName"] = self._names[node_id]
        if node_id in self.last_seen:
            entry["lastSeenAtMs"], entry["lastSeenReason"] = self.last_seen[node_id]
        return {k: v for k, v in entry.items() if v is not None}

    def rename(self, node_id: str, name: str, paired: set[str]) -> None:
        """
        Name a paired node. Names of nodes no longer paired are dropped, so the
        file holds at most one bounded name per paired node.
        """
        if node_id not in paired or not name or len(name) > MAX_NAME:
            raise ValueError(f"only a paired node can be renamed, to 1-{MAX_NAME} characters")
        self._names = {k: v for k, v in self._names.items() if k in paired}
        self._names[node_id] = name
        self._names_file.changed()

    def name(self, node_id: str) -> str | None:
        """The operator's name for a node, if it was renamed."""
        return self._names.get(node_id)

    def flush(self) -> None:
        self._names_file.flush()

    # -- invoke

    def invoke(self, node_id: str, command: str, params: Any, timeout_ms: int | None, idempotency_key: str | None) -> Deferred[Any]:
        """Send a command; the Deferred fires with the node's payload (or a GatewayError)."""
        self._expire_dedupe()
        if idempotency_key:
            cached = self._dedupe.get(f"{node_id}\0{idempotency_key}")
            if cached is not None:
                return cached[1].wait()
        link = self.links.get(node_id)
        if link is None:
            raise GatewayError(UNAVAILABLE, "node not connected", {"code": "NOT_CONNECTED", "nodeCommandDispatched": False})
        info = link[1]
        if command not in allowed_commands(info.commands, info.platform, self.allow, self.deny):
            reason = "not declared by the node" if command not in info.commands else "not allowed by gateway.nodes.commands"
            raise GatewayError(
                INVALID_REQUEST,
                f"node command not allowed: {command} ({reason}; allow it in gateway.nodes.commands.allow)",
                {"reason": reason, "command": command},
            )
        if len(self._pending) >= MAX_PENDING_INVOKES:
            raise GatewayError(UNAVAILABLE, "too many node invokes in flight", retryable=True, retry_after_ms=1000)
        timeout = min(max(int(timeout_ms or DEFAULT_INVOKE_TIMEOUT_MS), 1), MAX_INVOKE_TIMEOUT_MS)
        invoke_id = str(uuid.uuid4())
        outcome = Outcome()
        timer = self.clock.callLater(timeout / 1000, self._timeout, invoke_id)
        self._pending[invoke_id] = _Pending(outcome, node_id, command, timer)
        if idempotency_key:
            self._dedupe[f"{node_id}\0{idempotency_key}"] = (self.now_ms(), outcome)
            while len(self._dedupe) > DEDUPE_MAX:
                self._dedupe.popitem(last=False)
        link[0].send_invoke(invoke_id, command, None if params is None else json.dumps(params), timeout, idempotency_key)
        return outcome.wait()

    def _expire_dedupe(self) -> None:
        now = self.now_ms()
        while self._dedupe:
            at, outcome = next(iter(self._dedupe.values()))
            if now - at <= DEDUPE_TTL_MS or not outcome.done:
                break
            self._dedupe.popitem(last=False)

    def _timeout(self, invoke_id: str) -> None:
        pending = self._pending.get(invoke_id)
        if pending is not None:
            pending.timer = None
            self._finish(invoke_id, GatewayError(UNAVAILABLE, "invoke timeout", {"code": "TIMEOUT", "nodeCommandDispatched": True}))

    def _finish(self, invoke_id: str, outcome: Any) -> None:
        pending = self._pending.pop(invoke_id, None)
        if pending is None:
            return
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.outcome.fire(outcome)

    def result(self, invoke_id: str, node_id: str, ok: bool, payload: Any, payload_json: str | None, error: Any) -> bool:
        """A node's answer; False when no such invoke is pending (late or unknown)."""
        pending = self._pending.get(invoke_id)
        if pending is None or pending.node_id != node_id:
            return False
        if ok:
            if payload_json is None and payload is not None:
                payload_json = json.dumps(payload)
            if payload is None and payload_json is not None:
                try:
                    payload = json.loads(payload_json)
                except ValueError:
                    payload = None
            self._finish(invoke_id, {"ok": True, "nodeId": node_id, "command": pending.command, "payload": payload, "payloadJSON": payload_json})
        else:
            node_error = error if isinstance(error, dict) else {}
            code = INVALID_REQUEST if node_error.get("code") == INVALID_REQUEST else UNAVAILABLE
            message = str(node_error.get("message") or "node command failed")
            self._finish(invoke_id, GatewayError(code, message, {"nodeError": {"code": node_error.get("code"), "message": message}}))
        return True

