# -*- test-case-name: tests.test_agent -*-
"""Agent, chat and session methods (spec §3.1) over the L{AgentRuntime}."""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from openclaw.agent.commands import ChatCommands, Sender
from openclaw.agent.runtime import AgentRuntime, Run, is_reset, text_message
from openclaw.interfaces import SessionEvents
from openclaw.agent.sessions import MessageRecord, SessionError, canonical_key, kind_of
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params, TwoPhase
from openclaw.agent.providers import ProviderError
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Any_, Bool, Either, Int, List, Null, Num, Obj, Str

@attrs.frozen
class AgentDeps:
    """What the agent, chat and session methods work with."""

    runtime: AgentRuntime
    events: SessionEvents
    clock: IReactorTime
    commands: ChatCommands


def sender_of(caller: Caller) -> Sender:
    """An operator connection as a chat sender: commands need write scope."""
    return Sender(authorized=bool({"operator.write", "operator.admin"} & set(caller.scopes)), id=caller.device_id, surface="webchat")


AGENT_METHODS: MethodTable[AgentDeps] = MethodTable()

_KEY = Str(nonempty=True, max_length=512)
_ID = Str(nonempty=True)

# Params upstream declares that these methods accept but do not act on (docs/params.md).
_TEXT = Str()
_NONEMPTY = Str(nonempty=True)
_OBJECT = Obj()
_MODE = Str(("read-only", "guarded", "workspace", "full"))


def _maybe(kind: Any) -> Either:
    return Either((kind, Null()))


_NO_CHANNELS = "operator runs are not routed to or delivered through a channel here: channels start their own runs and deliver their replies"


def key_of(params: dict[str, Any], field: str = "sessionKey") -> str:
    """The canonical key; a bad key or agent id raises L{SessionError}, which the dispatcher answers INVALID_REQUEST."""
    return canonical_key(params.get(field) or "main", params.get("agentId") or "main")


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


_AGENT_IGNORED = (
    Ignored("runs use the agent's configured model; no per-run model choice", {"provider": _TEXT, "model": _TEXT, "modelRun": Bool()}),
    Ignored(_NO_CHANNELS, {"groupChannel": _TEXT, "groupSpace": _TEXT, "sourceReplyDeliveryMode": Str(("automatic", "message_tool_only"))}),
    Ignored(
        "upstream run orchestration this gateway does not have (ACP, bundles/MCP, swarms, code-mode tools, bootstrap "
        "modes, execution-identity recovery, runtime hand-off, exec-approval follow-ups, prompt modes, provenance)",
        {
            "expectedExistingSessionId": _NONEMPTY,
            "cwd": _NONEMPTY,
            "cleanupBundleMcpOnRunEnd": Bool(),
            "promptMode": Str(("full", "minimal", "none")),
            "bootstrapContextMode": Str(("full", "lightweight")),
            "bootstrapContextRunKind": Str(("default", "heartbeat", "cron")),
            "acpTurnSource": Str(("manual_spawn",)),
            "internalRuntimeHandoffId": _NONEMPTY,
            "internalExecutionIdentityRetry": Bool(),
            "internalExecutionIdentityRecoveryAttempt": Int(1),
            "execApprovalFollowupExpectedSessionId": _NONEMPTY,
            "internalEvents": List(_OBJECT),
            "inputProvenance": _OBJECT,
            "suppressPromptPersistence": Bool(),
            "sessionEffects": Str(("visible", "internal")),
            "disableMessageTool": Bool(),
            "swarmCollector": Bool(),
            "swarmOutputSchema": _OBJECT,
            "forceRestartSafeTools": Bool(),
            "forceCodeModeTools": Bool(),
            "voiceWakeTrigger": _TEXT,
        },
    ),
)


@AGENT_METHODS.method("agent", _AGENT, ignored=_AGENT_IGNORED)
def agent(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    if is_reset(params["message"]) and "operator.admin" not in caller.scopes:
        raise GatewayError(INVALID_REQUEST, "missing scope: operator.admin")
    run, created = ad.commands.submit(params.get("sessionKey") or "main", params["message"], params["idempotencyKey"], sender_of(caller), params.get("agentId"), params.get("timeout") or None)
    accepted = {"runId": run.run_id, "sessionKey": run.session_key, "agentId": run.agent_id, "status": "accepted", "acceptedAt": int(time.time() * 1000)}
    if not created and not run.outcome.done:
        accepted["status"] = "in_flight"
    # "accepted" once the message is on disk (see chat.send)
    return TwoPhase(ad.runtime.durable().addCallback(lambda _: accepted), run.outcome.wait().addCallback(final_response))


def final_response(summary: dict[str, Any]) -> dict[str, Any]:
    """
    C{agent}'s second answer. A run that failed is C{ok:false}, as upstream
    answers: C{UNAVAILABLE} with the reason, beside the payload C{{runId,
    status:"error", summary}} (clients exit non-zero on it). A completed or
    timed-out run is C{ok:true}.
    """
    if summary.get("status") != "error":
        return summary
    message = summary.get("error") or summary.get("summary") or "agent run failed"
    raise GatewayError(UNAVAILABLE, message, payload={"runId": summary["runId"], "status": "error", "summary": message})


@AGENT_METHODS.method("agent.wait", Obj({"runId": _ID, "timeoutMs": Int(0)}, required=("runId",), closed=True))
def agent_wait(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    runtime = ad.runtime
    run = runtime.lookup(params["runId"])
    if run is None:
        raise GatewayError(INVALID_REQUEST, "agent run was not found")
    if run.outcome.done:
        return _wait_payload(run)
    waited: Deferred[Any] = Deferred()
    timeout = (params.get("timeoutMs") or 30000) / 1000
    def timed_out() -> None:
        if not waited.called:
            waited.callback({"runId": run.run_id, "status": "timeout", "startedAt": run.started_at})

    timer = ad.clock.callLater(timeout, timed_out)

    def done(_: Any) -> None:
        if timer.active():
            timer.cancel()
        if not waited.called:
            waited.callback(_wait_payload(run))

    run.outcome.wait().addBoth(done)
    return waited


def _wait_payload(run: Run) -> dict[str, Any]:
    payload = {"runId": run.run_id, "status": {"aborted": "error"}.get(run.status, run.status), "startedAt": run.started_at, "endedAt": run.ended_at}
    if run.error:
        payload["error"] = run.error
    return payload


@AGENT_METHODS.method("agent.identity.get", Obj({"agentId": Str(), "sessionKey": Str()}, closed=True))
def agent_identity(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    agent_id = params.get("agentId") or "main"
    entry = ad.runtime.settings.agents.entry(agent_id)
    if entry is None:
        return {"agentId": agent_id, "name": "OpenClaw", "nameSource": "default"}
    out = {"agentId": agent_id, "name": entry.identity_name or entry.name or "OpenClaw", "nameSource": "config"}
    if entry.identity_emoji:
        out["emoji"] = entry.identity_emoji
    return out


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
        "fastMode": Either((Bool(), Str(("auto",)))),
        "suppressCommandInterpretation": Bool(),
    },
    required=("sessionKey", "message", "idempotencyKey"),
    closed=True,
)


_CHAT_SEND_IGNORED = (
    Ignored(
        _NO_CHANNELS,
        {"originatingChannel": _TEXT, "originatingTo": _TEXT, "originatingAccountId": _TEXT, "originatingThreadId": _TEXT, "replyToId": _NONEMPTY},
    ),
    Ignored(
        "no session routing contracts, permission modes, tool overrides or leaf checks here: the run goes to the session as it is",
        {
            "expectedLeafEntryId": _maybe(_NONEMPTY),
            "expectedSessionRoutingContract": _NONEMPTY,
            "expectedPermissionMode": _maybe(_MODE),
            "expectedToolOverrides": _maybe(_OBJECT),
            "toolBindings": _OBJECT,
        },
    ),
    Ignored(
        "no intents, fast-mode timers or provenance receipts here",
        {"intent": _OBJECT, "fastAutoOnSeconds": Int(1), "systemInputProvenance": _OBJECT, "systemProvenanceReceipt": _TEXT},
    ),
)


@AGENT_METHODS.method("chat.send", _CHAT_SEND, ignored=_CHAT_SEND_IGNORED)
def chat_send(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    timeout = params.get("timeoutMs")
    run, created = ad.commands.submit(
        params["sessionKey"], params["message"], params["idempotencyKey"], sender_of(caller), params.get("agentId"), timeout / 1000 if timeout else None, params.get("queueMode"), literal=bool(params.get("suppressCommandInterpretation"))
    )
    if created:
        # acknowledged once the message is on disk (written already; the fsync runs off the reactor)
        return ad.runtime.durable().addCallback(lambda _: {"runId": run.run_id, "status": "started"})
    if not run.outcome.done:
        return {"runId": run.run_id, "status": "in_flight"}
    return {"runId": run.run_id, "status": run.outcome.value.get("status", "ok")}


_HISTORY = Obj(
    {"sessionKey": _KEY, "agentId": Str(), "limit": Int(1, 1000), "sessionId": Str(), "maxChars": Int(1), "maxBytes": Int(1024), "inputRunIds": List(Str(nonempty=True, max_length=256), min_items=1, max_items=50)},
    required=("sessionKey",),
    closed=True,
)


def display_messages(messages: list[dict[str, Any]], max_chars: int | None = None) -> list[dict[str, Any]]:
    """History as clients show it: silent replies dropped, long texts cut."""
    return [m for m in (_shown(m, max_chars) for m in messages) if m is not None]


def _shown(m: dict[str, Any], max_chars: int | None) -> dict[str, Any] | None:
    text = "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict) and p.get("type") == "text")
    if m.get("role") == "assistant" and text.strip() == "NO_REPLY":
        return None
    if max_chars and len(text) > max_chars:
        m = {**m, "content": [{"type": "text", "text": text[:max_chars]}]}
    return m


def annotate(message: dict[str, Any], entry_id: str | None, seq: int | None, run_id: str | None) -> dict[str, Any]:
    """
    A transcript message with its identity under C{__openclaw} (as upstream
    sends it): C{id} (the entry), C{seq} (its number among the session's
    messages), and the run it belongs to: C{idempotencyKey} C{<runId>:user}
    on the message that started it, C{runId} on its output. The v4 UI
    matches a message it sent against these.
    """
    meta: dict[str, Any] = {}
    if entry_id:
        meta["id"] = entry_id
    if seq is not None:
        meta["seq"] = seq
    if run_id:
        if message.get("role") == "user":
            meta["idempotencyKey"] = f"{run_id}:user"
        else:
            meta["runId"] = run_id
    return {**message, "__openclaw": meta} if meta else message


def shown_records(records: list[MessageRecord], max_chars: int | None = None) -> list[dict[str, Any]]:
    """The conversation as clients show it (L{display_messages}), each message with its identity (L{annotate})."""
    out = []
    for record in records:
        m = _shown(record.message, max_chars)
        if m is not None:
            out.append(annotate(m, record.entry_id, record.seq, record.run_id))
    return out


def within_bytes(messages: list[dict[str, Any]], max_bytes: int | None) -> list[dict[str, Any]]:
    """The newest messages whose JSON fits in C{max_bytes} (all when there is no budget)."""
    if max_bytes is None:
        return messages
    kept: list[dict[str, Any]] = []
    used = 2  # the brackets
    for message in reversed(messages):
        size = len(json.dumps(message, separators=(",", ":")).encode()) + 1
        if used + size > max_bytes:
            break
        kept.append(message)
        used += size
    kept.reverse()
    return kept


def input_receipts(runtime: AgentRuntime, records: list[MessageRecord], run_ids: list[str]) -> list[dict[str, Any]]:
    """
    For each run id asked about: C{consumed} (with the entry of its message)
    once its message is in the transcript, C{pending} while it waits its turn.
    Runs this gateway does not know are left out.
    """
    consumed = {r.run_id: r.entry_id for r in records if r.run_id and r.entry_id and r.message.get("role") == "user"}
    receipts = []
    for run_id in run_ids:
        if run_id in consumed:
            receipts.append({"runId": run_id, "state": "consumed", "consumedByEventId": consumed[run_id]})
        elif runtime.lookup(run_id) is not None:
            receipts.append({"runId": run_id, "state": "pending"})
    return receipts


_HISTORY_IGNORED = (
    Ignored(
        "no history paging or lookup: the newest `limit` messages are returned",
        {"cursor": _TEXT, "offset": Int(0), "pendingBefore": Int(1), "messageId": _NONEMPTY},
    ),
)


def history(runtime: AgentRuntime, params: Params) -> tuple[dict[str, Any], int]:
    """C{chat.history}'s answer: the newest C{limit} messages (within C{maxBytes}), and receipts for C{inputRunIds}; and how many messages there are."""
    key = key_of(params)
    store = runtime.store(key.split(":", 2)[1])
    entry = store.get(key) or {}
    records = store.message_records(key) if entry else []
    messages = shown_records(records, params.get("maxChars"))
    page = within_bytes(messages[-params.get("limit", 200) :], params.get("maxBytes"))
    result: dict[str, Any] = {"sessionKey": key, "sessionId": entry.get("sessionId"), "messages": page, "thinkingLevel": entry.get("thinkingLevel")}
    if "inputRunIds" in params:
        receipts = input_receipts(runtime, records, params["inputRunIds"])
        result["inputReceipts"] = receipts
        result["inputConsumptions"] = [{"runId": r["runId"], "consumedByEventId": r["consumedByEventId"]} for r in receipts if r["state"] == "consumed"]
    return result, len(messages)


@AGENT_METHODS.method("chat.history", _HISTORY, ignored=_HISTORY_IGNORED)
def chat_history(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    return history(ad.runtime, params)[0]


@AGENT_METHODS.method("chat.abort", Obj({"sessionKey": _KEY, "agentId": Str(), "runId": Str(), "preserveSideRuns": Bool()}, required=("sessionKey",), closed=True))
def chat_abort(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    runtime = ad.runtime
    key = key_of(params)
    run_id = params.get("runId")
    if run_id:
        run = runtime.lookup(run_id)
        if run is not None and run.session_key != key:
            raise GatewayError(INVALID_REQUEST, "runId does not match sessionKey")
    runs = runtime.abort(key, run_id)
    return {"ok": True, "aborted": bool(runs), "runIds": runs}


@AGENT_METHODS.method("chat.inject", Obj({"sessionKey": _KEY, "message": Str(nonempty=True), "agentId": Str(), "label": Str(max_length=100)}, required=("sessionKey", "message"), closed=True))
def chat_inject(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    runtime = ad.runtime
    key = key_of(params)
    store = runtime.store(key.split(":", 2)[1])
    note = text_message("assistant", params["message"], injected=True, **({"label": params["label"]} if params.get("label") else {}))
    record = store.append_message(key, note)
    ad.events.to_session("chat", {"runId": f"inject-{record['id']}", "sessionKey": key, "seq": 0, "state": "final", "message": note}, key)
    return {"ok": True, "messageId": record["id"]}


# -- sessions


def _row(key: str, entry: dict[str, Any], runtime: AgentRuntime) -> dict[str, Any]:
    active = runtime.active.get(key)
    row = {
        "key": key,
        "kind": kind_of(key),
        "agentId": key.split(":", 2)[1],
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


_LIST_IGNORED = (
    Ignored(
        "no owners, people, boards, archive or spawn lineage here; rows are sorted by updatedAt",
        {
            "requireLastInteraction": Bool(),
            "sortBy": Str(("updatedAt", "lastInteractionAt")),
            "configuredAgentsOnly": Bool(),
            "boardFace": Str(("chat", "dashboard")),
            "creatorId": _NONEMPTY,
            "ownerId": _NONEMPTY,
            "ownerFirst": Bool(),
            "involvingMe": Bool(),
            "involvingProfileId": _NONEMPTY,
            "includePeople": Bool(),
            "spawnedBy": _NONEMPTY,
            "archived": Either((Bool(), Str(("all",)))),
            "hasBoard": Bool(),  # 2026.9.6's Control UI (Dashboards: sessions with a board; none here)
        },
    ),
)


@AGENT_METHODS.method("sessions.list", _LIST, ignored=_LIST_IGNORED)
def sessions_list(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    runtime = ad.runtime
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


@AGENT_METHODS.method("sessions.preview", Obj({"keys": List(_KEY), "limit": Int(1), "maxChars": Int(20)}, required=("keys",), closed=True))
def sessions_preview(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    if not params["keys"]:
        raise GatewayError(INVALID_REQUEST, "invalid sessions.preview params: keys must not be empty")
    runtime = ad.runtime
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
        "responseUsage": _maybe(Str(("off", "tokens", "full", "on"))),
    },
    required=("key",),
    closed=True,
)


_PATCH_IGNORED = (
    Ignored(
        "session settings this gateway does not keep (exec routing, permissions, tool overrides, board and inbox state, lifecycle checks)",
        {
            "execHost": _maybe(_NONEMPTY),
            "execSecurity": _maybe(_NONEMPTY),
            "execAsk": _maybe(_NONEMPTY),
            "execNode": _maybe(_NONEMPTY),
            "spawnedBy": _maybe(_NONEMPTY),
            "groupActivation": _maybe(Str(("mention", "always"))),
            "expectedSessionId": _NONEMPTY,
            "expectedLifecycleRevision": _NONEMPTY,
            "expectedPermissionMode": _maybe(_MODE),
            "expectedToolOverrides": _maybe(_OBJECT),
            "expectedMarkedUnreadAt": _maybe(Num(0)),
            "icon": _maybe(_TEXT),
            "color": _maybe(_TEXT),
            "category": _maybe(Str(nonempty=True, max_length=512)),
            "boardFace": Str(("chat", "dashboard")),
            "statusNote": _maybe(Str(max_length=120)),
            "attention": _maybe(Str(("hand", "key", "alert", "flag", "lock", "hourglass"))),
            "ttlMinutes": Int(1, 120),
            "archived": Bool(),
            "pinned": Bool(),
            "unread": Bool(),
            "contextWindow": _maybe(_NONEMPTY),
            "fastMode": Either((Bool(), Str(("auto",)), Null())),
            "toolOverrides": _maybe(_OBJECT),
            "traceLevel": _maybe(_NONEMPTY),
            "permissionMode": _maybe(_MODE),
            "completionOwnerSessionKey": _maybe(_NONEMPTY),
            "inheritedToolPolicyVersion": _maybe(Int(1, 1)),
            "inheritedToolAllow": _maybe(List(_NONEMPTY)),
            "inheritedToolDeny": _maybe(List(_NONEMPTY)),
        },
    ),
)


@AGENT_METHODS.method("sessions.patch", _PATCH, ignored=_PATCH_IGNORED)
def sessions_patch(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    key = key_of(params, "key")
    store = ad.runtime.store(key.split(":", 2)[1])
    fields = {k: v for k, v in params.items() if k not in ("key", "agentId", "model")}
    if "model" in params:
        fields["modelOverride"] = params["model"]
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise GatewayError(INVALID_REQUEST, f"invalid sessions.patch params: {name} must be a string or null")
    entry = store.patch(key, fields)
    return {"ok": True, "path": str(store.index_path), "key": key, "entry": entry}


@AGENT_METHODS.method("sessions.reset", Obj({"key": _KEY, "agentId": Str(), "reason": Str(("new", "reset"))}, required=("key",), closed=True))
def sessions_reset(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    key = key_of(params, "key")
    runtime = ad.runtime
    runtime.abort(key)
    entry = runtime.store(key.split(":", 2)[1]).reset(key)
    return {"ok": True, "key": key, "entry": entry}


_DELETE_IGNORED = (
    Ignored(
        "no lifecycle revisions, lifecycle hooks or archive here: the session is deleted as it is",
        {"expectedSessionId": _NONEMPTY, "expectedLifecycleRevision": _NONEMPTY, "expectedSessionUpdatedAt": Num(0), "emitLifecycleHooks": Bool(), "archivedOnly": Bool()},
    ),
)


@AGENT_METHODS.method("sessions.delete", Obj({"key": _KEY, "agentId": Str(), "deleteTranscript": Bool()}, required=("key",), closed=True), ignored=_DELETE_IGNORED)
def sessions_delete(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    key = key_of(params, "key")
    runtime = ad.runtime
    runtime.abort(key)
    deleted = runtime.store(key.split(":", 2)[1]).delete(key, bool(params.get("deleteTranscript")))
    return {"ok": True, "key": key, "deleted": deleted}


_RESOLVE_IGNORED = (
    Ignored(
        "sessions resolve by key or label only (no ids, short ids, slugs or spawn lineage)",
        {"sessionId": _NONEMPTY, "shortId": _NONEMPTY, "slugHint": _NONEMPTY, "spawnedBy": _NONEMPTY, "includeGlobal": Bool(), "includeUnknown": Bool(), "allowMissing": Bool()},
    ),
)


@AGENT_METHODS.method("sessions.resolve", Obj({"key": Str(), "sessionKey": Str(), "agentId": Str(), "label": Str()}, closed=True), ignored=_RESOLVE_IGNORED)
def sessions_resolve(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    raw = params.get("key") or params.get("sessionKey")
    runtime = ad.runtime
    if not raw and params.get("label"):
        for key, entry in runtime.store(params.get("agentId") or "main").rows():
            if entry.get("label") == params["label"]:
                return {"ok": True, "key": key}
        raise GatewayError(INVALID_REQUEST, f"no session with label {params['label']!r}")
    params = {**params, "sessionKey": raw or "main"}
    return {"ok": True, "key": key_of(params)}


@AGENT_METHODS.method("sessions.compact", Obj({"key": _KEY, "agentId": Str(), "maxLines": Int(1)}, required=("key",), closed=True))
async def sessions_compact(ad: AgentDeps, caller: Caller, params: Params) -> JSON:
    key = key_of(params, "key")
    runtime = ad.runtime
    if runtime.active.get(key) is not None:
        raise GatewayError(INVALID_REQUEST, "the session has a run in progress; compact it afterwards")
    try:
        result = await runtime.compact(key, params.get("maxLines", 6))
    except ProviderError as e:
        raise GatewayError(UNAVAILABLE, f"compaction failed: {e}")
    return {"ok": True, "key": key, **result}


