# -*- test-case-name: tests.test_approvals -*-
"""
The exec approval methods (C{APPROVAL_METHODS}, deps L{ApprovalDeps}):
C{exec.approvals.get|set} (this host's C{exec-approvals.json}),
C{exec.approvals.node.get|set} (a node host's, through
C{system.execApprovals.get|set}), C{exec.approval.request|resolve|list|get}
(pending approvals; C{operator.approvals}).
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred

from openclaw.agent.approvals import ApprovalQueue, NodeRunner, exec_settings
from openclaw.agent.execpolicy import ApprovalsFile, PolicyFileError, Snapshot, resolve, view
from openclaw.config.settings import GatewaySettings
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params, TwoPhase
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Any_, Bool, Either, Int, List, Null, Num, Obj, Str


@attrs.frozen
class ApprovalDeps:
    """What the approval methods work with."""

    settings: GatewaySettings
    file: ApprovalsFile
    queue: ApprovalQueue
    nodes: NodeRunner
    approvers: Callable[[Caller], bool]  # another connection can answer (operator.approvals)


APPROVAL_METHODS: MethodTable[ApprovalDeps] = MethodTable()

_TEXT = Str()
_NONEMPTY = Str(nonempty=True)
_ENTRY = Obj(
    {
        "id": _NONEMPTY,
        "pattern": _TEXT,
        "source": Str(("allow-always",)),
        "commandText": _TEXT,
        "argPattern": _TEXT,
        "lastUsedAt": Num(0),
        "lastUsedCommand": _TEXT,
        "lastResolvedPath": _TEXT,
    },
    required=("pattern",),
    closed=True,
)
_MCP_TOOL = Obj({"server": _NONEMPTY, "tool": _NONEMPTY, "source": Str(("allow-always",)), "addedAt": Num(0), "lastUsedAt": Num(0)}, required=("server", "tool", "source", "addedAt"), closed=True)
_POLICY = {"security": _TEXT, "ask": _TEXT, "askFallback": _TEXT, "autoAllowSkills": Bool()}
_FILE = Obj(
    {
        "version": Int(1, 1),
        "socket": Obj({"path": _TEXT, "token": _TEXT}, closed=True),
        "defaults": Obj(_POLICY, closed=True),
        "agents": Obj(rest=Obj({**_POLICY, "allowlist": List(_ENTRY), "mcpTools": List(_MCP_TOOL)}, closed=True)),
    },
    required=("version",),
    closed=True,
)


def _snapshot(ad: ApprovalDeps, caller: Caller, snapshot: Snapshot) -> dict[str, Any]:
    """upstream's C{ExecApprovalsSnapshot}; v4 adds the policy in force when the file says nothing."""
    out: dict[str, Any] = {"path": str(snapshot.path), "exists": snapshot.exists, "hash": snapshot.hash, "file": view(snapshot.file, caller.version.number)}
    if caller.version.number >= 4:
        settings = exec_settings(ad.settings.config, "main")
        out["resolvedDefaults"] = resolve({"defaults": snapshot.file.get("defaults") or {}}, None, settings.security or "allowlist", settings.ask or "on-miss").defaults()
    return out


@APPROVAL_METHODS.method("exec.approvals.get")
def approvals_get(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    return _snapshot(ad, caller, ad.file.read())


@APPROVAL_METHODS.method("exec.approvals.set", Obj({"file": _FILE, "baseHash": _NONEMPTY}, required=("file",), closed=True))
def approvals_set(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    try:
        snapshot = ad.file.replace(params["file"], params.get("baseHash"))
    except PolicyFileError as e:
        raise GatewayError(INVALID_REQUEST, str(e))
    return _snapshot(ad, caller, snapshot)


_NATIVE = Obj(
    {
        "defaultAction": Str(("allow", "deny", "prompt")),
        "rules": List(Obj({"pattern": _NONEMPTY, "action": Str(("allow", "deny", "prompt")), "shells": List(_NONEMPTY), "description": _TEXT, "enabled": Bool()}, required=("pattern", "action"), closed=True)),
    },
    required=("rules",),
    closed=True,
)
_NODE_SET_IGNORED = (Ignored("no native (Windows) approval rules on these node hosts: send `file`", {"native": _NATIVE}),)


async def _node_call(ad: ApprovalDeps, node_id: str, command: str, params: dict[str, Any]) -> JSON:
    result = await ad.nodes.invoke(node_id, command, params, 15_000, None)
    payload = result.get("payload") if isinstance(result, dict) else None
    if not isinstance(payload, dict):
        raise GatewayError(UNAVAILABLE, f"node {node_id} sent no exec approvals snapshot")
    return payload


@APPROVAL_METHODS.method("exec.approvals.node.get", Obj({"nodeId": _NONEMPTY}, required=("nodeId",), closed=True))
async def approvals_node_get(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    return await _node_call(ad, params["nodeId"].strip(), "system.execApprovals.get", {})


@APPROVAL_METHODS.method("exec.approvals.node.set", Obj({"nodeId": _NONEMPTY, "file": _FILE, "baseHash": _NONEMPTY}, required=("nodeId",), closed=True), ignored=_NODE_SET_IGNORED)
async def approvals_node_set(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    if "file" not in params:
        raise GatewayError(INVALID_REQUEST, "invalid exec.approvals.node.set params: file is required (native rules are not supported)")
    forwarded = {"file": params["file"], **({"baseHash": params["baseHash"]} if params.get("baseHash") else {})}
    return await _node_call(ad, params["nodeId"].strip(), "system.execApprovals.set", forwarded)


def _maybe(kind: Any) -> Either:
    return Either((kind, Null()))


_REQUEST = Obj(
    {
        "id": _NONEMPTY,
        "command": _NONEMPTY,
        "commandArgv": List(_TEXT),
        "cwd": _maybe(_TEXT),
        "nodeId": _maybe(_NONEMPTY),
        "host": _maybe(_TEXT),
        "security": _maybe(_TEXT),
        "ask": _maybe(_TEXT),
        "warningText": _maybe(_TEXT),
        "agentId": _maybe(_TEXT),
        "resolvedPath": _maybe(_TEXT),
        "sessionKey": _maybe(_TEXT),
        "runId": _maybe(_TEXT),
        "timeoutMs": Int(1),
        "twoPhase": Bool(),
        "requireDeliveryRoute": Bool(),
    },
    closed=True,
)
_PLAN_POLICY = Obj(
    {
        "security": Str(("deny", "allowlist", "full")),
        "ask": Str(("off", "on-miss", "always")),
        "askFallback": Str(("deny", "allowlist", "full")),
        "autoAllowSkills": Bool(),
        "allowlistRules": List(Obj({"pattern": _TEXT, "argPattern": _TEXT, "source": Str(("allow-always",))}, required=("pattern",), closed=True)),
    },
    closed=True,
)
_REQUEST_IGNORED = (
    Ignored(
        "approval presentation and routing this gateway does not have (run plans, env bindings, command spans, scopes, "
        "standing grants, reviewer devices, chat-channel delivery, session ids, tool call ids): the request is shown as its command",
        {
            "systemRunPlan": Obj(
                {
                    "argv": List(_TEXT),
                    "cwd": _maybe(_TEXT),
                    "commandText": _TEXT,
                    "commandPreview": _maybe(_TEXT),
                    "agentId": _maybe(_TEXT),
                    "sessionKey": _maybe(_TEXT),
                    "policySnapshot": _PLAN_POLICY,
                    "mutableFileOperand": _maybe(Obj({"argvIndex": Int(0), "path": _TEXT, "sha256": _TEXT}, required=("argvIndex", "path", "sha256"), closed=True)),
                },
                required=("argv", "cwd", "commandText", "agentId", "sessionKey"),
                closed=True,
            ),
            "env": Obj(rest=_TEXT),
            "scope": _maybe(Obj(rest=Any_())),
            "unavailableDecisions": List(Str(("allow-always",))),
            "commandSpans": List(Obj({"startIndex": Int(0), "endIndex": Int(1)}, required=("startIndex", "endIndex"), closed=True)),
            "sessionId": _maybe(_TEXT),
            "toolCallId": _maybe(_TEXT),
            "turnSourceChannel": _maybe(_TEXT),
            "turnSourceTo": _maybe(_TEXT),
            "turnSourceAccountId": _maybe(_TEXT),
            "turnSourceThreadId": Either((_TEXT, Num(), Null())),
            "approvalReviewerDeviceIds": List(_NONEMPTY),
            "suppressDelivery": Bool(),
            "deliverToApprovalClientsOnly": Bool(),
        },
    ),
)
DEFAULT_REQUEST_TIMEOUT_MS = 120_000
MAX_REQUEST_TIMEOUT_MS = 24 * 3600 * 1000


@APPROVAL_METHODS.method("exec.approval.request", _REQUEST, ignored=_REQUEST_IGNORED)
def approval_request(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    """
    Ask the operators and wait for the decision (C{null}: none in time). With
    nobody else connected who could answer, it is C{null} at once, unless
    C{requireDeliveryRoute: false} keeps it pending (e.g. for the CLI).
    """
    command = params.get("command") or " ".join(params.get("commandArgv") or [])
    if not command.strip():
        raise GatewayError(INVALID_REQUEST, "command is required")
    if len(command) > 20_000:
        raise GatewayError(INVALID_REQUEST, "command exceeds the exec approval display limit (20000 characters)")
    if params.get("host") == "node" and not params.get("nodeId"):
        raise GatewayError(INVALID_REQUEST, "nodeId is required for host=node")
    request = {"command": command}
    for name in ("cwd", "host", "security", "ask", "agentId", "resolvedPath", "sessionKey", "nodeId", "warningText", "runId"):
        if isinstance(params.get(name), str):
            request[name] = params[name]
    if params.get("commandArgv"):
        request["commandArgv"] = params["commandArgv"]
    timeout_ms = min(params.get("timeoutMs") or DEFAULT_REQUEST_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS)
    routed = ad.approvers(caller) or params.get("requireDeliveryRoute") is False
    record, decided = ad.queue.ask(request, timeout_ms / 1000, params.get("id"), announce=routed)
    if not routed:
        ad.queue.expire(record["id"])  # no one to ask: no decision
    final: Deferred[Any] = decided.addCallback(lambda decision: {"id": record["id"], "decision": decision, "createdAtMs": record["createdAtMs"], "expiresAtMs": record["expiresAtMs"]})
    if params.get("twoPhase"):
        accepted = {"status": "accepted", "id": record["id"], "deliveryRoute": "approval-client" if routed else "none", "createdAtMs": record["createdAtMs"], "expiresAtMs": record["expiresAtMs"]}
        return TwoPhase(accepted, final)
    return final


_RESOLVE_IGNORED = (
    Ignored(
        "no chat-channel reviewers or standing grants here: an operator connection resolves, and allow-always goes into the allowlist",
        {"reviewer": Obj({"channel": _NONEMPTY, "accountId": _NONEMPTY, "senderId": _NONEMPTY}, required=("channel", "accountId", "senderId"), closed=True), "grantExpiresInDays": Int(1, 3650)},
    ),
)


def resolver_name(caller: Caller) -> str:
    return caller.device_id or (f"operator ({caller.auth_method} auth)" if caller.auth_method else "operator")


@APPROVAL_METHODS.method("exec.approval.resolve", Obj({"id": _NONEMPTY, "decision": _NONEMPTY}, required=("id", "decision"), closed=True), ignored=_RESOLVE_IGNORED)
def approval_resolve(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    if not ad.queue.resolve(params["id"].strip(), params["decision"], resolver_name(caller)):
        raise GatewayError(INVALID_REQUEST, "unknown or expired approval id")
    return {"ok": True}


@APPROVAL_METHODS.method("exec.approval.list")
def approval_list(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    return ad.queue.pending()


@APPROVAL_METHODS.method("exec.approval.get", Obj({"id": _NONEMPTY}, required=("id",), closed=True))
def approval_get(ad: ApprovalDeps, caller: Caller, params: Params) -> JSON:
    record = ad.queue.get(params["id"].strip())
    if record is None:
        raise GatewayError(INVALID_REQUEST, "unknown or expired approval id")
    return record
