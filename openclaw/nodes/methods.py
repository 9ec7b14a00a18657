# -*- test-case-name: tests.test_nodes -*-
"""The node methods: listing, invoking, results and events, node pairing."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.interfaces import EventSink
from openclaw.nodes.events import NodeEvents
from openclaw.nodes.pairing import MAX_NAME, FieldError, NodePairingStore
from openclaw.nodes.registry import NodeRegistry
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Any_, Bool, Either, Int, List, Num, Obj, Str


class PairedDevices(Protocol):
    """The device pairing store (L{openclaw.gateway.devices.PairingStore}): WebSocket nodes pair as devices."""

    def all_paired(self) -> list[dict[str, Any]]: ...


@attrs.frozen
class NodeDeps:
    """What the node methods work with."""

    nodes: NodeRegistry
    pairing: NodePairingStore
    devices: PairedDevices
    events: EventSink
    node_events: NodeEvents


NODE_METHODS: MethodTable[NodeDeps] = MethodTable()

_NODE_ID = Str(nonempty=True)
_STRINGS = List(Str())


_DEVICE_FIELDS = ("displayName", "platform", "deviceFamily", "remoteIp", "createdAtMs", "approvedAtMs")


def paired_nodes(nd: NodeDeps) -> dict[str, dict[str, Any]]:
    """
    The one answer to "is this node paired": nodes approved in the bridge's
    node store, and devices approved with role C{node} (WebSocket nodes).
    Every method that says "paired" reads it here. No tokens in the records.
    """
    known = {r["nodeId"]: {**r, "transport": "bridge"} for r in nd.pairing.paired()}
    for record in nd.devices.all_paired():
        if "node" in record.get("roles", []) and record["deviceId"] not in known:
            fields = {k: record[k] for k in _DEVICE_FIELDS if k in record}
            known[record["deviceId"]] = {"nodeId": record["deviceId"], **fields, "transport": "ws"}
    return known


@NODE_METHODS.method("node.list")
def node_list(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    known = paired_nodes(nd)
    ids = sorted(set(known) | set(nd.nodes.links))
    return {"ts": nd.nodes.now_ms(), "nodes": [nd.nodes.describe(i, known.get(i)) for i in ids]}


@NODE_METHODS.method("node.describe", Obj({"nodeId": _NODE_ID}, required=("nodeId",), closed=True))
def node_describe(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    known = paired_nodes(nd)
    node_id = params["nodeId"]
    if node_id not in known and not nd.nodes.connected(node_id):
        raise GatewayError(INVALID_REQUEST, f"unknown nodeId: {node_id}")
    return nd.nodes.describe(node_id, known.get(node_id))


_INVOKE = Obj(
    {"nodeId": _NODE_ID, "command": Str(nonempty=True), "params": Any_(), "timeoutMs": Int(0), "idempotencyKey": Str(nonempty=True), "sessionKey": Str()},
    required=("nodeId", "command", "idempotencyKey"),
    closed=True,
)


_INVOKE_IGNORED = (
    Ignored(
        "node invokes are not tied to a channel turn here: there is no turn source to route back to",
        {"turnSourceChannel": Str(), "turnSourceTo": Str(), "turnSourceAccountId": Str(), "turnSourceThreadId": Either((Str(), Num()))},
    ),
)


@NODE_METHODS.method("node.invoke", _INVOKE, ignored=_INVOKE_IGNORED)
def node_invoke(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    return nd.nodes.invoke(params["nodeId"], params["command"], params.get("params"), params.get("timeoutMs"), params["idempotencyKey"])


_RESULT = Obj(
    {"id": Str(nonempty=True), "nodeId": _NODE_ID, "ok": Bool(), "payload": Any_(), "payloadJSON": Any_(), "error": Any_()},
    required=("id", "nodeId", "ok"),
    closed=True,
)


@NODE_METHODS.method("node.invoke.result", _RESULT)
def node_invoke_result(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    if params["nodeId"] != caller.node_id:
        raise GatewayError(INVALID_REQUEST, "nodeId does not match this connection")
    payload_json = params.get("payloadJSON") if isinstance(params.get("payloadJSON"), str) else None
    if not nd.nodes.result(params["id"], params["nodeId"], params["ok"], params.get("payload"), payload_json, params.get("error")):
        return {"ok": True, "ignored": True}  # late (timed out) or unknown: nothing waits for it
    return {"ok": True}


@NODE_METHODS.method("node.event", Obj({"event": Str(nonempty=True), "payload": Any_(), "payloadJSON": Any_()}, required=("event",), closed=True))
def node_event(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    return nd.node_events.handle(caller.node_id, params["event"], params.get("payload"), params.get("payloadJSON"), caller.subscriptions)


@NODE_METHODS.method("node.rename", Obj({"nodeId": _NODE_ID, "displayName": Str(nonempty=True, max_length=MAX_NAME)}, required=("nodeId", "displayName"), closed=True))
def node_rename(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    paired = set(paired_nodes(nd))
    if params["nodeId"] not in paired:
        raise GatewayError(INVALID_REQUEST, f"unknown nodeId: {params['nodeId']} (only paired nodes can be renamed)")
    name = params["displayName"].strip()
    nd.nodes.rename(params["nodeId"], name, paired)
    return {"nodeId": params["nodeId"], "displayName": name}


_PAIR_REQUEST = Obj(
    {
        "nodeId": _NODE_ID,
        **{k: Str() for k in ("displayName", "platform", "version", "coreVersion", "uiVersion", "deviceFamily", "modelIdentifier", "remoteIp")},
        "caps": _STRINGS,
        "commands": _STRINGS,
        "silent": Bool(),
    },
    required=("nodeId",),
    closed=True,
)


@NODE_METHODS.method("node.pair.request", _PAIR_REQUEST)
def node_pair_request(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    try:
        request, created = nd.pairing.request(params["nodeId"], params, nd.nodes.now_ms())
    except FieldError as e:
        raise GatewayError(INVALID_REQUEST, f"invalid node.pair.request params: {e}")
    if created:
        nd.events.broadcast("node.pair.requested", request, drop_if_slow=True)
    return {"status": "pending", "request": request, "created": created}


@NODE_METHODS.method("node.pair.list")
def node_pair_list(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    paired = []
    for node_id, record in sorted(paired_nodes(nd).items(), key=lambda kv: kv[1].get("approvedAtMs", 0)):
        link = nd.nodes.links.get(node_id)
        entry = {**record, "connected": link is not None}
        if nd.nodes.name(node_id):
            entry["displayName"] = nd.nodes.name(node_id)
        if link is not None:
            entry["lastConnectedAtMs"] = link[2]
        elif node_id in nd.nodes.last_seen:
            entry["lastConnectedAtMs"] = nd.nodes.last_seen[node_id][0]
        paired.append(entry)
    return {"pending": nd.pairing.pending(nd.nodes.now_ms()), "paired": paired}


_REQUEST_ID = Obj({"requestId": Str(nonempty=True)}, required=("requestId",), closed=True)


@NODE_METHODS.method("node.pair.approve", _REQUEST_ID)
def node_pair_approve(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    record = nd.pairing.approve(params["requestId"], nd.nodes.now_ms())
    if record is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    nd.events.broadcast("node.pair.resolved", {"requestId": params["requestId"], "nodeId": record["nodeId"], "decision": "approved", "ts": nd.nodes.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "node": {k: v for k, v in record.items() if k != "token"}}


@NODE_METHODS.method("node.pair.reject", _REQUEST_ID)
def node_pair_reject(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    request = nd.pairing.reject(params["requestId"])
    if request is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    nd.events.broadcast("node.pair.resolved", {"requestId": params["requestId"], "nodeId": request["nodeId"], "decision": "rejected", "ts": nd.nodes.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "nodeId": request["nodeId"]}


@NODE_METHODS.method("node.pair.verify", Obj({"nodeId": _NODE_ID, "token": Str(nonempty=True)}, required=("nodeId", "token"), closed=True))
def node_pair_verify(nd: NodeDeps, caller: Caller, params: Params) -> JSON:
    return {"ok": nd.pairing.verify(params["nodeId"], params["token"]), "nodeId": params["nodeId"]}
