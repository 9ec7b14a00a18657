# -*- test-case-name: tests.test_nodes -*-
"""
What the gateway does with a node's event (C{node.event} on the WebSocket,
C{event} frames on the bridge): chat subscriptions, exec reports, presence
beacons, and voice transcripts or agent requests that start agent runs.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from twisted.logger import Logger

from openclaw.interfaces import AgentRunner, PresenceSink

log = Logger(namespace="openclaw.nodes")

MAX_NODE_SUBSCRIPTIONS = 64
_PRESENCE_FIELDS = ("displayName", "version", "platform", "deviceFamily", "modelIdentifier")


class NodeEvents:
    def __init__(self, presence: PresenceSink, agent: AgentRunner) -> None:
        self.presence = presence
        self.agent = agent

    def handle(self, node_id: str | None, event: str, payload: Any, payload_json: Any, subscriptions: set[str] | None = None) -> dict[str, Any]:
        """Act on one event; says whether it was handled. C{subscriptions}: the sending node's (changed in place)."""
        if payload is None and isinstance(payload_json, str):
            try:
                payload = json.loads(payload_json)
            except ValueError:
                return {"ok": False, "event": event, "handled": False, "reason": "payloadJSON is not JSON"}
        data = payload if isinstance(payload, dict) else {}
        if event in ("chat.subscribe", "chat.unsubscribe") and subscriptions is not None:
            key = data.get("sessionKey")
            if not isinstance(key, str) or not key:
                return {"ok": False, "event": event, "handled": False, "reason": "sessionKey required"}
            if event == "chat.subscribe" and len(subscriptions) < MAX_NODE_SUBSCRIPTIONS:
                subscriptions.add(key)
            else:
                subscriptions.discard(key)
            return {"ok": True, "event": event, "handled": True}
        if event in ("exec.started", "exec.finished", "exec.denied"):
            log.info("node {node} {event}: {command}", node=node_id, event=event, command=str(data.get("command", ""))[:200], exitCode=data.get("exitCode"))
            return {"ok": True, "event": event, "handled": True}
        if event == "node.presence.alive" and node_id:
            fields = {k: v for k, v in data.items() if k in _PRESENCE_FIELDS and isinstance(v, str)}
            self.presence.update(node_id, fields | {"mode": "node", "reason": "alive", "deviceId": node_id})
            return {"ok": True, "event": event, "handled": True}
        if event in ("voice.transcript", "agent.request"):
            text = data.get("text") if event == "voice.transcript" else data.get("message")
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "event": event, "handled": False, "reason": "text required" if event == "voice.transcript" else "message required"}
            default_key = "main" if event == "voice.transcript" else f"node-{node_id}"
            given_key, given_id = data.get("sessionKey"), data.get("idempotencyKey")
            key = given_key if isinstance(given_key, str) and given_key else default_key
            run_id = given_id if isinstance(given_id, str) else f"{event}-{uuid.uuid4()}"
            try:
                run = self.agent.start(key, text, run_id)
            except Exception as e:  # a bad key or a full queue: say so, keep the node connected
                return {"ok": False, "event": event, "handled": False, "reason": str(e)}
            return {"ok": True, "event": event, "handled": True, "runId": run.run_id}
        return {"ok": True, "event": event, "handled": False, "reason": "unknown event"}
