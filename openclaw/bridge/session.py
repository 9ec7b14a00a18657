# -*- test-case-name: tests.test_bridge -*-
"""
One node on the legacy TCP JSONL bridge (spec §5.4), without sockets: lines
in, frames out through C{send(dict)}, C{disconnect()} to hang up.

States: C{new} → C{pairing} (waiting for an operator) → C{ready} → C{closed}.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.gateway.boot import Boot
from openclaw.gateway.core import GatewayCore
from openclaw.interfaces import EventSink, PresenceSink
from openclaw.nodes.events import NodeEvents
from openclaw.nodes.pairing import MAX_NODE_ID, FieldError, NodePairingStore, check_fields
from openclaw.nodes.registry import NodeInfo, NodeRegistry
from openclaw.protocol.dispatch import Methods, run
from openclaw.protocol.errors import INVALID_REQUEST, NOT_PAIRED, GatewayError, InvalidInput
from openclaw.protocol.versions import PREAUTH_MAX_PAYLOAD, V3

log = Logger(namespace="openclaw.bridge")

UNAUTHORIZED = "UNAUTHORIZED"
HANDSHAKE_TIMEOUT = 30.0
PAIR_POLL = 0.25
PAIR_WAIT = 5 * 60.0
PING_INTERVAL = 60.0
IDLE_LIMIT = 180.0
PRESENCE_INTERVAL = 180.0
# Before hello-ok a line is a hello or a pair request: small (as the WebSocket's pre-auth cap).
PREAUTH_MAX_LINE = PREAUTH_MAX_PAYLOAD
# Methods a bridge node may call (upstream's small allowlist, as far as they exist here).
ALLOWED_METHODS = frozenset({"health", "voicewake.get", "voicewake.set", "config.get", "node.event", "skills.bins"})
_STRING_FIELDS = ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier")


@attrs.frozen
class BridgeEnv:
    """What every bridge session is wired to (built by L{openclaw.gateway.core.GatewayCore})."""

    clock: IReactorTime
    boot: Boot
    pairing: NodePairingStore
    nodes: NodeRegistry
    node_events: NodeEvents
    presence: PresenceSink
    events: EventSink
    methods: Methods
    canvas_url: Callable[[], str | None] = lambda: None

    @classmethod
    def of(cls, core: GatewayCore, canvas_url: Callable[[], str | None] = lambda: None) -> BridgeEnv:
        """The parts of a gateway core a bridge session uses."""
        return cls(core.clock, core.boot, core.node_pairing, core.nodes, core.node_events, core.presence, core.events, core.methods, canvas_url)


class BridgeSession:
    transport_name = "bridge"

    def __init__(self, env: BridgeEnv, send: Callable[[dict[str, Any]], None], disconnect: Callable[[], None], remote_ip: str) -> None:
        self.env = env
        self._send = send
        self._disconnect = disconnect
        self.remote_ip = remote_ip
        self.state = "new"
        self.node_id: str | None = None
        self.info: NodeInfo | None = None
        self.last_heard = 0.0
        self.pings = 0
        self._timers: list[Any] = []
        self._pair_poll: LoopingCall | None = None
        # What method handlers read from their caller.
        self.role = "node"
        self.scopes: list[str] = []
        self.device_id: str | None = None
        self.auth_method = "bridge"
        self.subscriptions: set[str] = set()
        self.version = V3  # method handlers read it; bridge nodes speak the v3 shapes

    # -- lifecycle

    def opened(self) -> None:
        self.last_heard = self.env.clock.seconds()
        self._timers.append(self.env.clock.callLater(HANDSHAKE_TIMEOUT, self._handshake_timeout))

    def closed(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        for timer in self._timers:
            if hasattr(timer, "active") and timer.active():
                timer.cancel()
            elif isinstance(timer, LoopingCall) and timer.running:
                timer.stop()
        self._timers = []
        self._stop_pair_poll()
        if self.node_id is not None:
            self.env.nodes.detach(self.node_id, self)

    def _handshake_timeout(self) -> None:
        if self.state in ("new",):
            self.error(INVALID_REQUEST, "handshake timeout")
            self.hang_up()

    def hang_up(self) -> None:
        if self.state != "closed":
            self.closed()
            self._disconnect()

    # -- frames out

    def error(self, code: str, message: str) -> None:
        self._send({"type": "error", "code": code, "message": message})

    def too_long(self) -> None:
        self.error(INVALID_REQUEST, "line too long")
        self.hang_up()

    # -- NodeLink

    def send_invoke(self, invoke_id: str, command: str, params_json: str | None, timeout_ms: int, idempotency_key: str | None) -> None:
        self._send({"type": "invoke", "id": invoke_id, "command": command, "paramsJSON": params_json})

    def disconnect(self, reason: str) -> None:
        self.error(UNAUTHORIZED, reason)
        self.hang_up()

    def send_event(self, name: str, payload: Any, state_version: Any = None, drop_if_slow: bool = False) -> None:
        """Broadcasts reach bridge nodes as C{event} frames (no seq on this transport)."""
        if self.state == "ready":
            self._send({"type": "event", "event": name, "payloadJSON": json.dumps(payload)})

    # -- lines in

    def line(self, raw: bytes) -> None:
        if self.state == "closed":
            return
        self.last_heard = self.env.clock.seconds()
        if self.state != "ready" and len(raw) > PREAUTH_MAX_LINE:
            self.error(INVALID_REQUEST, f"line too long before authentication (max {PREAUTH_MAX_LINE} bytes)")
            self.hang_up()
            return
        text = raw.rstrip(b"\r")
        if not text.strip():
            return  # blank lines are allowed between frames
        try:
            frame = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.error(INVALID_REQUEST, f"invalid JSON: {e}")
            return
        if not isinstance(frame, dict):
            self.error(INVALID_REQUEST, "frame must be a JSON object")
            return
        kind = frame.get("type")
        handler = {
            "hello": self._hello,
            "bridge.hello": self._hello,
            "pair-request": self._pair_request,
            "req": self._req,
            "event": self._event,
            "ping": self._ping,
            "pong": self._pong,
            "invoke-res": self._invoke_res,
        }.get(kind if isinstance(kind, str) else "")
        if kind == "invoke":
            self.error(INVALID_REQUEST, "invoke not allowed from node")
        elif kind == "res":
            self.error(INVALID_REQUEST, "res not allowed from node")
        elif handler is None:
            self.error(INVALID_REQUEST, "unknown type")
        else:
            try:
                handler(frame)
            except Exception:
                log.failure("bridge frame {kind} failed", kind=kind)
                self.error("UNAVAILABLE", "internal error")

    # -- handshake

    def _fields(self, node_id: str, frame: dict[str, Any]) -> dict[str, Any] | None:
        """What the node says about itself, or None (and an error) when it is out of bounds."""
        fields = {k: frame[k] for k in _STRING_FIELDS if isinstance(frame.get(k), str)}
        caps = frame.get("caps", frame.get("capabilities"))
        fields["caps"] = [c for c in caps if isinstance(c, str)] if isinstance(caps, list) else []
        commands = frame.get("commands")
        fields["commands"] = [c for c in commands if isinstance(c, str)] if isinstance(commands, list) else []
        if isinstance(frame.get("permissions"), dict):
            fields["permissions"] = frame["permissions"]
        try:
            check_fields(node_id, fields)
        except FieldError as e:
            self.error(INVALID_REQUEST, str(e))
            return None
        return fields

    def _node_id(self, frame: dict[str, Any]) -> str | None:
        node_id = frame.get("nodeId")
        if not isinstance(node_id, str) or not node_id.strip() or len(node_id) > MAX_NODE_ID:
            self.error(INVALID_REQUEST, "nodeId required")
            return None
        return node_id.strip()

    def _hello(self, frame: dict[str, Any]) -> None:
        if self.state not in ("new",):
            self.error(INVALID_REQUEST, "already authenticated" if self.state == "ready" else "pairing in progress")
            return
        node_id = self._node_id(frame)
        if node_id is None:
            return
        store = self.env.pairing
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            if store.paired_record(node_id) is None:
                self.error(NOT_PAIRED, "pairing required")
            else:
                self.error(UNAUTHORIZED, "pairing required")
            return
        if not store.verify(node_id, token):
            self.error(UNAUTHORIZED, "invalid token")
            return
        fields = self._fields(node_id, frame)
        if fields is not None:
            self._ready(node_id, fields)

    def _pair_request(self, frame: dict[str, Any]) -> None:
        if self.state != "new":
            self.error(INVALID_REQUEST, "already authenticated" if self.state == "ready" else "pairing in progress")
            return
        node_id = self._node_id(frame)
        if node_id is None:
            return
        described = self._fields(node_id, frame)
        if described is None:
            return
        fields = {**described, "remoteIp": self.remote_ip, "silent": bool(frame.get("silent"))}
        try:
            request, created = self.env.pairing.request(node_id, fields, self.env.boot.now_ms())
        except FieldError as e:
            self.error(INVALID_REQUEST, str(e))
            return
        if created:
            self.env.events.broadcast("node.pair.requested", request, drop_if_slow=True)
        self.state = "pairing"
        self.node_id = node_id
        self._pending_fields = fields
        self._request_id = request["requestId"]
        self._asked_at_ms = self.env.boot.now_ms()
        self._pair_deadline = self.env.clock.seconds() + PAIR_WAIT
        self._pair_poll = LoopingCall(self._check_pairing)
        self._pair_poll.clock = self.env.clock
        self._pair_poll.start(PAIR_POLL, now=False)

    def _stop_pair_poll(self) -> None:
        if self._pair_poll is not None and self._pair_poll.running:
            self._pair_poll.stop()
        self._pair_poll = None

    def _check_pairing(self) -> None:
        store = self.env.pairing
        assert self.node_id is not None
        record = store.paired_record(self.node_id)
        still_pending = any(r["requestId"] == self._request_id for r in store.pending(self.env.boot.now_ms()))
        if record is not None and record.get("approvedAtMs", 0) >= self._asked_at_ms and not still_pending:
            self._stop_pair_poll()
            self._send({"type": "pair-ok", "token": record["token"]})
            self.state = "new"
            self._ready(self.node_id, self._pending_fields)
            return
        if not still_pending or self.env.clock.seconds() >= self._pair_deadline:
            self._stop_pair_poll()
            self.error(UNAUTHORIZED, "pairing expired" if still_pending or self.env.clock.seconds() >= self._pair_deadline else "pairing rejected")
            self.hang_up()

    def _ready(self, node_id: str, fields: dict[str, Any]) -> None:
        self.state = "ready"
        self.node_id = node_id
        self.info = NodeInfo.from_fields(node_id, fields, self.remote_ip)
        hello: dict[str, Any] = {"type": "hello-ok", "serverName": self.env.boot.hostname}
        url = self.env.canvas_url()
        if url:
            hello["canvasHostUrl"] = url
        self._send(hello)
        self.env.nodes.attach(self.info, self)
        self._beacon()
        for interval, f in ((PRESENCE_INTERVAL, self._beacon), (PING_INTERVAL, self._keepalive)):
            loop = LoopingCall(f)
            loop.clock = self.env.clock
            loop.start(interval, now=False)
            self._timers.append(loop)

    def _beacon(self) -> None:
        info = self.info
        if info is None:
            return
        entry = {"host": info.display_name or info.node_id, "ip": self.remote_ip, "mode": "node", "reason": "bridge", "deviceId": info.node_id}
        entry.update({k: v for k, v in (("platform", info.platform), ("version", info.version), ("deviceFamily", info.device_family), ("modelIdentifier", info.model_identifier)) if v})
        self.env.presence.update(f"bridge:{info.node_id}", entry)

    def _keepalive(self) -> None:
        if self.env.clock.seconds() - self.last_heard > IDLE_LIMIT:
            log.info("bridge node {node} silent for {limit} s; dropping", node=self.node_id, limit=IDLE_LIMIT)
            self.hang_up()
            return
        self.pings += 1
        self._send({"type": "ping", "id": f"gw-{self.pings}"})

    # -- after hello

    def _authenticated(self, frame: dict[str, Any], respond_in_res: bool = False) -> bool:
        if self.state == "ready":
            return True
        if respond_in_res and isinstance(frame.get("id"), str):
            self._send({"type": "res", "id": frame["id"], "ok": False, "error": {"code": UNAUTHORIZED, "message": "not authenticated"}})
        else:
            self.error(UNAUTHORIZED, "not authenticated")
        return False

    def _req(self, frame: dict[str, Any]) -> None:
        if not self._authenticated(frame, respond_in_res=True):
            return
        req_id, method = frame.get("id"), frame.get("method")
        if not isinstance(req_id, str) or not req_id or not isinstance(method, str) or not method:
            self.error(INVALID_REQUEST, "id and method required")
            return
        handler = self.env.methods.handler(method) if method in ALLOWED_METHODS else None  # metered: the dispatch point
        if handler is None:
            self._res(req_id, GatewayError(INVALID_REQUEST, f"method not allowed over the bridge: {method}"))
            return
        params: Any = {}
        raw = frame.get("paramsJSON")
        if isinstance(raw, str) and raw:
            try:
                params = json.loads(raw)
            except ValueError as e:
                self._res(req_id, GatewayError(INVALID_REQUEST, f"paramsJSON is not JSON: {e}"))
                return
        run(handler, self, params, lambda value: self._res(req_id, value), lambda f: self._failed(req_id, method, f))

    def _failed(self, req_id: str, method: str, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, GatewayError):
            self._res(req_id, error)
        elif isinstance(error, InvalidInput):
            self._res(req_id, GatewayError(INVALID_REQUEST, f"invalid {method} params: {error}"))
        else:
            log.failure("bridge method {method} failed", failure, method=method)
            self._res(req_id, GatewayError("UNAVAILABLE", failure.getErrorMessage() or type(error).__name__))

    def _res(self, req_id: str, outcome: Any) -> None:
        if self.state == "closed":
            return
        if isinstance(outcome, GatewayError):
            self._send({"type": "res", "id": req_id, "ok": False, "error": {"code": outcome.code, "message": outcome.message}})
        else:
            self._send({"type": "res", "id": req_id, "ok": True, "payloadJSON": json.dumps(outcome)})

    def _event(self, frame: dict[str, Any]) -> None:
        if not self._authenticated(frame):
            return
        event = frame.get("event")
        if not isinstance(event, str) or not event:
            self.error(INVALID_REQUEST, "event required")
            return
        self.env.node_events.handle(self.node_id, event, None, frame.get("payloadJSON"), self.subscriptions)

    def _ping(self, frame: dict[str, Any]) -> None:
        if self._authenticated(frame):
            self._send({"type": "pong", "id": frame.get("id")})

    def _pong(self, frame: dict[str, Any]) -> None:
        return None  # last_heard was already updated

    def _invoke_res(self, frame: dict[str, Any]) -> None:
        if not self._authenticated(frame):
            return
        invoke_id = frame.get("id")
        if not isinstance(invoke_id, str):
            self.error(INVALID_REQUEST, "id required")
            return
        payload_json = frame.get("payloadJSON") if isinstance(frame.get("payloadJSON"), str) else None
        assert self.node_id is not None
        self.env.nodes.result(invoke_id, self.node_id, bool(frame.get("ok")), None, payload_json, frame.get("error"))
