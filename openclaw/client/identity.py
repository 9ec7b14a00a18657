# -*- test-case-name: tests.test_client -*-
"""
This machine's device identity (Ed25519) and its stored device tokens, in
the v3 layout: C{identity/device.json} and C{identity/device-auth.json},
both 0600, written crash-safe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openclaw.gateway.devices import b64url, device_id_of
from openclaw.store import read_json, write_json


class DeviceIdentity:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.id = device_id_of(self.raw_public)
        self.public_key = b64url(self.raw_public)

    @classmethod
    def load_or_create(cls, state_dir: Path) -> "DeviceIdentity":
        path = Path(state_dir) / "identity" / "device.json"
        stored = read_json(path)
        if isinstance(stored, dict) and stored.get("privateKeyPem"):
            key = serialization.load_pem_private_key(stored["privateKeyPem"].encode(), password=None)
            if isinstance(key, Ed25519PrivateKey):
                return cls(key)
        identity = cls(Ed25519PrivateKey.generate())
        write_json(
            path,
            {
                "version": 1,
                "deviceId": identity.id,
                "publicKeyPem": identity.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                "privateKeyPem": identity.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode(),
                "createdAtMs": int(time.time() * 1000),
            },
        )
        return identity

    def sign_connect(self, params: dict[str, Any], nonce: str, signed_at: int, token: str) -> dict[str, Any]:
        """The C{device} block for a connect: a v3 payload signature."""
        client = params["client"]
        payload = "|".join(
            [
                "v3",
                self.id,
                client["id"],
                client["mode"],
                params.get("role", "operator"),
                ",".join(params.get("scopes", [])),
                str(signed_at),
                token,
                nonce,
                (client.get("platform") or "").strip().lower(),
                (client.get("deviceFamily") or "").strip().lower(),
            ]
        )
        return {
            "id": self.id,
            "publicKey": self.public_key,
            "signature": b64url(self.key.sign(payload.encode("utf-8"))),
            "signedAt": signed_at,
            "nonce": nonce,
        }


class DeviceTokens:
    """Device tokens the gateway issued to this machine, per device and role."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "identity" / "device-auth.json"

    def get(self, device_id: str, role: str) -> str | None:
        stored = read_json(self.path, {}) or {}
        entry = stored.get("tokens", {}).get(f"{device_id}:{role}")
        return entry.get("token") if isinstance(entry, dict) else None

    def put(self, device_id: str, role: str, token: str, scopes: list[str]) -> None:
        stored = read_json(self.path, {}) or {}
        tokens = stored.setdefault("tokens", {})
        if tokens.get(f"{device_id}:{role}", {}).get("token") == token:
            return
        tokens[f"{device_id}:{role}"] = {"token": token, "role": role, "scopes": scopes, "updatedAtMs": int(time.time() * 1000)}
        stored["version"] = 1
        write_json(self.path, stored)

    def clear(self, device_id: str, role: str) -> None:
        stored = read_json(self.path, {}) or {}
        if stored.get("tokens", {}).pop(f"{device_id}:{role}", None) is not None:
            write_json(self.path, stored)
