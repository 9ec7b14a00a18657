# -*- test-case-name: tests.test_status -*-
"""
What C{health} and C{status} say about agents, heartbeats and sessions,
read from the settings and the session stores: nothing is assumed.

Until a scheduler reports its own heartbeat
(L{openclaw.gateway.health.HeartbeatReport.use}; scheduled work does when it
is installed), every agent's heartbeat is reported as upstream reports a
disabled one (C{every: "disabled"}).
"""

from __future__ import annotations

from typing import Any, Protocol

from openclaw.agent.sessions import SessionError, SessionStore
from openclaw.config.settings import AgentSettings, HeartbeatSettings

HEALTH_RECENT = 5  # upstream: health lists 5 recent sessions, status 10
STATUS_RECENT = 10


def agent_rows(agents: AgentSettings) -> list[dict[str, Any]]:
    """The configured agents as health, status and C{agents.list} show them (just C{main} when none are)."""
    return [{"id": a.id, **({"name": a.name} if a.name is not None else {})} for a in agents.entries]


def heartbeat_summary(heartbeat: HeartbeatSettings) -> dict[str, Any]:
    """An agent's heartbeat as health shows it while no scheduler reports one: disabled."""
    summary: dict[str, Any] = {
        "enabled": False,
        "every": "disabled",
        "everyMs": None,
        "prompt": heartbeat.prompt,
        "target": heartbeat.target,
        "ackMaxChars": heartbeat.ack_max_chars,
    }
    if heartbeat.model is not None:
        summary["model"] = heartbeat.model
    return summary


class SessionStores(Protocol):
    """Where agents keep their sessions (L{openclaw.agent.runtime.AgentRuntime})."""

    def store(self, agent_id: str = "main") -> SessionStore: ...


def store_of(stores: SessionStores, agent_id: str) -> SessionStore | None:
    """The agent's session store, or None for an agent id in the config that cannot name a folder."""
    try:
        return stores.store(agent_id)
    except SessionError:
        return None


def session_rows(store: SessionStore | None, now_ms: int) -> list[dict[str, Any]]:
    """Every session of one store, newest first, as status lists them."""
    if store is None:
        return []
    rows = []
    for key, entry in store.rows():
        updated = entry.get("updatedAt") if isinstance(entry.get("updatedAt"), int) else None
        row = {
            "key": key,
            "sessionId": entry.get("sessionId"),
            "updatedAt": updated,
            "age": max(0, now_ms - updated) if updated else None,
            "totalTokens": entry.get("totalTokens", 0),
        }
        for name in ("label", "thinkingLevel", "verboseLevel", "modelOverride"):
            if name in entry:
                row[name] = entry[name]
        rows.append(row)
    return rows


def health_sessions(store: SessionStore | None, now_ms: int) -> dict[str, Any]:
    rows = session_rows(store, now_ms)
    recent = [{"key": r["key"], "updatedAt": r["updatedAt"], "age": r["age"]} for r in rows[:HEALTH_RECENT]]
    return {"path": str(store.index_path) if store else "", "count": len(rows), "recent": recent}


def status_sessions(agents: AgentSettings, stores: SessionStores, now_ms: int, sensitive: bool) -> dict[str, Any]:
    """
    C{status.sessions}: counts from every agent's store; paths and recent rows
    only for admin callers (session keys can name people), as upstream v4.
    """
    paths: list[str] = []
    everything: list[dict[str, Any]] = []
    by_agent = []
    for agent in agents.entries:
        store = store_of(stores, agent.id)
        rows = [{"agentId": agent.id, **r} for r in session_rows(store, now_ms)]
        path = str(store.index_path) if store else ""
        if store:
            paths.append(path)
        everything.extend(rows)
        by_agent.append({"agentId": agent.id, "path": path if sensitive else "[redacted]", "count": len(rows), "recent": rows[:STATUS_RECENT] if sensitive else []})
    everything.sort(key=lambda r: r["updatedAt"] or 0, reverse=True)
    return {
        "paths": paths if sensitive else [],
        "count": len(everything),
        "defaults": {"model": agents.default_model, "contextTokens": None},
        "recent": everything[:STATUS_RECENT] if sensitive else [],
        "byAgent": by_agent,
    }
