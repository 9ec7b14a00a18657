# -*- test-case-name: tests.test_uischema -*-
"""
C{config.schema} for the Control UIs' config forms: the config's shape
(L{openclaw.config.schema.ROOT}) as the JSON Schema their form renderers
read, and upstream's C{uiHints} (labels, help, order, secrets) by key path.

Both UI generations render objects, arrays, enums, strings, numbers and
booleans, and unions of plain values; a node they cannot read shows
"Unsupported schema node. Use Raw mode.". So, for the form only:

  - a section accepted as it is (any value) is a free object: its keys are
    edited one by one, each value as JSON;
  - any other value of unknown type takes plain text, numbers or true/false;
  - a union of a structure and a plain value (a model given as
    C{{primary, fallbacks}} or as a string) is shown as the structure: the
    plain form stays valid, and Raw mode edits either.

Everything else is the schema as it is. Secrets (tokens, passwords, keys)
are marked C{sensitive} wherever they sit, so the forms mask them.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterator

from openclaw.shape import Kind

JSON = Any
PLAIN = ("string", "number", "integer", "boolean", "null")
SECRET_KEYS = frozenset({"token", "password", "apikey", "api_key", "secret", "bottoken", "apptoken", "signingsecret", "webhooksecret", "accesstoken", "appsecret", "verifytoken"})
DOCS = "https://docs.openclaw.ai"

# Top-level sections: (label, help, group, order).
SECTIONS: dict[str, tuple[str, str, str, int]] = {
    "gateway": ("Gateway", "The gateway's port, bind address, authentication, Control UI, TLS, node pairing and the sandbox for agent tools.", "Gateway", 30),
    "agents": ("Agents", "The agents: their models (primary, then fallbacks), workspace, identity and heartbeat.", "Agents", 40),
    "models": ("Models", "Model providers: base URL, API key, wire API and the models each offers.", "Models", 50),
    "tools": ("Tools", "Which tools agents get (allow, deny) and whether sessions may message other agents' sessions.", "Tools", 55),
    "session": ("Session", "When a session starts over: daily at an hour, or after idle minutes.", "Session", 60),
    "cron": ("Automations", "Scheduled jobs: on or off, where jobs are stored, how many run at once, what happens to runs missed while down.", "Automations", 70),
    "channels": ("Channels", "Messaging channels, one section per platform.", "Messaging Channels", 80),
    "logging": ("Logging", "Log levels, the log file, its format and rotation, and redaction.", "Logging", 90),
    "bridge": ("Bridge", "The JSONL node bridge (port P+1): on or off, port, TLS.", "Nodes", 100),
    "canvasHost": ("Canvas Host", "The canvas host (port P+4): on or off, port, root folder, live reload.", "Canvas", 110),
    "discovery": ("Discovery", "mDNS announcement of this gateway on the local network.", "Discovery", 120),
    "pairing": ("Pairing", "Device pairing requests: how long a code lasts, how many may wait.", "Pairing", 130),
    "env": ("Environment Variables", "Variables set for the gateway process (env.vars) and shell environment import.", "Environment", 140),
}
OTHER_SECTION = "Accepted as it is and kept in the file; this gateway does not act on it."

# Notable fields: path → (label, help).
FIELDS: dict[str, tuple[str, str]] = {
    "gateway.port": ("Port", "TCP port for the WebSocket, HTTP API and Control UI (the bridge uses port + 1, the canvas host port + 4)."),
    "gateway.bind": ("Bind", "Where to listen: loopback (this machine), lan (every interface), tailnet, auto or custom."),
    "gateway.auth.mode": ("Auth Mode", "How clients prove who they are: a shared token, a password, a trusted proxy, or none (loopback only)."),
    "gateway.auth.token": ("Token", "The shared token clients send (connect.params.auth.token)."),
    "gateway.auth.password": ("Password", "The shared password clients send (never stored by the Control UI)."),
    "gateway.controlUi.allowedOrigins": ("Allowed Origins", "Browser origins besides the gateway's own that may open a WebSocket (for a UI served elsewhere)."),
    "gateway.controlUi.basePath": ("Base Path", "Where the Control UI is served, such as / or /openclaw."),
    "agents.defaults.model": ("Model", "The agents' model: primary as provider/model, then fallbacks tried in order."),
    "agents.defaults.model.primary": ("Primary", "provider/model, e.g. openai/gpt-4.1."),
    "agents.defaults.workspace": ("Workspace", "The folder agents work in (default: <state dir>/workspace)."),
    "agents.defaults.heartbeat.every": ("Every", 'How often the heartbeat runs, e.g. "30m" or "1h" (0 turns it off).'),
    "models.providers": ("Providers", "One entry per provider id (used in provider/model refs)."),
    "models.providers.*.baseUrl": ("Base URL", "The provider's API root, e.g. https://api.openai.com/v1."),
    "models.providers.*.apiKey": ("API Key", "Sent to the provider; never shown in logs."),
    "models.providers.*.api": ("API", "openai-completions, anthropic-messages or ollama."),
    "tools.allow": ("Allow", "Only these tools (when set)."),
    "tools.deny": ("Deny", "Never these tools."),
    "session.idleMinutes": ("Idle Minutes", "Start a new session after this long without activity."),
    "session.reset.atHour": ("At Hour", "Local hour of the daily new session (default 4)."),
    "cron.maxConcurrentRuns": ("Max Concurrent Runs", "Jobs running at once (1 to 32)."),
    "cron.missedRuns": ("Missed Runs", "Jobs that came due while the gateway was down: run once, or skip."),
}
PLACEHOLDERS = {"agents.defaults.model.primary": "openai/gpt-4.1", "models.providers.*.baseUrl": "https://api.openai.com/v1", "gateway.controlUi.basePath": "/"}


def _plain(node: JSON) -> bool:
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return ("enum" in node or "const" in node or all(k in PLAIN for k in kinds)) and "anyOf" not in node and "oneOf" not in node


def _form_node(node: JSON, top: bool) -> JSON:
    """One node of the form schema (see the module docstring)."""
    if not isinstance(node, dict):
        return node
    if not node:  # any value
        return {"type": "object", "additionalProperties": {}, "description": OTHER_SECTION} if top else {"type": ["string", "number", "boolean"]}
    out = dict(node)
    for key in ("anyOf", "oneOf"):
        if key in out:
            options = [_form_node(o, False) for o in out[key]]
            if all(_plain(o) for o in options):
                out[key] = options
            else:
                rich = next((o for o in options if o.get("type") == "object"), None) or next((o for o in options if o.get("type") == "array"), options[0])
                del out[key]
                out.update({k: v for k, v in rich.items() if k not in out})
                out["description"] = "Also accepts a plain value (edit it in Raw mode)."
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _form_node(v, False) for k, v in out["properties"].items()}
    if isinstance(out.get("additionalProperties"), dict) and out["additionalProperties"]:
        out["additionalProperties"] = _form_node(out["additionalProperties"], False)
    if isinstance(out.get("items"), dict):
        out["items"] = _form_node(out["items"], False) if out["items"] else {"type": ["string", "number", "boolean"]}
    return out


def form_schema(root: Kind) -> dict[str, JSON]:
    """The config's JSON Schema (draft-07) as the Control UI's config form can render every node of it."""
    schema = copy.deepcopy(root.json_schema())
    schema["properties"] = {k: _form_node(v, True) for k, v in schema.get("properties", {}).items()}
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema}


def _paths(node: JSON, prefix: str) -> Iterator[tuple[str, str]]:
    """(path, key) of every property, C{*} standing for a map's keys."""
    if not isinstance(node, dict):
        return
    for key, child in (node.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path, key
        yield from _paths(child, path)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        yield from _paths(extra, f"{prefix}.*" if prefix else "*")
    if isinstance(node.get("items"), dict):
        yield from _paths(node["items"], f"{prefix}.*" if prefix else "*")


def _normal(key: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", key.lower())


def ui_hints(schema: JSON) -> dict[str, dict[str, JSON]]:
    """upstream's C{uiHints} for L{form_schema}'s schema: sections, notable fields, and every secret marked sensitive."""
    hints: dict[str, dict[str, JSON]] = {}
    for key in schema.get("properties") or {}:
        label, help, group, order = SECTIONS.get(key, (None, OTHER_SECTION, "Other", 500))
        hint: dict[str, JSON] = {"group": group, "order": order, "help": help, "advanced": key not in SECTIONS}
        if label:
            hint["label"] = label
        hints[key] = hint
    for path, (label, help) in FIELDS.items():
        hints.setdefault(path, {}).update({"label": label, "help": help})
    for path, text in PLACEHOLDERS.items():
        hints.setdefault(path, {})["placeholder"] = text
    for path, key in _paths(schema, ""):
        if _normal(key) in SECRET_KEYS:
            hints.setdefault(path, {})["sensitive"] = True
    return hints
