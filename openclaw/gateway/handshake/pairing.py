# -*- test-case-name: tests.test_ws -*-
"""
Handshake step: is the device paired for what it asks? A device already
approved for its key, role and scopes goes on; a local one is approved on
the spot (C{gateway.nodes.pairing.autoApproveLocal}); anyone else leaves a
pairing request for an operator and is refused with its id.
"""

from __future__ import annotations

from typing import Any

from openclaw.gateway.devices import PairingStore
from openclaw.gateway.handshake.peer import Peer
from openclaw.interfaces import EventSink
from openclaw.protocol.errors import NOT_PAIRED, HandshakeFailed
from openclaw.protocol.versions import Version


def pair(
    device: dict[str, Any],
    client: dict[str, Any],
    role: str,
    scopes: list[str],
    peer: Peer,
    now_ms: int,
    version: Version,
    pairing: PairingStore,
    events: EventSink,
    auto_approve_local: bool,
) -> dict[str, Any]:
    """
    The device's paired record, once it covers C{role} and C{scopes}.

    @raise HandshakeFailed: C{NOT_PAIRED}, with the request id an operator approves.
    """
    record = pairing.paired(device["id"])
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
        "remoteIp": peer.ip,
    }
    satisfied = (
        record is not None
        and record.get("publicKey") == device["publicKey"]
        and role in record.get("roles", [])
        and set(scopes) <= set(record.get("scopes", []))
    )
    if satisfied:
        assert record is not None
        return record
    if peer.local and auto_approve_local:
        approved = pairing.approve_directly(fields, now_ms)
        events.broadcast("device.pair.resolved", {"requestId": "local", "deviceId": device["id"], "decision": "approved", "ts": now_ms}, drop_if_slow=True)
        return approved
    fields = {k: v for k, v in fields.items() if v is not None}
    request, superseded = pairing.request({**fields, "silent": False, "isRepair": record is not None}, now_ms)
    for resolution in superseded:
        events.broadcast("device.pair.resolved", resolution.payload(), drop_if_slow=True)
    events.broadcast("device.pair.requested", request, drop_if_slow=True)
    if version.number >= 4:
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
