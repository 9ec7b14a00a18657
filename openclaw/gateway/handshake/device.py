# -*- test-case-name: tests.test_devices -*-
"""
Handshake step: the device proof. A client with a device identity signs the
challenge nonce (and what it asks for) with its Ed25519 key; the signature,
the key's id and the freshness are checked here (L{verify_device} holds the
crypto and upstream's payload versions).
"""

from __future__ import annotations

from typing import Any

from openclaw.gateway.devices import verify_device
from openclaw.gateway.handshake.peer import Peer
from openclaw.protocol.versions import Version


def prove_device(device: dict[str, Any], client: dict[str, Any], role: str, scopes: list[str], given: dict[str, Any], nonce: str, now_ms: int, version: Version, peer: Peer) -> str:
    """
    The device id, once its proof holds.

    @raise HandshakeFailed: with upstream's message and C{DEVICE_AUTH_*} code.
    """
    signed_token = given.get("token") or given.get("deviceToken") or given.get("bootstrapToken") or ""
    verify_device(
        device,
        client,
        role,
        scopes,
        signed_token,
        nonce,
        now_ms,
        version.signature_skew_ms,
        nonce_required=version.number >= 4,
        is_local=peer.local,
    )
    return str(device["id"])
