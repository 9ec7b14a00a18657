# -*- test-case-name: tests.test_devices -*-
"""
Device identity (Ed25519 proofs) and the device pairing store.

The store keeps C{devices/pending.json} (requestId to request) and
C{devices/paired.json} (deviceId to record), both written crash-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from pathlib import Path
from typing import Any, Iterable

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openclaw.gateway.auth import secret_equal
from openclaw.protocol.errors import INVALID_REQUEST, HandshakeFailed
from openclaw.pending import PendingRequests
from openclaw.store import read_json, write_json



def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_public_key(text: str) -> bytes:
    """A device public key as 32 raw bytes, from base64url or PEM."""
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return raw


def device_id_of(raw_key: bytes) -> str:
    return hashlib.sha256(raw_key).hexdigest()


def signature_payloads(device: dict[str, Any], client: dict[str, Any], role: str, scopes: list[str], token: str) -> list[str]:
    """The payload strings a device may have signed, newest version first."""
    base = [device["id"], client.get("id", ""), client.get("mode", ""), role, ",".join(scopes), str(device["signedAt"]), token]
    nonce = device.get("nonce")
    if nonce is None:
        return ["|".join(["v1", *base])]
    platform = (client.get("platform") or "").strip().lower()
    family = (client.get("deviceFamily") or "").strip().lower()
    return ["|".join(["v3", *base, nonce, platform, family]), "|".join(["v2", *base, nonce])]


def _device_error(message: str, code: str, reason: str) -> HandshakeFailed:
    return HandshakeFailed(INVALID_REQUEST, message, details={"code": code, "reason": reason})


def verify_device(
    device: dict[str, Any],
    client: dict[str, Any],
    role: str,
    scopes: list[str],
    token: str,
    challenge_nonce: str,
    now_ms: int,
    skew_ms: int,
    nonce_required: bool,
    is_local: bool,
) -> bytes:
    """
    Check a connect's device proof; return the raw public key.

    @raise HandshakeFailed: with upstream's message and C{DEVICE_AUTH_*} code.
    """
    try:
        raw = raw_public_key(device["publicKey"])
    except (ValueError, binascii.Error, TypeError):
        raise _device_error("device public key invalid", "DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key")
    if device_id_of(raw) != device["id"]:
        raise _device_error("device identity mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch")
    if abs(now_ms - device["signedAt"]) > skew_ms:
        raise _device_error("device signature expired", "DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale")
    nonce = device.get("nonce")
    if nonce is None:
        if nonce_required or not is_local:
            raise _device_error("device nonce required", "DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing")
    elif nonce.strip() != challenge_nonce:
        raise _device_error("device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch")
    try:
        signature = b64url_decode(device["signature"])
    except (ValueError, binascii.Error):
        signature = b""
    key = Ed25519PublicKey.from_public_bytes(raw)
    for payload in signature_payloads(device, client, role, scopes, token):
        try:
            key.verify(signature, payload.encode("utf-8"))
            return raw
        except InvalidSignature:
            continue
    raise _device_error("device signature invalid", "DEVICE_AUTH_SIGNATURE_INVALID", "device-signature")


def new_token() -> str:
    """A device token: 32 hex characters, like upstream's v3 dashless UUIDs."""
    return secrets.token_hex(16)


@attrs.define
class Resolution:
    request_id: str
    device_id: str
    decision: str
    ts: int

    def payload(self) -> dict[str, Any]:
        return {"requestId": self.request_id, "deviceId": self.device_id, "decision": self.decision, "ts": self.ts}


class PairingStore:
    """Pending and paired devices, persisted under C{<state>/devices/}."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "devices"
        self._pending = PendingRequests(self.folder / "pending.json")
        self._paired: dict[str, dict[str, Any]] = {}

    def load(self) -> "PairingStore":
        """Read both files (at start, with the state dir locked); returns self."""
        self._pending.load()
        self._paired = read_json(self.folder / "paired.json", {}) or {}
        return self

    # -- reading

    def paired(self, device_id: str) -> dict[str, Any] | None:
        return self._paired.get(device_id)

    def pending(self, now_ms: int) -> list[dict[str, Any]]:
        return self._pending.list(now_ms)

    def all_paired(self) -> list[dict[str, Any]]:
        return sorted(self._paired.values(), key=lambda r: r.get("approvedAtMs", 0))

    # -- pairing

    def request(self, fields: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], list[Resolution]]:
        """
        Create (or reuse) the pending request for a device. A request with a
        different role, scopes or key supersedes the old one (rejected).
        """
        superseded = []
        for existing in self._pending.where("deviceId", fields["deviceId"]):
            if all(existing.get(k) == fields.get(k) for k in ("publicKey", "role", "scopes")):
                return self._pending.touch(existing, now_ms), []
            self._pending.pop(existing["requestId"])
            superseded.append(Resolution(existing["requestId"], existing["deviceId"], "rejected", now_ms))
        return self._pending.add(fields, now_ms), superseded

    def approve(self, request_id: str, now_ms: int) -> dict[str, Any] | None:
        request = self._pending.pop(request_id)
        return None if request is None else self._approve_fields(request, now_ms)

    def approve_directly(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Silent approval (direct-local): no pending request is left behind."""
        for existing in self._pending.where("deviceId", fields["deviceId"]):
            self._pending.pop(existing["requestId"])
        return self._approve_fields(fields, now_ms)

    def _approve_fields(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        device_id = fields["deviceId"]
        previous = self._paired.get(device_id) or {}
        same_key = bool(previous) and previous.get("publicKey") == fields.get("publicKey")
        roles = sorted(set(previous.get("roles", []) if same_key else []) | {fields.get("role", "operator")})
        scopes = sorted(set(previous.get("scopes", []) if same_key else []) | set(fields.get("scopes") or []))
        record = {
            "deviceId": device_id,
            "publicKey": fields.get("publicKey"),
            "displayName": fields.get("displayName"),
            "platform": fields.get("platform"),
            "deviceFamily": fields.get("deviceFamily"),
            "clientId": fields.get("clientId"),
            "clientMode": fields.get("clientMode"),
            "role": fields.get("role"),
            "roles": roles,
            "scopes": scopes,
            "remoteIp": fields.get("remoteIp"),
            "tokens": previous.get("tokens", {}) if same_key else {},
            "createdAtMs": previous.get("createdAtMs", now_ms) if same_key else now_ms,
            "approvedAtMs": now_ms,
        }
        self._paired[device_id] = {k: v for k, v in record.items() if v is not None}
        self._save_paired()
        return self._paired[device_id]

    def reject(self, request_id: str) -> dict[str, Any] | None:
        return self._pending.pop(request_id)

    def remove(self, device_id: str) -> bool:
        if self._paired.pop(device_id, None) is None:
            return False
        self._save_paired()
        return True

    # -- device tokens

    def ensure_token(self, device_id: str, role: str, scopes: Iterable[str], now_ms: int) -> dict[str, Any]:
        record = self._paired[device_id]
        token = record.setdefault("tokens", {}).get(role)
        if token is None or token.get("revokedAtMs"):
            token = {"token": new_token(), "role": role, "scopes": sorted(set(scopes)), "createdAtMs": now_ms}
            record["tokens"][role] = token
        token["lastUsedAtMs"] = now_ms
        self._save_paired()
        return token

    def check_token(self, device_id: str, role: str, given: str) -> dict[str, Any] | None:
        record = self._paired.get(device_id)
        token = (record or {}).get("tokens", {}).get(role)
        if not token or token.get("revokedAtMs") or not secret_equal(given, token["token"]):
            return None
        return token

    def rotate(self, device_id: str, role: str, scopes: list[str] | None, now_ms: int) -> dict[str, Any] | None:
        record = self._paired.get(device_id)
        if record is None:
            return None
        old = record.setdefault("tokens", {}).get(role, {})
        token = {
            "token": new_token(),
            "role": role,
            "scopes": sorted(set(scopes if scopes is not None else old.get("scopes", record.get("scopes", [])))),
            "createdAtMs": old.get("createdAtMs", now_ms),
            "rotatedAtMs": now_ms,
        }
        record["tokens"][role] = token
        if role not in record.setdefault("roles", []):
            record["roles"] = sorted({*record["roles"], role})
        self._save_paired()
        return token

    def revoke(self, device_id: str, role: str, now_ms: int) -> dict[str, Any] | None:
        token = (self._paired.get(device_id) or {}).get("tokens", {}).get(role)
        if token is None:
            return None
        token["revokedAtMs"] = now_ms
        self._save_paired()
        return token

    # -- persistence

    def _save_paired(self) -> None:
        write_json(self.folder / "paired.json", self._paired)


def redacted(record: dict[str, Any]) -> dict[str, Any]:
    """A paired record without token values (what device.pair.list shows)."""
    out = dict(record)
    out["tokens"] = {role: {k: v for k, v in t.items() if k != "token"} for role, t in record.get("tokens", {}).items()}
    return out
