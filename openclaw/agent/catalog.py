# -*- test-case-name: tests.test_models -*-
"""
The model catalog C{models.list} publishes: every model of
C{models.providers.<id>.models[]}, and every model an agent is set to use
(C{agents.defaults.model}, C{agents.list[].model}: primary and fallbacks),
each with whether this gateway can reach it (provider resolution as in
L{openclaw.agent.providers}: a base URL, and a key for a built-in provider).

There is no provider discovery here: the catalog is what the config says.
"""

from __future__ import annotations

from typing import Any, Mapping

from openclaw.agent.providers import BUILTIN, resolve_ref

INPUTS = ("text", "image", "audio", "video", "document")


class UnknownProvider(ValueError):
    """A provider filter that names no configured or built-in provider."""


def _chosen(config: Mapping[str, Any], agent_id: str) -> list[str]:
    """The agent's model refs: primary first, then fallbacks."""
    agents = config.get("agents") or {}
    chosen = (agents.get("defaults") or {}).get("model")
    for agent in agents.get("list") or []:
        if isinstance(agent, dict) and agent.get("id") == agent_id and agent.get("model"):
            chosen = agent["model"]
    if isinstance(chosen, str):
        chosen = {"primary": chosen}
    if not isinstance(chosen, dict):
        return []
    names = [chosen.get("primary"), *(chosen.get("fallbacks") or [])]
    return [n for n in names if isinstance(n, str) and "/" in n]


def _providers(config: Mapping[str, Any]) -> dict[str, Any]:
    providers = (config.get("models") or {}).get("providers") or {}
    return {k: v for k, v in providers.items() if isinstance(v, dict)} if isinstance(providers, dict) else {}


def catalog(config: Mapping[str, Any], env: Mapping[str, str], agent_id: str = "main", provider: str | None = None, details: bool = False) -> list[dict[str, Any]]:
    """
    The rows of C{models.list} (upstream's C{ModelChoice}): configured models
    first, in config order, then models the agent names that no provider lists.

    @raise UnknownProvider: C{provider} is neither configured nor built in.
    """
    providers = _providers(config)
    wanted = provider.strip().lower() if provider else None
    if wanted is not None and wanted not in {p.lower() for p in providers} | set(BUILTIN):
        raise UnknownProvider(f"Unknown model catalog provider {provider!r}. Use a provider id from models.providers ({', '.join(sorted(providers)) or 'none configured'}).")
    chosen = _chosen(config, agent_id)
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for provider_id, settings in providers.items():
        for model in settings.get("models") or []:
            if isinstance(model, dict) and isinstance(model.get("id"), str) and model["id"]:
                entries.append((provider_id, model["id"], model))
    listed = {f"{p}/{m}" for p, m, _ in entries}
    for name in chosen:
        if name not in listed:
            provider_id, _, model_id = name.partition("/")
            entries.append((provider_id, model_id, {}))
            listed.add(name)
    rows = []
    for provider_id, model_id, model in entries:
        if wanted is not None and provider_id.lower() != wanted:
            continue
        rows.append(_row(provider_id, model_id, model, config, env, chosen, details))
    return rows


def _row(provider_id: str, model_id: str, model: dict[str, Any], config: Mapping[str, Any], env: Mapping[str, str], chosen: list[str], details: bool) -> dict[str, Any]:
    name = f"{provider_id}/{model_id}"
    row: dict[str, Any] = {"id": model_id, "name": model.get("name") if isinstance(model.get("name"), str) and model.get("name") else model_id, "provider": provider_id}
    tags = []
    if chosen and name == chosen[0]:
        tags.append("default")
    tags.extend(f"fallback#{i}" for i, n in enumerate(chosen[1:], 1) if n == name)
    if model:
        tags.append("configured")
    row["tags"] = tags
    if isinstance(model.get("alias"), str) and model["alias"]:
        row["alias"] = model["alias"]
    if isinstance(model.get("contextWindow"), int) and not isinstance(model["contextWindow"], bool) and model["contextWindow"] > 0:
        row["contextWindow"] = model["contextWindow"]
    if isinstance(model.get("reasoning"), bool):
        row["reasoning"] = model["reasoning"]
    ref = resolve_ref(name, config, env)
    row["available"] = ref is not None
    if ref is None and provider_id in BUILTIN and provider_id not in _providers(config):
        row["unavailableReason"] = "missing-auth"  # a built-in provider without its key
    if details:
        inputs = [i for i in model.get("input") or [] if i in INPUTS] if isinstance(model.get("input"), list) else []
        row["input"] = inputs or ["text"]
    return row


V3_FIELDS = ("id", "name", "provider", "contextWindow", "reasoning")


def v3_row(row: dict[str, Any]) -> dict[str, Any]:
    """v3's ModelChoice is closed: id, name, provider, contextWindow, reasoning."""
    return {k: row[k] for k in V3_FIELDS if k in row}


def auth_status(config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """
    C{models.authStatus}: each provider the config or the environment keys,
    where its key comes from (C{config} or C{env}; C{static}: a key that does
    not expire), or C{missing} for a configured provider without one; and
    which providers take an API key (all but Ollama). No sign-in profiles
    or OAuth here, so C{profiles} is always empty.
    """
    rows: list[dict[str, Any]] = []
    providers = _providers(config)
    for provider_id, settings in providers.items():
        builtin = BUILTIN.get(provider_id)
        if settings.get("apiKey"):
            source: str | None = "config"
        elif builtin and env.get(builtin["env"]):
            source = "env"
        else:
            source = None
        keyless = settings.get("api") == "ollama"
        row: dict[str, Any] = {"provider": provider_id, "authProvider": provider_id, "displayName": provider_id, "profiles": []}
        row["status"] = "static" if source or keyless else "missing"
        if source:
            row["apiKey"] = {"source": source}
        rows.append(row)
    for provider_id, builtin in BUILTIN.items():
        if provider_id not in providers and env.get(builtin["env"]):
            rows.append({"provider": provider_id, "authProvider": provider_id, "displayName": provider_id, "profiles": [], "status": "static", "apiKey": {"source": "env"}})
    capabilities = [{"provider": p, "apiKeySupported": True, "quickApiKeySetup": False} for p in sorted({*BUILTIN, *providers}) if (providers.get(p) or {}).get("api") != "ollama"]
    capabilities += [{"provider": p, "apiKeySupported": False, "quickApiKeySetup": False} for p in sorted(providers) if providers[p].get("api") == "ollama"]
    return {"providers": rows, "providerCapabilities": capabilities}
