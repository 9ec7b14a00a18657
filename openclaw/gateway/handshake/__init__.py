# -*- test-case-name: tests.test_ws -*-
"""
The C{connect} handshake as steps, each in its own module:

  1. the params' shape, the worker refusal, version negotiation, the role
     and the browser-origin rule (here);
  2. L{auth.authenticate}: failure limiter, shared secret or device token;
  3. L{device.prove_device}: the Ed25519 proof over the challenge nonce;
  4. L{pairing.pair}: approved, approved locally, or a pairing request;
  5. scopes, presence key and node description (here), then
     L{hello.Hello} builds the answer.

Role C{channel} (an out-of-process channel adapter) authenticates with the
shared secret or a channel's adapter token and gets C{channel:<id>} scopes
from L{channel.ChannelAdmission}; it has no device pairing.

Every refusal is a L{HandshakeFailed}: the connection answers it (unless
told not to) and closes with its code. Nothing here touches a socket.
"""

from __future__ import annotations

from typing import Any

import attrs

from openclaw.gateway.auth import AuthState, FailureLimiter
from openclaw.gateway.boot import Boot
from openclaw.gateway.devices import PairingStore
from openclaw.gateway.handshake.auth import authenticate, scopes_without_device
from openclaw.gateway.handshake.channel import ChannelAdmission
from openclaw.gateway.handshake.device import prove_device
from openclaw.gateway.handshake.pairing import pair
from openclaw.gateway.handshake.peer import Peer
from openclaw.interfaces import EventSink
from openclaw.nodes.registry import NodeInfo
from openclaw.protocol.connect import BROWSER_CLIENTS, CONNECT_PARAMS, ROLE_CHANNEL, ROLE_NODE, ROLE_OPERATOR
from openclaw.protocol.errors import INVALID_REQUEST, HandshakeFailed
from openclaw.protocol.versions import Version, negotiate
from openclaw.shape import check

__all__ = ["Admitted", "Handshake", "Peer"]


@attrs.frozen
class Admitted:
    """Who connected, once every step passed."""

    version: Version
    role: str
    scopes: list[str]
    client: dict[str, Any]
    caps: set[str]
    auth_method: str
    device_id: str | None = None
    device_token: dict[str, Any] | None = None  # issued (or kept) for the device: goes out in hello-ok
    presence_key: str | None = None  # None: not listed in presence (the CLI)
    node: NodeInfo | None = None


def _strings(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else []


class Handshake:
    def __init__(
        self,
        boot: Boot,
        auth: AuthState,
        limiter: FailureLimiter,
        pairing: PairingStore,
        events: EventSink,
        exempt_loopback: bool = True,
        auto_approve_local: bool = True,
        channels: ChannelAdmission | None = None,
    ) -> None:
        self.channels = channels if channels is not None else ChannelAdmission()
        self.boot = boot
        self.auth = auth
        self.limiter = limiter
        self.pairing = pairing
        self.events = events
        self.exempt_loopback = exempt_loopback
        self.auto_approve_local = auto_approve_local

    def admit(self, params: Any, peer: Peer, nonce: str, conn_id: str) -> Admitted:
        """
        Run the steps over one C{connect}'s params.

        @raise HandshakeFailed: a step refused.
        """
        errors, _ = check(CONNECT_PARAMS, params)
        if errors:
            text = "; ".join(str(e) for e in errors[:5])
            raise HandshakeFailed(INVALID_REQUEST, f"invalid connect params: {text}")
        client = params["client"]
        role = params.get("role", ROLE_OPERATOR)
        if role == "worker" or client["id"] == "openclaw-worker" or client["mode"] == "worker":
            raise HandshakeFailed(INVALID_REQUEST, "invalid-handshake", respond=False)
        version = self._version(params)
        if role not in (ROLE_OPERATOR, ROLE_NODE, ROLE_CHANNEL):
            raise HandshakeFailed(INVALID_REQUEST, "invalid role")
        if client["id"] in BROWSER_CLIENTS and peer.origin is None and client["mode"] in ("webchat", "ui"):
            # Browser clients always send an Origin; one without is not a browser we served.
            raise HandshakeFailed(
                INVALID_REQUEST,
                "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
                details={"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED"},
            )

        given = params.get("auth") or {}
        device = params.get("device")
        requested = _strings(params.get("scopes"))
        now = self.boot.now_ms()
        auth = self.auth.current
        adapter_token = self.channels.token_method if role == ROLE_CHANNEL else None
        method = authenticate(auth, given, device, role, peer, self.limiter, self.exempt_loopback, self.pairing, adapter_token)

        device_id: str | None = None
        device_token: dict[str, Any] | None = None
        if role == ROLE_CHANNEL:
            # Its credential is the token; a device identity it shows must still prove itself.
            if device is not None:
                device_id = prove_device(device, client, role, requested, given, nonce, now, version, peer)
            scopes = self.channels.scopes(method, given, requested)
        elif device is None:
            scopes = scopes_without_device(client, role, requested, method, peer, auth.allow_insecure)
        else:
            device_id = prove_device(device, client, role, requested, given, nonce, now, version, peer)
            record = pair(device, client, role, requested, peer, now, version, self.pairing, self.events, self.auto_approve_local)
            scopes = [s for s in requested if s in record.get("scopes", [])] if role == ROLE_OPERATOR else []
            device_token = self.pairing.ensure_token(device_id, role, scopes, now)

        node = None
        if role == ROLE_NODE:
            node_id = device_id or client.get("instanceId") or client["id"]
            node = NodeInfo.from_connect(node_id, client, params, peer.ip)
        return Admitted(
            version=version,
            role=role,
            scopes=scopes,
            client=client,
            caps=set(_strings(params.get("caps"))),
            auth_method=method,
            device_id=device_id,
            device_token=device_token,
            presence_key=None if client["id"] == "cli" else (device_id or client.get("instanceId") or conn_id),
            node=node,
        )

    @staticmethod
    def _version(params: dict[str, Any]) -> Version:
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
        return version
