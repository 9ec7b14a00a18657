# -*- test-case-name: tests.test_uimethods -*-
"""
What a chat view needs when it opens a session (upstream's v4 Control UI):

  - C{chat.startup}: the history page of C{chat.history} plus the session's
    row (C{sessionInfo}) and the agent's defaults (model, context), in one
    answer; a short chat link (C{shortId}) resolves to nothing, as there are
    no short links here;
  - C{chat.metadata}: the agent's model catalog and the chat commands and
    directives this gateway interprets;
  - C{sessions.describe}: one session's row (C{null} before its first message);
  - C{sessions.branches.list}: the session's branches. Transcripts here are
    linear, so a session with messages has exactly one, the active one.

Reads only: no session is created by looking at it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs

from openclaw.agent.catalog import catalog
from openclaw.agent.methods import display_messages, history
from openclaw.agent.providers import resolve_models
from openclaw.agent.commands import COMMANDS, DIRECTIVES, HELP, QUEUE_MODES, THINK_LEVELS, USAGE_MODES, VERBOSE_LEVELS
from openclaw.agent.runtime import AgentRuntime, model_override
from openclaw.agent.sessions import SessionStore, canonical_key, kind_of
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Bool, Int, List, Obj, Str

DEFAULT_LIMIT = 200
HEADLINE_CHARS = 120
_KEY = Str(nonempty=True, max_length=512)
_TEXT = Str()


@attrs.frozen
class ChatViewDeps:
    """The agent runtime: its sessions, runs and settings."""

    runtime: AgentRuntime


CHAT_VIEW_METHODS: MethodTable[ChatViewDeps] = MethodTable()


def _store_and_key(runtime: AgentRuntime, raw: str, agent_id: str | None) -> tuple[SessionStore, str]:
    key = canonical_key(raw or "main", agent_id or "main")
    return runtime.store(key.split(":", 2)[1]), key


def agent_model(runtime: AgentRuntime, agent_id: str) -> dict[str, JSON]:
    """The agent's model as the UI's defaults name it: provider, model, context window when the catalog knows it."""
    settings = runtime.settings
    refs = resolve_models(settings.config, settings.env, agent_id)
    if not refs:
        return {}
    ref = refs[0]
    window = next((r.get("contextWindow") for r in catalog(settings.config, settings.env, agent_id) if r["provider"] == ref.provider and r["id"] == ref.model), None)
    return {"model": ref.model, "modelProvider": ref.provider, **({"contextTokens": window} if window else {})}


def session_info(runtime: AgentRuntime, key: str, entry: dict[str, Any] | None) -> dict[str, JSON]:
    """One session's row: what C{sessions.list} says about it, plus its agent and model."""
    agent_id = key.split(":", 2)[1]
    entry = entry or {}
    active = runtime.active.get(key)
    row: dict[str, JSON] = {
        "key": key,
        "agentId": agent_id,
        "kind": kind_of(key),
        "displayName": entry.get("label") or entry.get("displayName") or key.split(":", 2)[2],
        "updatedAt": entry.get("updatedAt"),
        "totalTokens": entry.get("totalTokens", 0),
        "isMain": key == canonical_key("main", agent_id),
        "hasActiveRun": active is not None,
        "activeRunIds": [active.run_id] if active is not None else [],
        **({"status": "running"} if active is not None else {}),
        **agent_model(runtime, agent_id),
    }
    if entry.get("sessionId"):
        row["sessionId"] = entry["sessionId"]
    for name in ("label", "thinkingLevel", "verboseLevel"):
        if name in entry:
            row[name] = entry[name]
    chosen = model_override(entry)  # the session's own model (sessions.patch, /model)
    if chosen:
        provider, _, model = chosen.partition("/")
        if model:
            row["model"], row["modelProvider"] = model, provider
    return row


_STARTUP = Obj(
    {
        "sessionKey": _KEY,
        "agentId": Str(nonempty=True),
        "limit": Int(1, 1000),
        "maxBytes": Int(1024),
        "maxChars": Int(1, 500_000),
        "inputRunIds": List(Str(nonempty=True, max_length=256), min_items=1, max_items=50),
        "shortId": Str(nonempty=True),
        "slugHint": Str(nonempty=True),
    },
    closed=True,
)
_STARTUP_IGNORED = (
    Ignored(
        "no history paging or message lookup: the newest `limit` messages are returned",
        {"cursor": _TEXT, "offset": Int(0), "pendingBefore": Int(1), "messageId": Str(nonempty=True), "sessionId": Str(nonempty=True)},
    ),
)


@CHAT_VIEW_METHODS.method("chat.startup", _STARTUP, ignored=_STARTUP_IGNORED)
def chat_startup(cd: ChatViewDeps, caller: Caller, params: Params) -> JSON:
    if "shortId" in params:
        if "sessionKey" in params or not params.get("agentId"):
            raise GatewayError(INVALID_REQUEST, "invalid chat.startup params: give sessionKey, or shortId with agentId")
        return {"resolution": {"ok": False}}  # no short chat links on this gateway
    if "sessionKey" not in params:
        raise GatewayError(INVALID_REQUEST, "invalid chat.startup params: sessionKey is required")
    if "slugHint" in params:
        raise GatewayError(INVALID_REQUEST, "invalid chat.startup params: slugHint goes with shortId")
    runtime = cd.runtime
    store, key = _store_and_key(runtime, params["sessionKey"], params.get("agentId"))
    entry = store.get(key)
    page, total = history(runtime, {**params, "sessionKey": key})
    info = session_info(runtime, key, entry)
    return {
        **page,
        "totalMessages": total,
        "hasMore": len(page["messages"]) < total,
        "pendingInputs": {"items": [], "total": 0},
        "defaults": {**agent_model(runtime, info["agentId"]), "modelSelectionTarget": "session"},
        "sessionInfo": info,
        "verboseLevel": (entry or {}).get("verboseLevel"),
    }


_CHOICES = {"think": THINK_LEVELS, "verbose": VERBOSE_LEVELS, "queue": QUEUE_MODES, "usage": USAGE_MODES}
_TAKES_TEXT = {"new": "text for the new session", "compact": "instructions for the summary", "model": "provider/model, a number from /model list, list, status or default"}
_CATEGORY = {"new": "session", "stop": "session", "compact": "session", "think": "options", "verbose": "options", "model": "options", "queue": "options"}


def commands() -> list[dict[str, JSON]]:
    """The chat commands and directives this gateway interprets (L{openclaw.agent.commands}), as upstream lists them."""
    names = {**COMMANDS, **DIRECTIVES}
    out: list[dict[str, JSON]] = []
    for name, help in HELP.items():
        aliases = [f"/{name}", *(f"/{alias}" for alias, canonical in names.items() if canonical == name and alias != name)]
        entry: dict[str, JSON] = {
            "name": name,
            "nativeName": name,
            "textAliases": aliases,
            "description": help[:1].upper() + help[1:] + ".",
            "acceptsArgs": name in _CHOICES or name in _TAKES_TEXT,
            "category": _CATEGORY.get(name, "status"),
            "scope": "text",
            "source": "native",
        }
        if name in _CHOICES:
            entry["args"] = [{"name": "value", "description": " or ".join(_CHOICES[name]), "type": "string", "choices": [{"label": c, "value": c} for c in _CHOICES[name]]}]
        elif name in _TAKES_TEXT:
            entry["args"] = [{"name": "text", "description": _TAKES_TEXT[name], "type": "string"}]
        out.append(entry)
    return out


_METADATA = Obj({"agentId": Str(nonempty=True), "sessionKey": Str(nonempty=True), "authProfileId": Str(nonempty=True, max_length=256)}, closed=True)


@CHAT_VIEW_METHODS.method("chat.metadata", _METADATA)
def chat_metadata(cd: ChatViewDeps, caller: Caller, params: Params) -> JSON:
    if "authProfileId" in params:
        if "sessionKey" in params:
            raise GatewayError(INVALID_REQUEST, "invalid chat.metadata params: authProfileId cannot be combined with sessionKey")
        raise GatewayError(INVALID_REQUEST, "unknown authProfileId: this gateway has no saved model accounts (providers are keyed in the config)")
    runtime = cd.runtime
    agent_id = params.get("agentId") or "main"
    if "sessionKey" in params:
        _, key = _store_and_key(runtime, params["sessionKey"], params.get("agentId"))
        agent_id = key.split(":", 2)[1]
    runtime.store(agent_id)  # an unknown agent is refused
    settings = runtime.settings
    models = [row for row in catalog(settings.config, settings.env, agent_id) if row.get("available")]
    result: dict[str, JSON] = {
        "models": models,
        "commands": commands(),
        "accountSelection": {"kind": "automatic", "label": "Provider keys from the config"},
        "swarmEnabled": False,
    }
    if "sessionKey" in params:
        result["runtimeSelectionLocked"] = False
    return result


_DESCRIBE = Obj({"key": _KEY, "agentId": Str(nonempty=True), "includeDerivedTitles": Bool(), "includeLastMessage": Bool()}, required=("key",), closed=True)


@CHAT_VIEW_METHODS.method("sessions.describe", _DESCRIBE)
def sessions_describe(cd: ChatViewDeps, caller: Caller, params: Params) -> JSON:
    store, key = _store_and_key(cd.runtime, params["key"], params.get("agentId"))
    entry = store.get(key)
    if entry is None:
        return {"session": None}
    row = session_info(cd.runtime, key, entry)
    if params.get("includeLastMessage"):
        messages = display_messages(store.messages(key, 4))
        if messages:
            row["lastMessage"] = messages[-1]
    if params.get("includeDerivedTitles"):
        headline = _headline(store, key)
        if headline:
            row["derivedTitle"] = headline
    return {"session": row}


def _text(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message.get("content") or [] if isinstance(p, dict) and p.get("type") == "text")


def _headline(store: SessionStore, key: str) -> str:
    for entry in store.message_entries(key):
        message = entry.get("message") or {}
        if message.get("role") == "user" and _text(message).strip():
            return " ".join(_text(message).split())[:HEADLINE_CHARS]
    return ""


@CHAT_VIEW_METHODS.method("sessions.branches.list", Obj({"sessionKey": _KEY, "agentId": Str(nonempty=True)}, required=("sessionKey",), closed=True))
def sessions_branches_list(cd: ChatViewDeps, caller: Caller, params: Params) -> JSON:
    store, key = _store_and_key(cd.runtime, params["sessionKey"], params.get("agentId"))
    entries = store.message_entries(key) if store.get(key) else []
    if not entries:
        return {"branches": []}
    leaf = entries[-1]
    updated = (store.get(key) or {}).get("updatedAt")
    branch: dict[str, JSON] = {"leafEntryId": leaf["id"], "headline": _headline(store, key) or "(no text)", "messageCount": len(entries), "active": True}
    if isinstance(updated, int):
        branch["updatedAt"] = datetime.fromtimestamp(updated / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"branches": [branch]}
