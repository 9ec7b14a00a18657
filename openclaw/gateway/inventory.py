# -*- test-case-name: tests.test_uimethods -*-
"""
C{plugins.list}: what this gateway has, in the shape of upstream's plugin
catalog, so its Control UI's Plugins page lists it truthfully.

There is no plugin system here: everything is built in. The entries are
the parts a user would look for on that page, each enabled or not by the
config in force:

  - model providers, one per wire API this gateway speaks (OpenAI-compatible
    Chat Completions, Anthropic Messages, Ollama): enabled when a configured
    provider (or a built-in one with its key) uses it;
  - messaging channels, one per platform the gateway can run: enabled when
    C{channels.<id>} is configured and not switched off;
  - the agent's tools (built in, and those other parts add): enabled unless
    C{tools.allow}/C{tools.deny} leave them out.

Nothing can be installed, removed or switched here (C{mutationAllowed:
false}); the config is where these are turned on and off. The Plugins
page's catalog (C{plugins.catalog.browse}) lists the same parts: there is
no marketplace to reach.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import attrs

from openclaw import __version__
from openclaw.agent.providers import BUILTIN
from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.tools import TOOLS, tools_for
from openclaw.config.settings import GatewaySettings
from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Int, Obj, Str

# Wire API → (plugin id, name, what it is).
APIS = {
    "openai-completions": ("openai", "OpenAI-compatible", "Chat Completions over HTTP(S) with SSE streaming: OpenAI and every server that speaks its API."),
    "anthropic-messages": ("anthropic", "Anthropic", "Anthropic Messages API with SSE streaming."),
    "ollama": ("ollama", "Ollama", "A local Ollama server (NDJSON streaming)."),
}

Channels = Callable[[], Iterable[tuple[str, str]]]  # (platform id, label) of each platform this gateway can run


def no_channels() -> Iterable[tuple[str, str]]:
    return ()


@attrs.frozen
class InventoryDeps:
    """What the inventory reads: the settings in force, the agent's tools, the channel platforms."""

    settings: GatewaySettings
    agent: AgentRuntime
    channels: Channels = no_channels


INVENTORY_METHODS: MethodTable[InventoryDeps] = MethodTable()


def _entry(id: str, name: str, description: str, kind: str, category: str, enabled: bool) -> dict[str, JSON]:
    return {
        "id": id,
        "name": name,
        "description": description,
        "version": __version__,
        "kind": [kind],
        "category": category,
        "origin": "bundled",
        "installed": True,
        "enabled": enabled,
        "state": "enabled" if enabled else "disabled",
        "removable": False,
    }


def provider_apis(config: Mapping[str, Any], env: Mapping[str, str]) -> set[str]:
    """The wire APIs some usable provider speaks: a configured one, or a built-in one with its key in the environment."""
    used: set[str] = set()
    providers = (config.get("models") or {}).get("providers") or {}
    for pid, provider in (providers.items() if isinstance(providers, dict) else ()):
        if isinstance(provider, dict):
            api = provider.get("api") or (BUILTIN[pid]["api"] if pid in BUILTIN else "openai-completions")
            used.add(str(api))
    for pid, builtin in BUILTIN.items():
        if env.get(builtin["env"]):
            used.add(builtin["api"])
    return used


def entries(deps: InventoryDeps) -> list[dict[str, JSON]]:
    settings = deps.settings
    rows = []
    used = provider_apis(settings.config, settings.env)
    for api, (pid, name, what) in APIS.items():
        rows.append(_entry(pid, name, what, "provider", "model-provider", api in used))
    for cid, label in deps.channels():
        rows.append(_entry(cid, label, f"{label} messaging channel.", "channel", "channel", cid in settings.channels))
    extra = deps.agent.extra_tools
    offered = {t.spec.name for t in tools_for(settings.agents.tools, None, extra)}
    for tool in {**TOOLS, **extra}.values():
        rows.append(_entry(f"tool-{tool.spec.name}", tool.spec.name, tool.spec.description, "tool", "tool", tool.spec.name in offered))
    return rows


@INVENTORY_METHODS.method("plugins.list")
def plugins_list(deps: InventoryDeps, caller: Caller, params: Params) -> JSON:
    return {"plugins": entries(deps), "diagnostics": [], "mutationAllowed": False}


INTENTS = ("all", "bundled", "trending", "official", "featured")
CATEGORIES = {
    "model-provider": ("Model providers", "The model APIs this gateway speaks.", "cpu"),
    "channel": ("Channels", "Messaging platforms the gateway can run.", "message-square"),
    "tool": ("Agent tools", "What the agent can do in its workspace.", "wrench"),
}
_CATEGORY = Str(nonempty=True, max_length=64)
_BROWSE = Obj(
    {
        "query": Str(max_length=200),
        "searchSource": Str(("openclaw-control-ui",)),
        "intent": Str(INTENTS),
        "category": _CATEGORY,
        "cursor": Str(nonempty=True, max_length=4096),
        "pageSize": Int(1, 100),
    },
    closed=True,
)


def discovery_item(entry: Mapping[str, JSON]) -> dict[str, JSON]:
    """An inventory entry as the Plugins page's catalog shows it: built in, present, managed in the config."""
    enabled = bool(entry["enabled"])
    return {
        "id": entry["id"],
        "catalog": {
            "name": entry["name"],
            "summary": entry["description"],
            "official": True,
            "categories": [entry["category"]],
            "latestVersion": entry["version"],
        },
        "local": {"present": True, "installed": True, "enabled": enabled, "state": "enabled" if enabled else "disabled", "pluginId": entry["id"], "action": "manage"},
    }


@INVENTORY_METHODS.method("plugins.catalog.browse", _BROWSE)
def plugins_catalog_browse(deps: InventoryDeps, caller: Caller, params: Params) -> JSON:
    """
    The Plugins page's catalog: this gateway's own parts (there is no plugin
    marketplace to reach). Everything is built in and official, nothing is
    featured or trending. C{cursor} is the offset of the next page.
    """
    cursor = params.get("cursor", "0")
    if not cursor.isdigit() or len(cursor) > 9:
        raise GatewayError(INVALID_REQUEST, "invalid plugins.catalog.browse params: cursor: not a cursor this gateway gave")
    rows = entries(deps)
    if params.get("intent") in ("featured", "trending"):
        rows = []
    if params.get("category"):
        rows = [r for r in rows if r["category"] == params["category"]]
    needle = (params.get("query") or "").strip().lower()
    if needle:
        rows = [r for r in rows if needle in str(r["name"]).lower() or needle in str(r["description"]).lower() or needle in str(r["id"]).lower()]
    offset, size = int(cursor), params.get("pageSize", 50)
    page = rows[offset : offset + size]
    result: dict[str, JSON] = {
        "items": [discovery_item(r) for r in page],
        "categories": [{"slug": slug, "label": label, "description": what, "icon": icon, "order": i} for i, (slug, (label, what, icon)) in enumerate(CATEGORIES.items())],
    }
    if offset + size < len(rows):
        result["nextCursor"] = str(offset + size)
    return result
