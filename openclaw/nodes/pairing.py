# -*- test-case-name: tests.test_nodes -*-
"""
The v3 node pairing store (C{nodes/pending.json}, C{nodes/paired.json}):
per-node tokens, used by the JSONL bridge and the C{node.pair.*} methods.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from openclaw.gateway.auth import secret_equal
from openclaw.pending import PendingRequests
from openclaw.store import read_json, write_json

FIELDS = ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier", "caps", "commands", "permissions", "remoteIp")


class NodePairingStore:
    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "nodes"
        self._pending = PendingRequests(self.folder / "pending.json")
        self._paired: dict[str, dict[str, Any]] = read_json(self.folder / "paired.json", {}) or {}

    def pending(self, now_ms: int) -> list[dict[str, Any]]:
        return self._pending.list(now_ms)

    def paired(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "token"} for r in sorted(self._paired.values(), key=lambda r: r.get("approvedAtMs", 0))]

    def paired_record(self, node_id: str) -> dict[str, Any] | None:
        return self._paired.get(node_id)

    def request(self, node_id: str, fields: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], bool]:
        """The pending request for a node (reused if one exists) and whether it is new."""
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
        return bool(record and token and secret_equal(token, record["token"]))
