# -*- test-case-name: tests.test_ws -*-
"""
The control-plane methods. Each handler takes C{(connection, params)} and
returns the payload (or raises L{GatewayError}); params are checked against
a closed shape first, as upstream's schemas are C{additionalProperties: false}.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable

from openclaw import __version__
from openclaw.config.errors import ConfigError
from openclaw.config.loader import config_hash, parse_json5, read_text, resolve_includes, substitute_env
from openclaw.config.schema import ROOT, validate
from openclaw.gateway.devices import redacted
from openclaw.gateway.scopes import has_scope
from openclaw.protocol.connect import ADMIN
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Any_, Bool, Int, List, Obj, Str, check
from openclaw.store import atomic_write

MASK = "__OPENCLAW_REDACTED__"
_SECRET_KEYS = {"token", "password", "apikey", "api_key", "secret", "bottoken", "apptoken", "signingsecret", "webhooksecret"}
LOGS_DEFAULT_LIMIT = 500
LOGS_DEFAULT_MAX_BYTES = 250_000


def params_of(method: str, shape: Obj, params: Any) -> dict[str, Any]:
    errors, _ = check(shape, params)
    if errors:
        raise GatewayError(INVALID_REQUEST, f"invalid {method} params: " + "; ".join(str(e) for e in errors[:5]))
    return params


def method(name: str, shape: Obj = Obj(closed=True), table: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler with its params shape in C{table} (default L{METHODS})."""

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        def handler(conn: Any, params: Any) -> Any:
            return f(conn, params_of(name, shape, params))

        handler.__name__ = f.__name__
        (METHODS if table is None else table)[name] = handler
        return f

    return register


METHODS: dict[str, Callable[[Any, Any], Any]] = {}


# -- health, status, presence (heartbeats: openclaw/cron/methods.py)


@method("health", Obj({"probe": Bool()}, closed=True))
def health(conn, params):
    hub = conn.hub
    if params.get("probe"):
        return hub.refresh_health()
    return hub.health_snapshot()


@method("status")
def status(conn, params):
    hub = conn.hub
    summary = {
        "runtimeVersion": __version__,
        "heartbeat": {"defaultAgentId": "main", "agents": [{"agentId": "main", **{k: v for k, v in hub.heartbeat_info().items() if k in ("enabled", "every", "everyMs")}}]},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "sessions": {"paths": [], "count": 0, "defaults": {"model": None, "contextTokens": None}, "recent": [], "byAgent": []},
        "uptimeMs": hub.uptime_ms(),
        "connections": len(hub.connections),
    }
    if has_scope(conn.scopes, ADMIN):
        summary["configPath"] = str(hub.settings.layout.config_path)
        summary["stateDir"] = str(hub.settings.state_dir)
    return summary


@method("system-presence")
def system_presence(conn, params):
    return conn.hub.presence_list()


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
def system_event(conn, params):
    hub = conn.hub
    if getattr(hub, "agent", None) is not None:
        hub.agent.enqueue_event("main", params["text"])  # the main session hears it on its next run
    key = params.get("instanceId") or params.get("deviceId")
    if key:
        entry = {k: v for k, v in params.items() if k != "text"}
        entry.setdefault("reason", "periodic")
        entry["text"] = params["text"]
        conn.hub.update_presence(key, entry)
    return {"ok": True}


# -- logs


@method("logs.tail", Obj({"cursor": Int(0), "limit": Int(1, 5000), "maxBytes": Int(1, 1_000_000)}, closed=True))
def logs_tail(conn, params):
    path = conn.hub.settings.logging.file
    result = tail_file(Path(path), params.get("cursor"), params.get("limit", LOGS_DEFAULT_LIMIT), params.get("maxBytes", LOGS_DEFAULT_MAX_BYTES))
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
def config_get(conn, params):
    path = conn.hub.settings.layout.config_path
    exists, raw = read_config_file(path)
    parsed: Any = {}
    issues: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    resolved: Any = {}
    if raw is not None:
        try:
            parsed = parse_json5(raw, path)
            resolved = substitute_env(resolve_includes(parsed, path, (path,)), conn.hub.settings.env)
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


def _check_base_hash(conn: Any, base_hash: str | None) -> tuple[Path, Any]:
    path = conn.hub.settings.layout.config_path
    exists, raw = read_config_file(path)
    if exists:
        if not base_hash:
            raise GatewayError(INVALID_REQUEST, "config base hash required; re-run config.get and retry")
        if base_hash != config_hash(raw):
            raise GatewayError(INVALID_REQUEST, "config changed since last load; re-run config.get and retry")
    current = parse_json5(raw, path) if raw else {}
    return path, current


def _write_config(conn: Any, path: Path, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise GatewayError(INVALID_REQUEST, "invalid config: the top level must be an object")
    try:
        resolved = substitute_env(resolve_includes(config, path, (path,)), conn.hub.settings.env)
    except ConfigError as e:
        raise GatewayError(INVALID_REQUEST, "invalid config: " + "; ".join(str(i) for i in e.issues))
    errors, _ = validate(resolved)
    if errors:
        raise GatewayError(INVALID_REQUEST, "invalid config: " + "; ".join(str(i) for i in errors[:10]))
    atomic_write(path, (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    conn.hub.reload_config()
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
def config_set(conn, params):
    path, current = _check_base_hash(conn, params.get("baseHash"))
    return _write_config(conn, path, restore_redacted(_parse_raw("config.set", params["raw"]), current))


@method("config.apply", _CONFIG_WRITE)
def config_apply(conn, params):
    path, current = _check_base_hash(conn, params.get("baseHash"))
    result = _write_config(conn, path, restore_redacted(_parse_raw("config.apply", params["raw"]), current))
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
def config_patch(conn, params):
    path, current = _check_base_hash(conn, params.get("baseHash"))
    patch = _parse_raw("config.patch", params["raw"])
    if not isinstance(patch, dict):
        raise GatewayError(INVALID_REQUEST, "invalid config.patch params: raw must be a JSON5 object")
    result = _write_config(conn, path, merge_patch(current, restore_redacted(patch, current)))
    return {**result, "restart": False, "sentinel": None}


@method("config.schema")
def config_schema(conn, params):
    return {"schema": ROOT.json_schema(), "uiHints": {}, "version": __version__, "generatedAt": "static"}


# -- devices

_REQUEST_ID = Obj({"requestId": Str(nonempty=True)}, required=("requestId",), closed=True)
_DEVICE_ID = Obj({"deviceId": Str(nonempty=True)}, required=("deviceId",), closed=True)


@method("device.pair.list")
def device_pair_list(conn, params):
    pairing = conn.hub.pairing
    return {"pending": pairing.pending(conn.hub.now_ms()), "paired": [redacted(r) for r in pairing.all_paired()]}


@method("device.pair.approve", _REQUEST_ID)
def device_pair_approve(conn, params):
    hub = conn.hub
    record = hub.pairing.approve(params["requestId"], hub.now_ms())
    if record is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    hub.broadcast("device.pair.resolved", {"requestId": params["requestId"], "deviceId": record["deviceId"], "decision": "approved", "ts": hub.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "device": redacted(record)}


@method("device.pair.reject", _REQUEST_ID)
def device_pair_reject(conn, params):
    hub = conn.hub
    request = hub.pairing.reject(params["requestId"])
    if request is None:
        raise GatewayError(INVALID_REQUEST, "unknown requestId")
    hub.broadcast("device.pair.resolved", {"requestId": params["requestId"], "deviceId": request["deviceId"], "decision": "rejected", "ts": hub.now_ms()}, drop_if_slow=True)
    return {"requestId": params["requestId"], "deviceId": request["deviceId"]}


@method("device.pair.remove", _DEVICE_ID)
def device_pair_remove(conn, params):
    hub = conn.hub
    if not hub.pairing.remove(params["deviceId"]):
        raise GatewayError(INVALID_REQUEST, "unknown deviceId")
    for other in list(hub.connections):
        if other.device_id == params["deviceId"]:
            other.close(4001, "client invalidated: device removed")
    return {"ok": True, "deviceId": params["deviceId"]}


def _check_token_change(conn: Any, device_id: str, role: str, scopes: list[str] | None) -> None:
    admin = has_scope(conn.scopes, ADMIN)
    if role != "operator" and not admin:
        raise GatewayError(INVALID_REQUEST, "missing scope: operator.admin")
    if not admin and device_id != conn.device_id:
        raise GatewayError(INVALID_REQUEST, "device tokens of other devices need operator.admin")
    if scopes is not None and not admin and not set(scopes) <= set(conn.scopes):
        raise GatewayError(INVALID_REQUEST, "scopes exceed the caller's scopes")


@method("device.token.rotate", Obj({"deviceId": Str(nonempty=True), "role": Str(nonempty=True), "scopes": List(Str())}, required=("deviceId", "role"), closed=True))
def device_token_rotate(conn, params):
    hub = conn.hub
    _check_token_change(conn, params["deviceId"], params["role"], params.get("scopes"))
    token = hub.pairing.rotate(params["deviceId"], params["role"], params.get("scopes"), hub.now_ms())
    if token is None:
        raise GatewayError(INVALID_REQUEST, "unknown deviceId")
    result = {"deviceId": params["deviceId"], **{k: v for k, v in token.items() if k != "token"}}
    if params["deviceId"] == conn.device_id:
        result["token"] = token["token"]  # the bearer goes only to its own device
    for other in list(hub.connections):
        if other.device_id == params["deviceId"] and other.role == params["role"] and other.auth_method == "device-token" and other is not conn:
            other.close(4001, "client invalidated: device token rotated")
    return result


@method("device.token.revoke", Obj({"deviceId": Str(nonempty=True), "role": Str(nonempty=True)}, required=("deviceId", "role"), closed=True))
def device_token_revoke(conn, params):
    hub = conn.hub
    _check_token_change(conn, params["deviceId"], params["role"], None)
    token = hub.pairing.revoke(params["deviceId"], params["role"], hub.now_ms())
    if token is None:
        raise GatewayError(INVALID_REQUEST, "unknown device token")
    for other in list(hub.connections):
        if other.device_id == params["deviceId"] and other.role == params["role"] and other.auth_method == "device-token":
            other.close(4001, "client invalidated: device token revoked")
    return {"deviceId": params["deviceId"], "role": params["role"], "revokedAtMs": token["revokedAtMs"]}


# -- models, agents, channels, voicewake


@method("models.list", Obj({"agentId": Str(), "view": Str(), "preparedOnly": Bool(), "refresh": Bool()}, closed=True))
def models_list(conn, params):
    providers = ((conn.hub.settings.config.get("models") or {}).get("providers") or {})
    models = []
    for provider_id, provider in providers.items() if isinstance(providers, dict) else ():
        for model in (provider or {}).get("models") or []:
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                entry = {"id": model["id"], "name": model.get("name") or model["id"], "provider": provider_id}
                for key in ("contextWindow", "reasoning"):
                    if key in model:
                        entry[key] = model[key]
                models.append(entry)
    return {"models": models}


@method("agents.list")
def agents_list(conn, params):
    agents_config = conn.hub.settings.config.get("agents") or {}
    listed = [a for a in (agents_config.get("list") or []) if isinstance(a, dict) and isinstance(a.get("id"), str)]
    agents = [{"id": a["id"], **({"name": a["name"]} if isinstance(a.get("name"), str) else {})} for a in listed] or [{"id": "main"}]
    default = next((a["id"] for a in listed if a.get("default")), agents[0]["id"])
    return {"defaultId": default, "mainKey": "main", "scope": "per-sender", "agents": agents}


@method("channels.status", Obj({"probe": Bool(), "timeoutMs": Int(0), "channel": Str()}, closed=True))
def channels_status(conn, params):
    return {"ts": conn.hub.now_ms(), "channelOrder": [], "channelLabels": {}, "channels": {}, "channelAccounts": {}, "channelDefaultAccountId": {}}


@method("voicewake.get")
def voicewake_get(conn, params):
    return {"triggers": conn.hub.voicewake_triggers()}


@method("voicewake.set", Obj({"triggers": List(Str(nonempty=True, max_length=64))}, required=("triggers",), closed=True))
def voicewake_set(conn, params):
    return {"triggers": conn.hub.set_voicewake_triggers(params["triggers"])}
