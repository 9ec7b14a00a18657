# -*- test-case-name: tests.test_memory -*-
"""
C{agents.defaults.memorySearch} (merged with C{agents.list[].memorySearch})
and C{agents.defaults.compaction.memoryFlush}, resolved into frozen records.

Embeddings come from an OpenAI-compatible C{/v1/embeddings} endpoint
(C{provider: "openai"}) or Ollama's C{/api/embed} (C{provider: "ollama"}).
Without one, search is keyword (BM25) only, and L{MemoryConfig.note} says why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

OPENAI_BASE = "https://api.openai.com/v1"
OLLAMA_BASE = "http://127.0.0.1:11434"
DEFAULT_MODELS = {"openai": "text-embedding-3-small", "ollama": "nomic-embed-text"}
UNSUPPORTED = ("gemini", "local", "voyage", "mistral")

FLUSH_SYSTEM = (
    "Pre-compaction memory flush: the older part of this conversation is about to be summarised and "
    "its details dropped. Store durable memories now."
)
FLUSH_PROMPT = (
    "Write any lasting notes (decisions, preferences, facts, open tasks) to memory/YYYY-MM-DD.md "
    "(append; create memory/ if needed), or curated long-term facts to MEMORY.md. "
    "If there is nothing to store, reply with NO_REPLY."
)


@attrs.frozen
class EmbeddingTarget:
    """Where embeddings come from; C{key} names vectors made by it in the index."""

    provider: str  # openai | ollama
    model: str
    url: str  # the full endpoint
    api_key: str | None = attrs.field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}:" + hashlib.sha256(self.url.encode()).hexdigest()[:12]


@attrs.frozen
class FlushConfig:
    enabled: bool = True
    system_prompt: str = FLUSH_SYSTEM
    prompt: str = FLUSH_PROMPT


@attrs.frozen
class MemoryConfig:
    enabled: bool
    store_path: Path
    extra_paths: tuple[str, ...] = ()
    embedding: EmbeddingTarget | None = None
    note: str = ""  # why there are no vectors, when there are none
    chunk_tokens: int = 400
    chunk_overlap: int = 80
    max_results: int = 6
    min_score: float = 0.35
    hybrid: bool = True
    vector_weight: float = 0.7
    text_weight: float = 0.3
    candidate_multiplier: int = 4
    cache_enabled: bool = True
    cache_max: int = 50_000
    sync_on_search: bool = True
    sync_on_session_start: bool = True
    interval_minutes: int = 0
    flush: FlushConfig = FlushConfig()


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def _agent_entry(config: Mapping[str, Any], agent_id: str) -> dict[str, Any]:
    for entry in _dict(config.get("agents")).get("list") or []:
        if isinstance(entry, Mapping) and entry.get("id") == agent_id:
            return dict(entry)
    return {}


def workspace_of(config: Mapping[str, Any], state_dir: Path) -> Path:
    """The agent workspace, as the runtime finds it: C{agents.defaults.workspace} or C{<state>/workspace}."""
    configured = _dict(_dict(config.get("agents")).get("defaults")).get("workspace")
    return Path(configured).expanduser() if isinstance(configured, str) else Path(state_dir) / "workspace"


def _int(value: Any, default: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return max(low, min(high, value))


def _num(value: Any, default: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return max(low, min(high, float(value)))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _embedding(section: Mapping[str, Any], config: Mapping[str, Any], env: Mapping[str, str]) -> tuple[EmbeddingTarget | None, str]:
    remote = _dict(section.get("remote"))
    providers = _dict(_dict(config.get("models")).get("providers"))
    provider = _text(section.get("provider"))
    openai = _dict(providers.get("openai"))
    openai_key = _text(remote.get("apiKey")) or _text(openai.get("apiKey")) or _text(env.get("OPENAI_API_KEY"))
    if provider is None:
        if openai_key is None:
            return None, "no embedding provider is configured (agents.defaults.memorySearch.provider): keyword (BM25) search only"
        provider = "openai"
    if provider in UNSUPPORTED:
        return None, f"memorySearch.provider {provider!r} is not available in this gateway (use \"openai\" for any OpenAI-compatible endpoint, or \"ollama\"): keyword (BM25) search only"
    if provider not in DEFAULT_MODELS:
        return None, f"unknown memorySearch.provider {provider[:40]!r}: keyword (BM25) search only"
    model = _text(section.get("model")) or DEFAULT_MODELS[provider]
    headers = tuple((str(k), str(v)) for k, v in _dict(remote.get("headers")).items() if isinstance(v, str))
    if provider == "openai":
        base = _text(remote.get("baseUrl")) or _text(openai.get("baseUrl")) or OPENAI_BASE
        if openai_key is None and not _text(remote.get("baseUrl")):
            return None, "memorySearch.provider \"openai\" needs an API key (memorySearch.remote.apiKey, models.providers.openai.apiKey or OPENAI_API_KEY): keyword (BM25) search only"
        return EmbeddingTarget("openai", model, base.rstrip("/") + "/embeddings", openai_key, headers), ""
    ollama = _dict(providers.get("ollama"))
    base = (_text(remote.get("baseUrl")) or _text(ollama.get("baseUrl")) or OLLAMA_BASE).rstrip("/")
    base = base[: -len("/v1")] if base.endswith("/v1") else base  # an OpenAI-style Ollama URL names the same server
    return EmbeddingTarget("ollama", model, base + "/api/embed", _text(remote.get("apiKey")), headers), ""


def resolve_memory(config: Mapping[str, Any], env: Mapping[str, str], state_dir: Path, agent_id: str = "main") -> MemoryConfig:
    """The memory settings of one agent (defaults, then the agent's own C{memorySearch})."""
    defaults = _dict(_dict(config.get("agents")).get("defaults"))
    section = _merged(_dict(defaults.get("memorySearch")), _dict(_agent_entry(config, agent_id).get("memorySearch")))
    store = _dict(section.get("store"))
    path = _text(store.get("path"))
    store_path = Path(path.replace("{agentId}", agent_id)).expanduser() if path else Path(state_dir) / "memory" / f"{agent_id}.sqlite"
    extra = tuple(p for p in section.get("extraPaths") or () if isinstance(p, str) and p.strip())[:64]
    embedding, note = _embedding(section, config, env)
    chunking = _dict(section.get("chunking"))
    query = _dict(section.get("query"))
    hybrid = _dict(query.get("hybrid"))
    vector_weight = _num(hybrid.get("vectorWeight"), 0.7, 0.0, 1.0)
    text_weight = _num(hybrid.get("textWeight"), 0.3, 0.0, 1.0)
    total = vector_weight + text_weight
    vector_weight, text_weight = (vector_weight / total, text_weight / total) if total > 0 else (0.7, 0.3)
    cache = _dict(section.get("cache"))
    sync = _dict(section.get("sync"))
    flush = _dict(_dict(defaults.get("compaction")).get("memoryFlush"))
    tokens = _int(chunking.get("tokens"), 400, 32, 8000)
    return MemoryConfig(
        enabled=section.get("enabled") is not False,
        store_path=Path(store_path),
        extra_paths=extra,
        embedding=embedding,
        note=note,
        chunk_tokens=tokens,
        chunk_overlap=_int(chunking.get("overlap"), 80, 0, tokens // 2),
        max_results=_int(query.get("maxResults"), 6, 1, 50),
        min_score=_num(query.get("minScore"), 0.35, 0.0, 1.0),
        hybrid=hybrid.get("enabled") is not False,
        vector_weight=vector_weight,
        text_weight=text_weight,
        candidate_multiplier=_int(hybrid.get("candidateMultiplier"), 4, 1, 20),
        cache_enabled=cache.get("enabled") is not False,
        cache_max=_int(cache.get("maxEntries"), 50_000, 1, 1_000_000),
        sync_on_search=sync.get("onSearch") is not False,
        sync_on_session_start=sync.get("onSessionStart") is not False,
        interval_minutes=_int(sync.get("intervalMinutes"), 0, 0, 7 * 24 * 60),
        flush=FlushConfig(
            enabled=flush.get("enabled") is not False,
            system_prompt=_text(flush.get("systemPrompt")) or FLUSH_SYSTEM,
            prompt=_text(flush.get("prompt")) or FLUSH_PROMPT,
        ),
    )


def agent_ids(config: Mapping[str, Any]) -> tuple[str, ...]:
    """C{main} and every C{agents.list[].id}, in that order."""
    listed = _dict(config.get("agents")).get("list")
    ids = [e["id"] for e in listed or () if isinstance(e, Mapping) and isinstance(e.get("id"), str)] if isinstance(listed, list) else []
    return tuple(dict.fromkeys(["main", *ids]))


@attrs.frozen
class MemorySettings:
    """The memory settings of every agent, resolved once (the gateway at build, a command at its start)."""

    agents: Mapping[str, MemoryConfig]
    workspace: Path
    state_dir: Path

    def of(self, agent_id: str) -> MemoryConfig:
        found = self.agents.get(agent_id)
        if found is None:
            raise KeyError(f"unknown agent id {agent_id[:64]!r}")
        return found


def memory_settings(config: Mapping[str, Any], env: Mapping[str, str], state_dir: Path, workspace: Path | None = None, agents: Iterable[str] | None = None) -> MemorySettings:
    """L{MemorySettings} for C{agents} (default: every configured agent); no file is read."""
    ids = agent_ids(config) if agents is None else tuple(agents)
    return MemorySettings(
        {agent: resolve_memory(config, env, state_dir, agent) for agent in ids},
        workspace if workspace is not None else workspace_of(config, state_dir),
        Path(state_dir),
    )
