# -*- test-case-name: tests.test_ws -*-
"""
The control-plane methods. Each handler takes C{(gw, caller, params)}: the
L{GatewayDeps} it works with, the calling connection, the params. It
returns the payload (or raises L{GatewayError}); params are checked against
a closed shape first, as upstream's schemas are C{additionalProperties: false}.

A method accepts every param upstream's schema declares for it. Params it
accepts but does not act on are declared as L{Ignored}, with the reason; they
are checked, then dropped before the handler runs (docs/params.md lists them).
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from openclaw import __version__
from openclaw.agent.catalog import UnknownProvider, auth_status, catalog, v3_row
from openclaw.agent.providers import resolve_models
from openclaw.config.errors import ConfigError
from openclaw.config.loader import config_hash, parse_json5, read_text, resolve_includes, substitute_env
from openclaw.config.schema import ROOT, validate
from openclaw.config.uischema import form_schema, ui_hints
from openclaw.agent.runtime import AgentRuntime
from openclaw.config.settings import GatewaySettings
from openclaw.gateway.boot import Boot
from openclaw.gateway.configwatch import ConfigWatch
from openclaw.gateway.connections import Connections
from openclaw.gateway.devices import PairingStore, redacted
from openclaw.gateway.health import Health, HeartbeatReport
from openclaw.gateway.presence import Presence
from openclaw.gateway.voicewake import VoiceWake
from openclaw.interfaces import EventSink
from openclaw.gateway.scopes import has_scope
from openclaw.gateway.stability import CAPACITY, Stability
from openclaw.gateway.summary import agent_rows, status_sessions
from openclaw.protocol.connect import ADMIN
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.shape import Any_, Bool, Int, List, Obj, Str
from openclaw.store import atomic_write

MASK = "__OPENCLAW_REDACTED__"
_SECRET_KEYS = {"token", "password", "apikey", "api_key", "secret", "bottoken", "apptoken", "signingsecret", "webhooksecret", "accesstoken", "appsecret", "verifytoken", "adaptertoken"}
LOGS_DEFAULT_LIMIT = 500
LOGS_DEFAULT_MAX_BYTES = 250_000


@attrs.frozen
class GatewayDeps:
    """What the control-plane methods work with."""

    settings: GatewaySettings
    boot: Boot
    connections: Connections
    events: EventSink
    presence: Presence
    health: Health
    stability: Stability
    heartbeats: HeartbeatReport
    pairing: PairingStore
    voicewake: VoiceWake
    config: ConfigWatch
    agent: AgentRuntime


METHODS: MethodTable[GatewayDeps] = MethodTable()
method = METHODS.method


# -- health, status, presence (heartbeats: openclaw/cron/methods.py)


@method("health", Obj({"probe": Bool()}, closed=True))
def health(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    if params.get("probe"):
        return gw.health.refresh()
    return gw.health.snapshot()


_STATUS = Obj(
    # What the v4 CLI's `openclaw status` sends; upstream's schema declares no status params.
    {"includeChannelSummary": Bool(), "includeCliProjection": Bool()},
    closed=True,
)


@method("status", _STATUS)
def status(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    default_id, agents = gw.settings.agents.default_id, agent_rows(gw.settings.agents)
    sensitive = has_scope(caller.scopes, ADMIN)
    heartbeat = gw.heartbeats.summary()
    main_key = f"agent:{default_id}:main"
    live = gw.stability.live()
    summary: dict[str, Any] = {
        "runtimeVersion": __version__,
        "heartbeat": {"defaultAgentId": default_id, "agents": [{"agentId": a["id"], **{k: heartbeat.get(k) for k in ("enabled", "every", "everyMs")}} for a in agents]},
        "channelSummary": gw.health.channels.lines() if params.get("includeChannelSummary", True) else [],
        "queuedSystemEvents": list(gw.agent.pending_events.get(main_key, [])),
        "sessions": status_sessions(gw.settings.agents, gw.agent, gw.boot.now_ms(), sensitive),
        "eventLoop": live["eventLoop"],
        "processMemory": live["memory"],
        "pid": live["pid"],
        "uptimeMs": gw.boot.uptime_ms(),
        "connections": len(gw.connections),
        "runs": live["runs"],
    }
    if params.get("includeCliProjection"):
        summary["cliProjection"] = {"agents": {"defaultId": default_id, "selectionRequired": False, "rows": agents}, "updateChannel": None}
    if sensitive:
        summary["configPath"] = str(gw.settings.layout.config_path)
        summary["stateDir"] = str(gw.settings.state_dir)
    return summary


@method("system-presence")
def system_presence(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    return gw.presence.list()


_SYSTEM_EVENT = Obj(
    {
        "text": Str(nonempty=True),
        **{k: Str() for k in ("deviceId", "instanceId", "host", "ip", "mode", "version", "platform", "deviceFamily", "modelIdentifier", "reason")},
        "lastInputSeconds": Int(0),
        "roles": List(Str()),
        "scopes": List(Str()),
        "tags": List(Str()),
    },
    required=("text",),
    closed=True,
)


@method("system-event", _SYSTEM_EVENT)
def system_event(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    gw.agent.enqueue_event("main", params["text"])  # the main session hears it on its next run
    key = params.get("instanceId") or params.get("deviceId")
    if key:
        entry = {k: v for k, v in params.items() if k != "text"}
        entry.setdefault("reason", "periodic")
        entry["text"] = params["text"]
        gw.presence.update(key, entry)
    return {"ok": True}


@method("diagnostics.stability", Obj({"limit": Int(1, CAPACITY), "type": Str(nonempty=True), "sinceSeq": Int(0)}, closed=True))
def diagnostics_stability(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    """The vital-signs record (L{openclaw.gateway.stability}); C{type}/C{sinceSeq} filter, C{limit} keeps the newest."""
    return gw.stability.snapshot(params.get("limit", 50), params.get("type", "").strip() or None, params.get("sinceSeq"))


# -- logs


@method("logs.tail", Obj({"cursor": Int(0), "limit": Int(1, 5000), "maxBytes": Int(1, 1_000_000)}, closed=True))
def logs_tail(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    path = gw.settings.logging.file or gw.settings.layout.log_file
    result = tail_file(path, params.get("cursor"), params.get("limit", LOGS_DEFAULT_LIMIT), params.get("maxBytes", LOGS_DEFAULT_MAX_BYTES))
    result["lines"] = [with_client_aliases(line) for line in result["lines"]]
    return result


def with_client_aliases(line: str) -> str:
    """
    Our records say C{msg}/C{ts}/C{level}/C{subsystem}. Upstream's viewers read
    C{message}/C{time} (v4) or tslog's C{"0"} and C{_meta} (v3): served lines
    carry those too, so both CLIs show them. The file keeps the stable schema.
    """
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "msg" not in record or "message" in record:
        return line
    record["message"] = record["msg"]
    record.setdefault("time", record.get("ts"))
    record.setdefault("0", record["msg"])
    record.setdefault("_meta", {"logLevelName": str(record.get("level", "info")).upper(), "name": json.dumps({"subsystem": record.get("subsystem")}), "date": record.get("ts")})
    return json.dumps(record, ensure_ascii=False)


def tail_file(path: Path, cursor: int | None, limit: int, max_bytes: int) -> dict[str, Any]:
    """
    Lines of a log file from byte offset C{cursor} (or its end when None).
    A cursor past the end (the file rotated) restarts from the top, with C{reset}.
    """
    result: dict[str, Any] = {"file": str(path), "cursor": 0, "size": 0, "lines": []}
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return result
    with f:
        size = os.fstat(f.fileno()).st_size
        result["size"] = size
        reset = cursor is not None and cursor > size
        start = max(0, size - max_bytes) if cursor is None or reset else cursor
        if size - start > max_bytes:
            result["skippedBytes"] = size - max_bytes - start
            start = size - max_bytes
            result["truncated"] = True
        f.seek(start)
        data = f.read(size - start)
    if start > 0 and (cursor is None or reset or "truncated" in result):
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
    end = data.rfind(b"\n")
    complete = data[: end + 1] if end >= 0 else b""
    lines = complete.decode("utf-8", "replace").splitlines()
    if len(lines) > limit:
        lines = lines[-limit:]
        result["truncated"] = True
    result["lines"] = lines
    result["cursor"] = size - (len(data) - len(complete))
    if reset:
        result["reset"] = True
    return result


# -- config


def redact_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if k.lower() in _SECRET_KEYS and isinstance(v, str) and v else redact_config(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v) for v in value]
    return value


def restore_redacted(new: Any, old: Any) -> Any:
    """A client echoing back a redacted config keeps the real secrets."""
    if new == MASK:
        return old
    if isinstance(new, dict):
        old_dict = old if isinstance(old, dict) else {}
        return {k: restore_redacted(v, old_dict.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        return [restore_redacted(v, old_list[i] if i < len(old_list) else None) for i, v in enumerate(new)]
    return new


def read_config_file(path: Path) -> tuple[bool, str | None]:
    try:
        return True, read_text(path)
    except FileNotFoundError:
        return False, None
    except ConfigError as e:  # a FIFO or a device must not block the reactor
        raise GatewayError(UNAVAILABLE, "; ".join(str(i) for i in e.issues))


@method("config.get")
def config_get(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    path = gw.settings.layout.config_path
    exists, raw = read_config_file(path)
    parsed: Any = {}
    issues: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    resolved: Any = {}
    if raw is not None:
        try:
            parsed = parse_json5(raw, path)
            resolved = substitute_env(resolve_includes(parsed, path, (path,)), gw.settings.env)
            errors, warns = validate(resolved)
            issues = [i.as_json() for i in errors]
            warnings = [w.as_json() for w in warns]
        except ConfigError as e:
            issues = [i.as_json() for i in e.issues]
    return {
        "path": str(path),
        "exists": exists,
        "raw": None if raw is None else json.dumps(redact_config(parsed), indent=2),
        "parsed": redact_config(parsed),
        "valid": not issues,
        "config": redact_config(resolved),
        "hash": config_hash(raw),
        "issues": issues,
        "warnings": warnings,
        "legacyIssues": [],
    }


def _check_base_hash(gw: GatewayDeps, base_hash: str | None) -> tuple[Path, Any]:
    path = gw.settings.layout.config_path
    exists, raw = read_config_file(path)
    if exists:
        if not base_hash:
            raise GatewayError(INVALID_REQUEST, "config base hash required; re-run config.get and retry")
        if base_hash != config_hash(raw):
            raise GatewayError(INVALID_REQUEST, "config changed since last load; re-run config.get and retry")
    current = parse_json5(raw, path) if raw else {}
    return path, current


def _write_config(gw: GatewayDeps, path: Path, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise GatewayError(INVALID_REQUEST, "invalid config: the top level must be an object")
    try:
        resolved = substitute_env(resolve_includes(config, path, (path,)), gw.settings.env)
    except ConfigError as e:
        raise GatewayError(INVALID_REQUEST, "invalid config: " + "; ".join(str(i) for i in e.issues))
    errors, _ = validate(resolved)
    if errors:
        raise GatewayError(INVALID_REQUEST, "invalid config: " + "; ".join(str(i) for i in errors[:10]))
    atomic_write(path, (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    gw.config.reload()
    return {"ok": True, "path": str(path), "config": redact_config(config)}


def _parse_raw(method_name: str, raw: str) -> Any:
    try:
        return parse_json5(raw, "raw")
    except ConfigError as e:
        raise GatewayError(INVALID_REQUEST, f"invalid {method_name} params: " + "; ".join(str(i) for i in e.issues))


_CONFIG_WRITE = Obj(
    {"raw": Str(), "baseHash": Str(), "sessionKey": Str(), "note": Str(), "restartDelayMs": Int(0), "deliveryContext": Any_(), "replacePaths": Any_()},
    required=("raw",),
    closed=True,
)


@method("config.set", _CONFIG_WRITE)
def config_set(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    path, current = _check_base_hash(gw, params.get("baseHash"))
    return _write_config(gw, path, restore_redacted(_parse_raw("config.set", params["raw"]), current))


@method("config.apply", _CONFIG_WRITE)
def config_apply(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    path, current = _check_base_hash(gw, params.get("baseHash"))
    result = _write_config(gw, path, restore_redacted(_parse_raw("config.apply", params["raw"]), current))
    return {**result, "restart": False, "sentinel": None}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


@method("config.patch", _CONFIG_WRITE)
def config_patch(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    path, current = _check_base_hash(gw, params.get("baseHash"))
    patch = _parse_raw("config.patch", params["raw"])
    if not isinstance(patch, dict):
        raise GatewayError(INVALID_REQUEST, "invalid config.patch params: raw must be a JSON5 object")
    result = _write_config(gw, path, merge_patch(current, restore_redacted(patch, current)))
    return {**result, "restart": False, "sentinel": None}


@method("config.schema")
def config_schema(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    """The config's shape as the Control UIs' forms render it, with upstream's uiHints (L{openclaw.config.uischema})."""
    schema = form_schema(ROOT)
    generated = datetime.fromtimestamp(gw.boot.started_ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"schema": schema, "uiHints": ui_hints(schema), "version": __version__, "generatedAt": generated}


# -- devices

_REQUEST_ID = Obj({"requestId": Str(nonempty=True)}, required=("requestId",), closed=True)
_DEVICE_ID = Obj({"deviceId": Str(nonempty=True)}, required=("deviceId",), closed=True)


@method("device.pair.list")
def device_pair_list(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    pairing = gw.pairing
    return {"pending": pairing.pending(gw.boot.now_ms()), "paired": [redacted(r) for r in pairing.all_paired()]}


@method("device.pair.approve", _REQUEST_ID)
def device_pair_approve(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    record = gw.pairing.approve(params["requestId"], gw.boot.now_ms())
    if record is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    gw.events.broadcast("device.pair.resolved", {"requestId": params["requestId"], "deviceId": record["deviceId"], "decision": "approved", "ts": gw.boot.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "device": redacted(record)}


@method("device.pair.reject", _REQUEST_ID)
def device_pair_reject(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    request = gw.pairing.reject(params["requestId"])
    if request is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    gw.events.broadcast("device.pair.resolved", {"requestId": params["requestId"], "deviceId": request["deviceId"], "decision": "rejected", "ts": gw.boot.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "deviceId": request["deviceId"]}


@method("device.pair.remove", _DEVICE_ID)
def device_pair_remove(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    if not gw.pairing.remove(params["deviceId"]):
        raise GatewayError(INVALID_REQUEST, "unknown deviceId")
    gw.connections.close_where(lambda other: other.device_id == params["deviceId"], 4001, "client invalidated: device removed")
    return {"ok": True, "deviceId": params["deviceId"]}


def _check_token_change(caller: Caller, device_id: str, role: str, scopes: list[str] | None) -> None:
    admin = has_scope(caller.scopes, ADMIN)
    if role != "operator" and not admin:
        raise GatewayError(INVALID_REQUEST, "missing scope: operator.admin")
    if not admin and device_id != caller.device_id:
        raise GatewayError(INVALID_REQUEST, "device tokens of other devices need operator.admin")
    if scopes is not None and not admin and not set(scopes) <= set(caller.scopes):
        raise GatewayError(INVALID_REQUEST, "scopes exceed the caller's scopes")


@method("device.token.rotate", Obj({"deviceId": Str(nonempty=True), "role": Str(nonempty=True), "scopes": List(Str())}, required=("deviceId", "role"), closed=True))
def device_token_rotate(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    _check_token_change(caller, params["deviceId"], params["role"], params.get("scopes"))
    token = gw.pairing.rotate(params["deviceId"], params["role"], params.get("scopes"), gw.boot.now_ms())
    if token is None:
        raise GatewayError(INVALID_REQUEST, "unknown deviceId")
    result = {"deviceId": params["deviceId"], **{k: v for k, v in token.items() if k != "token"}}
    if params["deviceId"] == caller.device_id:
        result["token"] = token["token"]  # the bearer goes only to its own device
    gw.connections.close_where(
        lambda other: other.device_id == params["deviceId"] and other.role == params["role"] and other.auth_method == "device-token" and other is not caller,
        4001,
        "client invalidated: device token rotated",
    )
    return result


@method("device.token.revoke", Obj({"deviceId": Str(nonempty=True), "role": Str(nonempty=True)}, required=("deviceId", "role"), closed=True))
def device_token_revoke(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    _check_token_change(caller, params["deviceId"], params["role"], None)
    token = gw.pairing.revoke(params["deviceId"], params["role"], gw.boot.now_ms())
    if token is None:
        raise GatewayError(INVALID_REQUEST, "unknown device token")
    gw.connections.close_where(
        lambda other: other.device_id == params["deviceId"] and other.role == params["role"] and other.auth_method == "device-token",
        4001,
        "client invalidated: device token revoked",
    )
    return {"deviceId": params["deviceId"], "role": params["role"], "revokedAtMs": token["revokedAtMs"]}


# -- models, agents, voicewake


_MODELS = Obj(
    {
        "agentId": Str(nonempty=True),
        "view": Str(("default", "configured", "provider-config", "all")),
        "provider": Str(nonempty=True),  # sent by the v4 CLI (`models list --provider`)
        "includeDetails": Bool(),  # sent by the v4 CLI: adds input and local
        "preparedOnly": Bool(),
        "refresh": Bool(),
    },
    closed=True,
)
_MODELS_IGNORED = (
    Ignored("no per-provider capability probing here", {"includeProviderCapabilities": Bool()}),
    # 2026.9.6's Control UI: a session's catalog, saved model accounts, global default previews.
    Ignored("one catalog for every session: no per-session catalogs, saved model accounts or default previews", {"sessionKey": Str(nonempty=True), "authProfileId": Str(nonempty=True, max_length=256), "includeDefaultModels": Bool()}),
)


@method("models.list", _MODELS, ignored=_MODELS_IGNORED)
def models_list(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    """
    The configured catalog (L{openclaw.agent.catalog}). C{view} is accepted
    and every view lists the same models; C{refresh} and C{preparedOnly} have
    nothing to refresh or prepare (but may not both be true, as upstream).
    """
    if params.get("refresh") and params.get("preparedOnly"):
        raise GatewayError(INVALID_REQUEST, "invalid models.list params: preparedOnly and refresh cannot both be true")
    try:
        rows = catalog(gw.settings.config, gw.settings.env, params.get("agentId") or gw.settings.agents.default_id, params.get("provider"), bool(params.get("includeDetails")))
    except UnknownProvider as e:
        raise GatewayError(INVALID_REQUEST, str(e))
    if caller.version.number < 4:
        rows = [v3_row(r) for r in rows]
    return {"models": rows}


@method("models.authStatus", Obj({"agentId": Str()}, closed=True), ignored=(Ignored("nothing is cached: every answer is read from the config in force", {"refresh": Bool()}),))
def models_auth_status(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    """Which providers have keys and where from (L{auth_status})."""
    agent_id = params.get("agentId") or gw.settings.agents.default_id
    if agent_id not in gw.settings.agents.ids:
        raise GatewayError(INVALID_REQUEST, f"unknown agent: {agent_id[:64]}")
    return {"ts": gw.boot.now_ms(), **auth_status(gw.settings.config, gw.settings.env)}


@method("agents.list")
def agents_list(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    """
    The configured agents; v4 rows also name each agent's models (the ones
    its runs use: primary, then fallbacks) and its workspace. An agent
    without a usable model has no C{model}: the v4 UI then asks for one.
    """
    rows = agent_rows(gw.settings.agents)
    if caller.version.number >= 4:
        for row in rows:
            refs = resolve_models(gw.settings.config, gw.settings.env, row["id"])
            row["kind"] = "agent"
            row["workspace"] = str(gw.agent.workspace())
            if refs:
                row["model"] = {"primary": refs[0].label, **({"fallbacks": [r.label for r in refs[1:]]} if refs[1:] else {})}
    return {"defaultId": gw.settings.agents.default_id, "mainKey": "main", "scope": "per-sender", "agents": rows}


@method("voicewake.get")
def voicewake_get(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    return {"triggers": gw.voicewake.triggers()}


@method("voicewake.set", Obj({"triggers": List(Str(nonempty=True, max_length=64))}, required=("triggers",), closed=True))
def voicewake_set(gw: GatewayDeps, caller: Caller, params: Params) -> JSON:
    return {"triggers": gw.voicewake.set(params["triggers"])}
