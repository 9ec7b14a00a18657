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
from openclaw.store import read_json, write_json

PENDING_TTL_MS = 5 * 60 * 1000
MAX_PENDING = 200
FIELDS = ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier", "caps", "commands", "permissions", "remoteIp")


class NodePairingStore:
    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "nodes"
        self._pending: dict[str, dict[str, Any]] = read_json(self.folder / "pending.json", {}) or {}
        self._paired: dict[str, dict[str, Any]] = read_json(self.folder / "paired.json", {}) or {}

    def expire(self, now_ms: int) -> list[dict[str, Any]]:
        gone = [r for r in self._pending.values() if now_ms - r["ts"] > PENDING_TTL_MS]
        for r in gone:
            del self._pending[r["requestId"]]
        if gone:
            self._save()
        return gone

    def pending(self, now_ms: int) -> list[dict[str, Any]]:
        self.expire(now_ms)
        return sorted(self._pending.values(), key=lambda r: r["ts"])

    def paired(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "token"} for r in sorted(self._paired.values(), key=lambda r: r.get("approvedAtMs", 0))]

    def paired_record(self, node_id: str) -> dict[str, Any] | None:
        return self._paired.get(node_id)

    def request(self, node_id: str, fields: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], bool]:
        """The pending request for a node (reused if one exists) and whether it is new."""
        self.expire(now_ms)
        for existing in self._pending.values():
            if existing["nodeId"] == node_id:
                existing["ts"] = now_ms
                self._save()
                return existing, False
        if len(self._pending) >= MAX_PENDING:
            oldest = min(self._pending.values(), key=lambda r: r["ts"])
            del self._pending[oldest["requestId"]]
        request = {"requestId": str(uuid.uuid4()), "nodeId": node_id, **{k: fields[k] for k in FIELDS if fields.get(k) is not None}, "silent": bool(fields.get("silent")), "ts": now_ms}
        self._pending[request["requestId"]] = request
        self._save()
        return request, True

    def approve(self, request_id: str, now_ms: int) -> dict[str, Any] | None:
        request = self._pending.pop(request_id, None)
        if request is None:
            return None
        record = {k: v for k, v in request.items() if k not in ("requestId", "ts", "silent")}
        record.update(token=uuid.uuid4().hex, createdAtMs=now_ms, approvedAtMs=now_ms)
        self._paired[request["nodeId"]] = record
        self._save()
        return record

    def reject(self, request_id: str) -> dict[str, Any] | None:
        request = self._pending.pop(request_id, None)
        if request is not None:
            self._save()
        return request

    def verify(self, node_id: str, token: str) -> bool:
        record = self._paired.get(node_id)
        return bool(record and token and secret_equal(token, record["token"]))

    def _save(self) -> None:
        write_json(self.folder / "pending.json", self._pending)
        write_json(self.folder / "paired.json", self._paired)
