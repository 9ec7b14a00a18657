# -*- test-case-name: tests.test_status -*-
"""
What C{health} and C{status} say about agents, heartbeats and sessions,
read from the config and the session stores: nothing is assumed.

No heartbeat scheduler runs in this gateway yet, so every agent's heartbeat
is reported as upstream reports a disabled one (C{every: "disabled"}).
"""

from __future__ import annotations

from typing import Any, Mapping

from openclaw.agent.sessions import SessionError, SessionStore

DEFAULT_AGENT = "main"
HEALTH_RECENT = 5  # upstream: health lists 5 recent sessions, status 10
STATUS_RECENT = 10
DEFAULT_TARGET = "last"
DEFAULT_ACK_MAX_CHARS = 300
DEFAULT_PROMPT = (
    "Read HEARTBEAT.md if it exists (workspace context). Follow it strictly. Do not infer or repeat old "
    "tasks from prior chats. If nothing needs attention, reply HEARTBEAT_OK."
)


def agent_ids(config: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The default agent id and the configured agents (C{agents.list}, else just C{main})."""
    listed = [a for a in ((config.get("agents") or {}).get("list") or []) if isinstance(a, dict) and isinstance(a.get("id"), str)]
    agents = [{"id": a["id"], **({"name": a["name"]} if isinstance(a.get("name"), str) else {})} for a in listed] or [{"id": DEFAULT_AGENT}]
    default = next((a["id"] for a in listed if a.get("default")), agents[0]["id"])
    return default, agents


def heartbeat_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's heartbeat as health shows it: disabled, since nothing would run it."""
    defaults = ((config.get("agents") or {}).get("defaults") or {}).get("heartbeat") or {}
    defaults = defaults if isinstance(defaults, dict) else {}
    summary: dict[str, Any] = {
        "enabled": False,
        "every": "disabled",
        "everyMs": None,
        "prompt": defaults.get("prompt") if isinstance(defaults.get("prompt"), str) else DEFAULT_PROMPT,
        "target": defaults.get("target") if isinstance(defaults.get("target"), str) else DEFAULT_TARGET,
        "ackMaxChars": defaults.get("ackMaxChars") if isinstance(defaults.get("ackMaxChars"), int) else DEFAULT_ACK_MAX_CHARS,
    }
    if isinstance(defaults.get("model"), str):
        summary["model"] = defaults["model"]
    return summary


def store_of(hub: Any, agent_id: str) -> SessionStore | None:
    """The agent's session store: the runtime's when there is one (a unit hub has none)."""
    try:
        if getattr(hub, "agent", None) is not None:
            return hub.agent.store(agent_id)
        return SessionStore(hub.settings.state_dir, agent_id)
    except SessionError:
        return None  # an agent id in the config that cannot name a folder


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


def status_sessions(hub: Any, now_ms: int, sensitive: bool) -> dict[str, Any]:
    """
    C{status.sessions}: counts from every agent's store; paths and recent rows
    only for admin callers (session keys can name people), as upstream v4.
    """
    _, agents = agent_ids(hub.settings.config)
    paths: list[str] = []
    everything: list[dict[str, Any]] = []
    by_agent = []
    for agent in agents:
        store = store_of(hub, agent["id"])
        rows = [{"agentId": agent["id"], **r} for r in session_rows(store, now_ms)]
        path = str(store.index_path) if store else ""
        if store:
            paths.append(path)
        everything.extend(rows)
        by_agent.append({"agentId": agent["id"], "path": path if sensitive else "[redacted]", "count": len(rows), "recent": rows[:STATUS_RECENT] if sensitive else []})
    everything.sort(key=lambda r: r["updatedAt"] or 0, reverse=True)
    return {
        "paths": paths if sensitive else [],
        "count": len(everything),
        "defaults": {"model": default_model(hub.settings.config), "contextTokens": None},
        "recent": everything[:STATUS_RECENT] if sensitive else [],
        "byAgent": by_agent,
    }


def default_model(config: Mapping[str, Any]) -> str | None:
    """C{agents.defaults.model} (its primary), as configured."""
    chosen = ((config.get("agents") or {}).get("defaults") or {}).get("model")
    if isinstance(chosen, dict):
        chosen = chosen.get("primary")
    return chosen if isinstance(chosen, str) and chosen else None
