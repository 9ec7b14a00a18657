# -*- test-case-name: tests.test_agent -*-
"""Agent, chat and session methods (spec §3.1) over the L{AgentRuntime}."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred

from openclaw.agent.runtime import is_reset, text_message
from openclaw.agent.sessions import SessionError, canonical_key, kind_of
from openclaw.gateway.connection import TwoPhase
from openclaw.gateway.methods import method
from openclaw.agent.providers import ProviderError
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Any_, Bool, Int, List, Obj, Str

AGENT_METHODS: dict[str, Any] = {}

_KEY = Str(nonempty=True, max_length=512)
_ID = Str(nonempty=True)


def runtime_of(conn: Any) -> Any:
    return conn.hub.agent


def key_of(params: dict[str, Any], field: str = "sessionKey") -> str:
    try:
        return canonical_key(params.get(field) or "main", params.get("agentId") or "main")
    except SessionError as e:
        raise GatewayError(INVALID_REQUEST, str(e))


# -- agent


_AGENT = Obj(
    {
        "message": Str(nonempty=True),
        "idempotencyKey": _ID,
        "agentId": Str(nonempty=True),
        "sessionKey": Str(),
        "sessionId": Str(),
        "to": Str(),
        "replyTo": Str(),
        "thinking": Str(),
        "deliver": Bool(),
        "bestEffortDeliver": Bool(),
        "attachments": List(Any_()),
        "channel": Str(),
        "replyChannel": Str(),
        "accountId": Str(),
        "replyAccountId": Str(),
        "threadId": Str(),
        "groupId": Str(),
        "timeout": Int(0),
        "lane": Str(),
        "extraSystemPrompt": Str(),
        "label": Str(nonempty=True, max_length=64),
        "spawnedBy": Str(),
    },
    required=("message", "idempotencyKey"),
    closed=True,
)


@method("agent", _AGENT, table=AGENT_METHODS)
def agent(conn, params):
    if is_reset(params["message"]) and "operator.admin" not in conn.scopes:
        raise GatewayError(INVALID_REQUEST, "missing scope: operator.admin")
    runtime = runtime_of(conn)
    run, created = runtime.submit(params.get("sessionKey") or "main", params["message"], params["idempotencyKey"], params.get("agentId"), params.get("timeout") or None)
    accepted = {"runId": run.run_id, "sessionKey": run.session_key, "agentId": run.agent_id, "status": "accepted", "acceptedAt": int(time.time() * 1000)}
    if not created and not run.outcome.done:
        accepted["status"] = "in_flight"
    return TwoPhase(accepted, run.outcome.wait())


@method("agent.wait", Obj({"runId": _ID, "timeoutMs": Int(0)}, required=("runId",), closed=True), table=AGENT_METHODS)
def agent_wait(conn, params):
    runtime = runtime_of(conn)
    run = runtime.lookup(params["runId"])
    if run is None:
        raise GatewayError(INVALID_REQUEST, "agent run was not found")
    if run.outcome.done:
        return _wait_payload(run)
    waited: Deferred[Any] = Deferred()
    timeout = (params.get("timeoutMs") or 30000) / 1000
    timer = runtime.reactor.callLater(timeout, lambda: waited.called or waited.callback({"runId": run.run_id, "status": "timeout", "startedAt": run.started_at}))

    def done(_: Any) -> None:
        if timer.active():
            timer.cancel()
        if not waited.called:
            waited.callback(_wait_payload(run))

    run.outcome.wait().addBoth(done)
    return waited


def _wait_payload(run: Any) -> dict[str, Any]:
    payload = {"runId": run.run_id, "status": {"aborted": "error"}.get(run.status, run.status), "startedAt": run.started_at, "endedAt": run.ended_at}
    if run.error:
        payload["error"] = run.error
    return payload


@method("agent.identity.get", Obj({"agentId": Str(), "sessionKey": Str()}, closed=True), table=AGENT_METHODS)
def agent_identity(conn, params):
    agent_id = params.get("agentId") or "main"
    for entry in (conn.hub.settings.config.get("agents") or {}).get("list") or []:
        if isinstance(entry, dict) and entry.get("id") == agent_id:
            identity = entry.get("identity") or {}
            out = {"agentId": agent_id, "name": identity.get("name") or entry.get("name") or "OpenClaw", "nameSource": "config"}
            if identity.get("emoji"):
                out["emoji"] = identity["emoji"]
            return out
    return {"agentId": agent_id, "name": "OpenClaw", "nameSource": "default"}


# -- chat


_CHAT_SEND = Obj(
    {
        "sessionKey": _KEY,
        "message": Str(nonempty=True),
        "idempotencyKey": _ID,
        "agentId": Str(),
        "sessionId": Str(),
        "thinking": Str(),
        "deliver": Bool(),
        "attachments": List(Any_()),
        "timeoutMs": Int(0),
        "queueMode": Str(("steer", "followup", "collect", "interrupt")),
        "fastMode": Bool(),
    },
    required=("sessionKey", "message", "idempotencyKey"),
    closed=True,
)


@method("chat.send", _CHAT_SEND, table=AGENT_METHODS)
def chat_send(conn, params):
    runtime = runtime_of(conn)
    timeout = params.get("timeoutMs")
    run, created = runtime.submit(params["sessionKey"], params["message"], params["idempotencyKey"], params.get("agentId"), timeout / 1000 if timeout else None, params.get("queueMode", "followup"))
    if created:
        return {"runId": run.run_id, "status": "started"}
    if not run.outcome.done:
        return {"runId": run.run_id, "status": "in_flight"}
    return {"runId": run.run_id, "status": run.outcome.value.get("status", "ok")}


_HISTORY = Obj({"sessionKey": _KEY, "agentId": Str(), "limit": Int(1, 1000), "sessionId": Str(), "maxChars": Int(1)}, required=("sessionKey",), closed=True)


def display_messages(messages: list[dict[str, Any]], max_chars: int | None = None) -> list[dict[str, Any]]:
    """History as clients show it: silent replies dropped, long texts cut."""
    out = []
    for m in messages:
        text = "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict) and p.get("type") == "text")
        if m.get("role") == "assistant" and text.strip() == "NO_REPLY":
            continue
        if max_chars and len(text) > max_chars:
            m = {**m, "content": [{"type": "text", "text": text[:max_chars]}]}
        out.append(m)
    return out


@method("chat.history", _HISTORY, table=AGENT_METHODS)
def chat_history(conn, params):
    key = key_of(params)
    store = runtime_of(conn).store(key.split(":", 2)[1])
    entry = store.get(key) or {}
    messages = display_messages(store.messages(key), params.get("maxChars"))
    limit = params.get("limit", 200)
    return {"sessionKey": key, "sessionId": entry.get("sessionId"), "messages": messages[-limit:], "thinkingLevel": entry.get("thinkingLevel")}


@method("chat.abort", Obj({"sessionKey": _KEY, "agentId": Str(), "runId": Str(), "preserveSideRuns": Bool()}, required=("sessionKey",), closed=True), table=AGENT_METHODS)
def chat_abort(conn, params):
    runtime = runtime_of(conn)
    key = key_of(params)
    run_id = params.get("runId")
    if run_id:
        run = runtime.lookup(run_id)
        if run is not None and run.session_key != key:
            raise GatewayError(INVALID_REQUEST, "runId does not match sessionKey")
    runs = runtime.abort(key, run_id)
    return {"ok": True, "aborted": bool(runs), "runIds": runs}


@method("chat.inject", Obj({"sessionKey": _KEY, "message": Str(nonempty=True), "agentId": Str(), "label": Str(max_length=100)}, required=("sessionKey", "message"), closed=True), table=AGENT_METHODS)
def chat_inject(conn, params):
    runtime = runtime_of(conn)
    key = key_of(params)
    store = runtime.store(key.split(":", 2)[1])
    note = text_message("assistant", params["message"], injected=True, **({"label": params["label"]} if params.get("label") else {}))
    record = store.append_message(key, note)
    conn.hub.broadcast_session("chat", {"runId": f"inject-{record['id']}", "sessionKey": key, "seq": 0, "state": "final", "message": note}, key)
    return {"ok": True, "messageId": record["id"]}


# -- sessions


def _row(key: str, entry: dict[str, Any], runtime: Any) -> dict[str, Any]:
    active = runtime.active.get(key)
    row = {
        "key": key,
        "kind": kind_of(key),
        "displayName": entry.get("label") or entry.get("displayName") or key.split(":", 2)[2],
        "updatedAt": entry.get("updatedAt", 0),
        "sessionId": entry.get("sessionId"),
        "totalTokens": entry.get("totalTokens", 0),
        "hasActiveRun": active is not None,
    }
    for name in ("label", "thinkingLevel", "verboseLevel", "modelOverride", "providerOverride"):
        if name in entry:
            row[name] = entry[name]
    if active is not None:
        row["activeRunIds"] = [active.run_id]
    return row


_LIST = Obj(
    {"limit": Int(1), "offset": Int(0), "activeMinutes": Int(1), "includeGlobal": Bool(), "includeUnknown": Bool(), "includeDerivedTitles": Bool(), "includeLastMessage": Bool(), "label": Str(), "agentId": Str(), "search": Str()},
    closed=True,
)


@method("sessions.list", _LIST, table=AGENT_METHODS)
def sessions_list(conn, params):
    runtime = runtime_of(conn)
    store = runtime.store(params.get("agentId") or "main")
    now = int(time.time() * 1000)
    rows = [_row(k, e, runtime) for k, e in store.rows()]
    if params.get("activeMinutes"):
        rows = [r for r in rows if now - r["updatedAt"] <= params["activeMinutes"] * 60_000]
    if params.get("label"):
        rows = [r for r in rows if r.get("label") == params["label"]]
    if params.get("search"):
        needle = params["search"].lower()
        rows = [r for r in rows if needle in r["key"].lower() or needle in str(r.get("displayName", "")).lower()]
    offset = params.get("offset", 0)
    rows = rows[offset : offset + params["limit"]] if params.get("limit") else rows[offset:]
    return {"ts": now, "path": str(store.index_path), "count": len(rows), "defaults": {"model": None, "contextTokens": None}, "sessions": rows}


@method("sessions.preview", Obj({"keys": List(_KEY), "limit": Int(1), "maxChars": Int(20)}, required=("keys",), closed=True), table=AGENT_METHODS)
def sessions_preview(conn, params):
    if not params["keys"]:
        raise GatewayError(INVALID_REQUEST, "invalid sessions.preview params: keys must not be empty")
    runtime = runtime_of(conn)
    previews = []
    for raw in params["keys"][:50]:
        try:
            key = canonical_key(raw)
        except SessionError as e:
            previews.append({"key": raw, "status": "error", "items": [], "error": str(e)})
            continue
        store = runtime.store(key.split(":", 2)[1])
        if store.get(key) is None:
            previews.append({"key": key, "status": "missing", "items": []})
            continue
        items = display_messages(store.messages(key), params.get("maxChars", 200))[-params.get("limit", 3) :]
        previews.append({"key": key, "status": "ok" if items else "empty", "items": items})
    return {"ts": int(time.time() * 1000), "previews": previews}


_PATCH = Obj(
    {
        "key": _KEY,
        "agentId": Str(),
        "label": Any_(),
        "thinkingLevel": Any_(),
        "verboseLevel": Any_(),
        "reasoningLevel": Any_(),
        "elevatedLevel": Any_(),
        "model": Any_(),
        "sendPolicy": Any_(),
    },
    required=("key",),
    closed=True,
)


@method("sessions.patch", _PATCH, table=AGENT_METHODS)
def sessions_patch(conn, params):
    key = key_of(params, "key")
    store = runtime_of(conn).store(key.split(":", 2)[1])
    fields = {k: v for k, v in params.items() if k not in ("key", "agentId", "model")}
    if "model" in params:
        fields["modelOverride"] = params["model"]
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise GatewayError(INVALID_REQUEST, f"invalid sessions.patch params: {name} must be a string or null")
    entry = store.patch(key, fields)
    return {"ok": True, "path": str(store.index_path), "key": key, "entry": entry}


@method("sessions.reset", Obj({"key": _KEY, "agentId": Str(), "reason": Str(("new", "reset"))}, required=("key",), closed=True), table=AGENT_METHODS)
def sessions_reset(conn, params):
    key = key_of(params, "key")
    runtime = runtime_of(conn)
    runtime.abort(key)
    entry = runtime.store(key.split(":", 2)[1]).reset(key)
    return {"ok": True, "key": key, "entry": entry}


@method("sessions.delete", Obj({"key": _KEY, "agentId": Str(), "deleteTranscript": Bool()}, required=("key",), closed=True), table=AGENT_METHODS)
def sessions_delete(conn, params):
    key = key_of(params, "key")
    runtime = runtime_of(conn)
    runtime.abort(key)
    deleted = runtime.store(key.split(":", 2)[1]).delete(key, bool(params.get("deleteTranscript")))
    return {"ok": True, "key": key, "deleted": deleted}


@method("sessions.resolve", Obj({"key": Str(), "sessionKey": Str(), "agentId": Str(), "label": Str()}, closed=True), table=AGENT_METHODS)
def sessions_resolve(conn, params):
    raw = params.get("key") or params.get("sessionKey")
    runtime = runtime_of(conn)
    if not raw and params.get("label"):
        for key, entry in runtime.store(params.get("agentId") or "main").rows():
            if entry.get("label") == params["label"]:
                return {"ok": True, "key": key}
        raise GatewayError(INVALID_REQUEST, f"no session with label {params['label']!r}")
    params = {**params, "sessionKey": raw or "main"}
    return {"ok": True, "key": key_of(params)}


@method("usage.status", table=AGENT_METHODS)
def usage_status(conn, params):
    runtime = runtime_of(conn)
    return {
        "updatedAt": int(time.time() * 1000),
        "providers": [{"model": model, **counts} for model, counts in sorted(runtime.usage.items())],
    }


@method("sessions.compact", Obj({"key": _KEY, "agentId": Str(), "maxLines": Int(1)}, required=("key",), closed=True), table=AGENT_METHODS)
async def sessions_compact(conn, params):
    key = key_of(params, "key")
    runtime = runtime_of(conn)
    if runtime.active.get(key) is not None:
        raise GatewayError(INVALID_REQUEST, "the session has a run in progress; compact it afterwards")
    try:
        result = await runtime.compact(key, params.get("maxLines", 6))
    except ProviderError as e:
        raise GatewayError(UNAVAILABLE, f"compaction failed: {e}")
    return {"ok": True, "key": key, **result}


_SEND = Obj(
    {
        "to": Str(nonempty=True),
        "idempotencyKey": _ID,
        "message": Str(),
        "mediaUrl": Str(),
        "mediaUrls": List(Str()),
        "channel": Str(),
        "accountId": Str(),
        "agentId": Str(),
        "replyToId": Str(),
        "threadId": Str(),
        "silent": Bool(),
        "sessionKey": Str(),
        "gifPlayback": Bool(),
    },
    required=("to", "idempotencyKey"),
    closed=True,
)


@method("send", _SEND, table=AGENT_METHODS)
def send(conn, params):
    channel = params.get("channel") or "last"
    raise GatewayError(UNAVAILABLE, f"cannot send to {params['to']}: channel {channel!r} is not available (no messaging channels are configured in this gateway)", {"channel": channel})
