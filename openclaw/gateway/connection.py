# -*- test-case-name: tests.test_ws -*-
"""
One client connection: challenge, then exactly one C{connect}, then
requests. Plain code over a L{Transport}; the WebSocket adapter feeds it
text and carries out its sends and closes.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw import __version__
from openclaw.gateway.auth import auth_failure, check_shared_secret
from openclaw.gateway.devices import verify_device
from openclaw.gateway.scopes import RoleError, authorize
from openclaw.nodes.methods import node_info_from_connect
from openclaw.protocol import frames
from openclaw.protocol.dispatch import run
from openclaw.protocol.connect import BROWSER_CLIENTS, CONNECT_PARAMS, CONTROL_UI_CLIENTS, ROLE_NODE, ROLE_OPERATOR
from openclaw.protocol.errors import INVALID_REQUEST, NOT_PAIRED, UNAVAILABLE, GatewayError, HandshakeFailed, InvalidInput
from openclaw.protocol.versions import CHALLENGE_CAPABILITIES, HANDSHAKE_TIMEOUT, PREAUTH_MAX_PAYLOAD, V3, Version, negotiate, truncate_reason
from openclaw.shape import check

log = Logger(namespace="openclaw.ws")

MAX_ROLE_FAILURES = 10


class Transport(Protocol):
    def send(self, text: str) -> bool:
        """Write one message; False (never an exception) once the socket is closing or closed."""
        ...

    def close(self, code: int, reason: str) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the peer."""
        ...

    def set_max_payload(self, size: int) -> None: ...


class _Gone:
    """The transport of a closed connection: drops everything, holds nothing."""

    def send(self, text: str) -> bool:
        return False

    def close(self, code: int, reason: str) -> None:
        pass

    def buffered(self) -> int:
        return 0

    def set_max_payload(self, size: int) -> None:
        pass


GONE = _Gone()


@attrs.define
class SendStats:
    """What the gateway did not deliver, for diagnostics."""

    dropped: int = 0  # frames for a socket already closing or closed
    dropped_slow: int = 0  # droppable events skipped for a slow reader
    slow_consumers: int = 0  # connections closed 1008 "slow consumer"


@attrs.frozen
class Peer:
    ip: str
    local: bool
    origin: str | None = None


def _scopes_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else []


class Connection:
    """State: C{"challenged"} → C{"ready"} → C{"closed"}."""

    def __init__(self, hub: Any, transport: Transport, peer: Peer) -> None:
        self.hub = hub
        self.transport = transport
        self.peer = peer
        self.conn_id = str(uuid.uuid4())
        self.nonce = str(uuid.uuid4())
        self.state = "new"
        self.version: Version = V3
        self.role: str | None = None
        self.scopes: list[str] = []
        self.client: dict[str, Any] = {}
        self.device_id: str | None = None
        self.auth_method: str | None = None
        self.presence_key: str | None = None
        self.node_id: str | None = None
        self.node_info: Any = None
        self.subscriptions: set[str] = set()
        self.caps: set[str] = set()
        self.seq = 0
        self.role_failures = 0
        self._timeout: Any = None

    # -- transport events

    def opened(self) -> None:
        self.state = "challenged"
        self.transport.set_max_payload(PREAUTH_MAX_PAYLOAD)
        challenge = {"nonce": self.nonce, "ts": self.hub.now_ms(), "capabilities": list(CHALLENGE_CAPABILITIES)}
        self.transport.send(frames.event("connect.challenge", challenge))
        self._timeout = self.hub.clock.callLater(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def closed(self) -> None:
        """The socket is gone: leave the hub and let go of the transport."""
        self._cancel_timeout()
        self.state = "closed"
        self._leave()
        # Runs still waiting to answer hold this connection; they must not hold its buffers.
        self.transport = GONE

    def _leave(self) -> None:
        self.hub.remove(self)
        if self.node_id is not None:
            self.hub.nodes.detach(self.node_id, self)

    def received(self, payload: bytes) -> None:
        if self.state == "challenged":
            self._handshake(payload)
        elif self.state == "ready":
            self._request(payload)

    # -- sending

    def close(self, code: int, reason: str = "") -> None:
        if self.state == "closed":
            return
        self._cancel_timeout()
        self.state = "closed"
        self._leave()
        try:
            self.transport.close(code, truncate_reason(reason))
        except Exception:
            log.failure("closing the socket of {ip} failed", ip=self.peer.ip)

    def respond(self, id: str, payload: Any) -> None:
        self._write(frames.response(id, True, payload))

    def fail(self, id: str, error: GatewayError) -> None:
        self._write(frames.response(id, False, error.payload, error.shape()))

    def send_event(self, name: str, payload: Any, state_version: dict[str, int] | None = None, drop_if_slow: bool = False) -> None:
        """A broadcast: numbered per connection; a slow consumer is dropped or closed."""
        if self.state != "ready":
            return
        self.seq += 1
        self._write(frames.event(name, payload, self.seq, state_version), drop_if_slow)

    def send_direct(self, name: str, payload: Any) -> None:
        """An event for this socket only: no C{seq}."""
        if self.state == "ready":
            self._write(frames.event(name, payload))

    def _write(self, text: str, drop_if_slow: bool = False) -> None:
        """
        Everything sent to the peer goes through here, and nothing here raises:
        sending is fire-and-forget for every caller (broadcasts, responses,
        runs, invokes), so no caller's outcome depends on another client's
        socket. A closing socket drops the frame (counted); a peer that stopped
        reading is closed 1008 once past the buffer limit, whatever we were sending.
        """
        stats = self.hub.send_stats
        if self.state == "closed":
            stats.dropped += 1
            return
        if self.transport.buffered() > self.version.max_buffered:
            if drop_if_slow:
                stats.dropped_slow += 1
                return
            self._slow_consumer()
            stats.dropped += 1
            return
        try:
            sent = self.transport.send(text)
        except Exception:
            log.failure("sending to {ip} failed", ip=self.peer.ip)
            sent = False
        if not sent:
            stats.dropped += 1

    def _slow_consumer(self) -> None:
        self.hub.send_stats.slow_consumers += 1
        log.warn(
            "closing slow consumer {ip} ({conn}): {buffered} bytes unread, limit {limit}",
            ip=self.peer.ip,
            conn=self.conn_id,
            buffered=self.transport.buffered(),
            limit=self.version.max_buffered,
        )
        self.close(1008, "slow consumer")

    # -- NodeLink (when this connection is a node)

    transport_name = "ws"

    def send_invoke(self, invoke_id: str, command: str, params_json: str | None, timeout_ms: int, idempotency_key: str | None) -> None:
        payload: dict[str, Any] = {"id": invoke_id, "nodeId": self.node_id, "command": command, "paramsJSON": params_json, "timeoutMs": timeout_ms}
        if idempotency_key:
            payload["idempotencyKey"] = idempotency_key
        self.send_direct("node.invoke.request", payload)

    def disconnect(self, reason: str) -> None:
        self.close(1000, reason)

    # -- handshake

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _handshake_timeout(self) -> None:
        self._timeout = None
        log.info("handshake timeout from {ip}", ip=self.peer.ip)
        self.close(1000, "")

    def _handshake(self, payload: bytes) -> None:
        if len(payload) > PREAUTH_MAX_PAYLOAD:
            self.close(1009, "preauth payload too large")
            return
        try:
            request = frames.parse(payload)
        except frames.NotJSON:
            self.close(1000, "")
            return
        except frames.FrameError:
            self.close(1008, "invalid request frame")
            return
        if request.method != "connect":
            message = "invalid handshake: first request must be connect"
            self.fail(request.id, GatewayError(INVALID_REQUEST, message))
            self.close(1008, message)
            return
        try:
            hello = self._connect(request.params)
        except HandshakeFailed as e:
            log.info("connect refused from {ip}: {message}", ip=self.peer.ip, message=e.message)
            if e.respond:
                self.fail(request.id, e)
            self.close(e.close_code, e.close_reason)
            return
        self._cancel_timeout()
        self.state = "ready"
        self.transport.set_max_payload(self.version.max_payload)
        self.respond(request.id, hello)
        self.hub.add(self)
        if self.node_info is not None:
            self.hub.nodes.attach(self.node_info, self)
            self.send_direct("voicewake.changed", {"triggers": self.hub.voicewake_triggers()})

    def _connect(self, params: Any) -> dict[str, Any]:
        errors, _ = check(CONNECT_PARAMS, params)
        if errors:
            text = "; ".join(str(e) for e in errors[:5])
            raise HandshakeFailed(INVALID_REQUEST, f"invalid connect params: {text}")
        client = params["client"]
        role = params.get("role", ROLE_OPERATOR)
        if role == "worker" or client["id"] == "openclaw-worker" or client["mode"] == "worker":
            raise HandshakeFailed(INVALID_REQUEST, "invalid-handshake", respond=False)

        version = negotiate(params["minProtocol"], params["maxProtocol"])
        if version is None:
            raise HandshakeFailed(
                INVALID_REQUEST,
                "protocol mismatch",
                close_code=1002,
                details={
                    "code": "PROTOCOL_MISMATCH",
                    "clientMinProtocol": params["minProtocol"],
                    "clientMaxProtocol": params["maxProtocol"],
                    "expectedProtocol": 4,
                    "minimumProbeProtocol": 3,
                },
            )
        self.version = version
        if role not in (ROLE_OPERATOR, ROLE_NODE):
            raise HandshakeFailed(INVALID_REQUEST, "invalid role")
        if client["id"] in BROWSER_CLIENTS and self.peer.origin is None and client["mode"] in ("webchat", "ui"):
            # Browser clients always send an Origin; one without is not a browser we served.
            raise HandshakeFailed(
                INVALID_REQUEST,
                "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
                details={"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED"},
            )

        auth = params.get("auth") or {}
        device = params.get("device")
        requested = _scopes_list(params.get("scopes"))
        hub = self.hub
        now = hub.now_ms()

        limited_key = self.peer.ip
        exempt = self.peer.local and hub.exempt_loopback and self.peer.origin is None
        if not exempt:
            wait = hub.limiter.retry_after(limited_key)
            if wait is not None:
                raise auth_failure("rate_limited", retry_after_ms=int(wait * 1000))

        secret = check_shared_secret(hub.auth, auth)
        method = secret.method
        if not secret.ok and device is not None:
            candidate = auth.get("deviceToken") or auth.get("token")
            if candidate and hub.pairing.check_token(device.get("id", ""), role, candidate):
                method = "device-token"
            elif auth.get("deviceToken"):
                secret = attrs.evolve(secret, reason="device_token_mismatch")
        if method is None:
            if not exempt:
                hub.limiter.failed(limited_key)
            can_retry = secret.reason == "token_mismatch" and device is not None and not auth.get("deviceToken")
            raise auth_failure(secret.reason or "unauthorized", can_retry_with_device_token=can_retry)
        hub.limiter.succeeded(limited_key)

        self.client = client
        self.role = role
        self.caps = set(_scopes_list(params.get("caps")))
        self.auth_method = method
        device_token: dict[str, Any] | None = None
        if device is None:
            insecure_ui = client["id"] in CONTROL_UI_CLIENTS
            if insecure_ui and not hub.auth.allow_insecure:
                raise HandshakeFailed(
                    INVALID_REQUEST,
                    "control ui requires device identity (use HTTPS or localhost secure context)",
                    details={"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"},
                )
            local_helper = self.peer.local and self.peer.origin is None and (
                (client["id"] == "cli" and client["mode"] == "cli") or (client["id"] == "gateway-client" and client["mode"] == "backend")
            )
            trusted = local_helper or method == "none" or insecure_ui  # insecure_ui: allowInsecureAuth opted in
            self.scopes = requested if trusted and role == ROLE_OPERATOR else []
        else:
            token_in_payload = auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken") or ""
            verify_device(
                device,
                client,
                role,
                requested,
                token_in_payload,
                self.nonce,
                now,
                version.signature_skew_ms,
                nonce_required=version.number >= 4,
                is_local=self.peer.local,
            )
            self.device_id = device["id"]
            record = self._pair(device, client, role, requested, now)
            self.scopes = [s for s in requested if s in record.get("scopes", [])] if role == ROLE_OPERATOR else []
            device_token = hub.pairing.ensure_token(device["id"], role, self.scopes, now)

        self.presence_key = None if client["id"] == "cli" else (self.device_id or client.get("instanceId") or self.conn_id)
        if role == ROLE_NODE:
            self.node_id = self.device_id or client.get("instanceId") or client["id"]
            self.node_info = node_info_from_connect(self.node_id, client, params, self.peer.ip)
        return self._hello(device_token)

    def _pair(self, device: dict[str, Any], client: dict[str, Any], role: str, scopes: list[str], now: int) -> dict[str, Any]:
        hub = self.hub
        record = hub.pairing.paired(device["id"])
        fields = {
            "deviceId": device["id"],
            "publicKey": device["publicKey"],
            "displayName": client.get("displayName"),
            "platform": client.get("platform"),
            "deviceFamily": client.get("deviceFamily"),
            "clientId": client["id"],
            "clientMode": client["mode"],
            "role": role,
            "scopes": sorted(set(scopes)),
            "remoteIp": self.peer.ip,
        }
        satisfied = (
            record is not None
            and record.get("publicKey") == device["publicKey"]
            and role in record.get("roles", [])
            and set(scopes) <= set(record.get("scopes", []))
        )
        if satisfied:
            return record  # type: ignore[return-value]
        auto_local = (hub.settings.config.get("gateway", {}).get("nodes", {}) or {}).get("pairing", {}).get("autoApproveLocal", True)
        if self.peer.local and auto_local:
            approved = hub.pairing.approve_directly(fields, now)
            hub.broadcast("device.pair.resolved", {"requestId": "local", "deviceId": device["id"], "decision": "approved", "ts": now}, drop_if_slow=True)
            return approved
        fields = {k: v for k, v in fields.items() if v is not None}
        request, superseded = hub.pairing.request({**fields, "silent": False, "isRepair": record is not None}, now)
        for resolution in superseded:
            hub.broadcast("device.pair.resolved", resolution.payload(), drop_if_slow=True)
        hub.broadcast("device.pair.requested", request, drop_if_slow=True)
        if self.version.number >= 4:
            reason = "not-paired" if record is None else ("role-upgrade" if role not in record.get("roles", []) else "scope-upgrade")
            message = "pairing required: device is not approved yet"
            raise HandshakeFailed(
                NOT_PAIRED,
                message,
                close_reason=f"{message} (requestId: {request['requestId']})",
                details={
                    "code": "PAIRING_REQUIRED",
                    "reason": reason,
                    "requestId": request["requestId"],
                    "deviceId": device["id"],
                    "requestedRole": role,
                    "requestedScopes": scopes,
                    "remediationHint": "approve with `openclaw devices approve <requestId>`",
                },
            )
        raise HandshakeFailed(NOT_PAIRED, "pairing required", details={"requestId": request["requestId"]})

    def _hello(self, device_token: dict[str, Any] | None) -> dict[str, Any]:
        hub = self.hub
        admin = "operator.admin" in self.scopes
        snapshot: dict[str, Any] = {
            "presence": hub.presence_list(),
            "health": hub.health_snapshot(),
            "stateVersion": hub.state_version(),
            "uptimeMs": hub.uptime_ms(),
            "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main", "scope": "per-sender"},
        }
        if admin:
            snapshot["configPath"] = str(hub.settings.layout.config_path)
            snapshot["stateDir"] = str(hub.settings.state_dir)
        hello: dict[str, Any] = {
            "type": "hello-ok",
            "protocol": self.version.number,
            "server": {"version": __version__, "host": hub.hostname, "connId": self.conn_id},
            "features": hub.features(self.version.number),
            "snapshot": snapshot,
            "policy": self.version.policy(),
        }
        canvas = hub.canvas_url()
        if canvas and self.version.number == 3:
            hello["canvasHostUrl"] = canvas  # v4 moved canvas to plugin surface URLs
        if self.version.number >= 4:
            hello["server"] = {"version": __version__, "bootId": hub.boot_id, "connId": self.conn_id}
            hello["auth"] = {"role": self.role, "scopes": list(self.scopes)}
        if device_token is not None:
            auth = hello.setdefault("auth", {})
            auth.update(
                {
                    "deviceToken": device_token["token"],
                    "role": self.role,
                    "scopes": list(self.scopes),
                    "issuedAtMs": device_token.get("rotatedAtMs", device_token["createdAtMs"]),
                }
            )
        return hello

    def presence_entry(self) -> dict[str, Any] | None:
        if self.presence_key is None:
            return None
        c = self.client
        entry = {
            "host": c.get("displayName") or c.get("id"),
            "ip": self.peer.ip,
            "version": c.get("version"),
            "platform": c.get("platform"),
            "deviceFamily": c.get("deviceFamily"),
            "modelIdentifier": c.get("modelIdentifier"),
            "mode": c.get("mode"),
            "reason": "connect",
            "deviceId": self.device_id,
            "instanceId": c.get("instanceId"),
            "roles": [self.role] if self.role else None,
            "scopes": list(self.scopes),
            "ts": self.hub.now_ms(),
        }
        return {k: v for k, v in entry.items() if v not in (None, "")}

    # -- requests

    def _request(self, payload: bytes) -> None:
        try:
            request = frames.parse(payload, allow_traceparent=self.version.number >= 4)
        except frames.NotJSON as e:
            self.fail("invalid", GatewayError(INVALID_REQUEST, f"invalid request frame: {e}"))
            return
        except frames.FrameError as e:
            self.fail(e.id or "invalid", GatewayError(INVALID_REQUEST, f"invalid request frame: {e}"))
            return
        if request.method == "connect":
            self.fail(request.id, GatewayError(INVALID_REQUEST, "connect is only valid as the first request"))
            return
        try:
            authorize(request.method, self.role or "", self.scopes, self.version)
        except RoleError as e:
            self.role_failures += 1
            self.fail(request.id, e)
            if self.role_failures > MAX_ROLE_FAILURES:
                self.close(1008, "repeated unauthorized calls")
            return
        except GatewayError as e:
            self.fail(request.id, e)
            return
        self.role_failures = 0
        handler = self.hub.methods.get(request.method)
        if handler is None:
            self.fail(request.id, GatewayError(INVALID_REQUEST, f"unknown method: {request.method}"))
            return
        params = request.params if request.params is not None else {}
        self._run(request, handler, params)

    def _run(self, request: frames.Request, handler: Any, params: Any) -> None:
        # e.g. `agent` answers twice under the same id: "accepted" now, the final payload later
        run(handler, self, params, lambda value: self.respond(request.id, value), lambda f: self._failed(request, f))

    def _failed(self, request: frames.Request, failure: Failure) -> None:
        """
        A handler's failure as the client sees it: its own error, bad input as
        INVALID_REQUEST (the client's mistake: debug only), anything else as
        UNAVAILABLE with a traceback in the log (ours).
        """
        if failure.check(GatewayError):
            self.fail(request.id, failure.value)
        elif failure.check(InvalidInput):
            log.debug("method {method}: invalid input: {problem}", method=request.method, problem=str(failure.value))
            self.fail(request.id, GatewayError(INVALID_REQUEST, f"invalid {request.method} params: {failure.value}"))
        else:
            log.failure("method {method} failed", failure, method=request.method)
            self.fail(request.id, GatewayError(UNAVAILABLE, failure.getErrorMessage() or failure.type.__name__))
