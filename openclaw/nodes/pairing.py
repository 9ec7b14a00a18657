# -*- test-case-name: tests.test_nodes -*-
"""
The v3 node pairing store (C{nodes/pending.json}, C{nodes/paired.json}):
per-node tokens, used by the JSONL bridge and the C{node.pair.*} methods.

Anyone who can reach the bridge may ask to pair, so every field that reaches
disk is bounded (L{check_fields}) and pending changes are coalesced.
"""

from __future__ import annotations

import hmac
import uuid
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime

from openclaw.pending import PendingRequests
from openclaw.store import read_json, write_json

FIELDS = ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier", "caps", "commands", "permissions", "remoteIp")
TEXT_FIELDS = ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier", "remoteIp")
MAX_NODE_ID = 256
MAX_NAME = 120  # displayName, here and in node.rename
MAX_TEXT = 256
MAX_ITEMS = 128  # caps, commands, permissions
MAX_ITEM = 128


class FieldError(ValueError):
    """A node's self-description is too large (or of the wrong type) to keep."""


def check_fields(node_id: Any, fields: dict[str, Any]) -> None:
    """
    Raise L{FieldError} unless the node id and the fields a node describes
    itself with fit the bounds (the same limits for both transports).
    """
    if not isinstance(node_id, str) or not node_id.strip() or len(node_id) > MAX_NODE_ID:
        raise FieldError(f"nodeId must be 1 to {MAX_NODE_ID} characters")
    for key in TEXT_FIELDS:
        value = fields.get(key)
        limit = MAX_NAME if key == "displayName" else MAX_TEXT
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise FieldError(f"{key} must be a string of at most {limit} characters")
    for key in ("caps", "commands"):
        value = fields.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) > MAX_ITEMS or not all(isinstance(v, str) and len(v) <= MAX_ITEM for v in value):
            raise FieldError(f"{key} must be at most {MAX_ITEMS} strings of at most {MAX_ITEM} characters")
    permissions = fields.get("permissions")
    if permissions is not None and (
        not isinstance(permissions, dict) or len(permissions) > MAX_ITEMS or not all(len(k) <= MAX_ITEM and isinstance(v, bool) for k, v in permissions.items())
    ):
        raise FieldError(f"permissions must be at most {MAX_ITEMS} names (at most {MAX_ITEM} characters) mapped to true or false")


class NodePairingStore:
    def __init__(self, state_dir: Path, clock: IReactorTime | None = None) -> None:
        self.folder = Path(state_dir) / "nodes"
        self._pending = PendingRequests(self.folder / "pending.json", clock=clock)
        self._paired: dict[str, dict[str, Any]] = {}

    def load(self) -> "NodePairingStore":
        """Read both files (at start, with the state dir locked); returns self."""
        self._pending.load()
        self._paired = read_json(self.folder / "paired.json", {}) or {}
        return self

    def pending(self, now_ms: int) -> list[dict[str, Any]]:
        return self._pending.list(now_ms)

    def paired(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "token"} for r in sorted(self._paired.values(), key=lambda r: r.get("approvedAtMs", 0))]

    def paired_record(self, node_id: str) -> dict[str, Any] | None:
        return self._paired.get(node_id)

    def flush(self) -> None:
        self._pending.flush()

    def request(self, node_id: str, fields: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], bool]:
        """
        The pending request for a node (reused if one exists) and whether it is new.

        @raise FieldError: a field is out of bounds.
        """
        check_fields(node_id, fields)
        self._pending.expire(now_ms)
        for existing in self._pending.where("nodeId", node_id):
            return self._pending.touch(existing, now_ms), False
        kept = {k: fields[k] for k in FIELDS if fields.get(k) is not None}
        return self._pending.add({"nodeId": node_id, **kept, "silent": bool(fields.get("silent"))}, now_ms), True

    def approve(self, request_id: str, now_ms: int) -> dict[str, Any] | None:
        request = self._pending.pop(request_id)
        if request is None:
            return None
        record = {k: v for k, v in request.items() if k not in ("requestId", "ts", "silent")}
        record.update(token=uuid.uuid4().hex, createdAtMs=now_ms, approvedAtMs=now_ms)
        self._paired[request["nodeId"]] = record
        write_json(self.folder / "paired.json", self._paired)
        return record

    def reject(self, request_id: str) -> dict[str, Any] | None:
        return self._pending.pop(request_id)

    def verify(self, node_id: str, token: str) -> bool:
        record = self._paired.get(node_id)
        return bool(record and token and hmac.compare_digest(token.encode("utf-8"), record["token"].encode("utf-8")))
