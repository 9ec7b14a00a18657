# -*- test-case-name: tests.test_usage -*-
"""
Token usage and what it cost.

Providers report tokens in their own words; L{tokens} is the one form the
rest of the gateway uses: C{input} (prompt tokens not read from a cache),
C{output}, C{cacheRead}, C{cacheWrite} (only when reported) and C{total}.
Prices come from C{models.providers.<id>.models[].cost} (USD per million
tokens for C{input}, C{output}, C{cacheRead}, C{cacheWrite}); a model
without prices has no cost, and summaries count it as missing.

Each assistant message in a transcript carries its usage in upstream's
shape (L{transcript_usage}), so the cost summary (C{usage.cost}, C{/usage
cost}) is read from the transcripts: it survives restarts and matches what
upstream's tools read from the same files. L{UsageMeter} counts since start
for C{usage.status}.
"""

from __future__ import annotations

import calendar
import math
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from openclaw.agent.sessions import Transcript

TOKEN_KINDS = ("input", "output", "cacheRead", "cacheWrite")
MAX_FILES = 20_000  # transcripts one summary reads at most
MAX_DAYS = 3650


def _count(value: Any) -> int:
    """A token count from a provider: a non-negative whole number, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def tokens(input: Any = 0, output: Any = 0, cache_read: Any = 0, cache_write: Any = 0, total: Any = None) -> dict[str, int]:
    """Usage in the gateway's form; C{total} is the provider's when it says one, else the sum."""
    usage = {"input": _count(input), "output": _count(output)}
    if _count(cache_read):
        usage["cacheRead"] = _count(cache_read)
    if _count(cache_write):
        usage["cacheWrite"] = _count(cache_write)
    parts = sum(usage.values())
    usage["total"] = _count(total) or parts
    return usage


def openai_usage(raw: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI's C{usage}: prompt tokens include the cached ones, which are billed as cache reads."""
    details = raw.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _count(raw.get("prompt_tokens", raw.get("input_tokens")))
    return tokens(max(prompt - cached, 0), raw.get("completion_tokens", raw.get("output_tokens")), cached, 0, raw.get("total_tokens"))


def anthropic_usage(raw: Mapping[str, Any], previous: Mapping[str, int] | None = None) -> dict[str, int]:
    """Anthropic's C{usage} (C{message_start}, then cumulative C{message_delta} counts); C{input_tokens} excludes the cache."""
    before = previous or {}
    pick = lambda key, name: _count(raw[key]) if key in raw else before.get(name, 0)  # noqa: E731
    return tokens(
        pick("input_tokens", "input"),
        pick("output_tokens", "output"),
        pick("cache_read_input_tokens", "cacheRead"),
        pick("cache_creation_input_tokens", "cacheWrite"),
    )


def add(into: dict[str, int], usage: Mapping[str, int]) -> dict[str, int]:
    """Sum C{usage} into C{into} (a run's total over its model turns)."""
    for name, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            into[name] = into.get(name, 0) + value
    return into


@attrs.frozen
class Prices:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost(self, usage: Mapping[str, Any]) -> dict[str, float]:
        """What C{usage} cost, per kind and in total (upstream's C{usage.cost})."""
        parts = {
            "input": _count(usage.get("input")) * self.input / 1e6,
            "output": _count(usage.get("output")) * self.output / 1e6,
            "cacheRead": _count(usage.get("cacheRead")) * self.cache_read / 1e6,
            "cacheWrite": _count(usage.get("cacheWrite")) * self.cache_write / 1e6,
        }
        return {**parts, "total": sum(parts.values())}


def _price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def prices_for(config: Mapping[str, Any], provider: str | None, model: str | None) -> Prices | None:
    """C{models.providers.<provider>.models[id=model].cost}, or None when not configured."""
    if not provider or not model:
        return None
    providers = (config.get("models") or {}).get("providers") if isinstance(config.get("models"), dict) else None
    settings = providers.get(provider) if isinstance(providers, dict) else None
    entries = settings.get("models") if isinstance(settings, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model and isinstance(entry.get("cost"), dict):
            cost = entry["cost"]
            values = {k: _price(cost.get(k)) for k in TOKEN_KINDS}
            if all(v is None for v in values.values()):
                return None
            return Prices(values["input"] or 0.0, values["output"] or 0.0, values["cacheRead"] or 0.0, values["cacheWrite"] or 0.0)
    return None


def split_label(label: str | None) -> tuple[str | None, str | None]:
    """C{"provider/model"} (the model id may hold more slashes) to its parts."""
    if not label or "/" not in label:
        return None, label or None
    provider, _, model = label.partition("/")
    return provider, model


def transcript_usage(usage: Mapping[str, int], prices: Prices | None) -> dict[str, Any]:
    """An assistant message's C{usage} in upstream's transcript shape (with C{cost} when priced)."""
    out: dict[str, Any] = {k: _count(usage.get(k)) for k in TOKEN_KINDS}
    out["totalTokens"] = _count(usage.get("total")) or sum(out.values())
    if prices is not None:
        out["cost"] = prices.cost(out)
    return out


def _recorded(raw: Mapping[str, Any]) -> dict[str, int]:
    """A transcript's usage (ours, or upstream's spellings) in the gateway's form."""
    pick = lambda *names: next((raw[n] for n in names if n in raw), 0)  # noqa: E731
    return tokens(
        pick("input", "inputTokens", "input_tokens", "prompt_tokens"),
        pick("output", "outputTokens", "output_tokens", "completion_tokens"),
        pick("cacheRead", "cache_read", "cache_read_input_tokens"),
        pick("cacheWrite", "cache_write", "cache_creation_input_tokens"),
        pick("totalTokens", "total", "total_tokens"),
    )


@attrs.define
class Totals:
    """Sums over usage entries, as upstream's cost summary reports them."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total_tokens: int = 0
    total_cost: float = 0.0
    input_cost: float = 0.0
    output_cost: float = 0.0
    cache_read_cost: float = 0.0
    cache_write_cost: float = 0.0
    missing_cost_entries: int = 0
    count: int = 0

    def add(self, usage: Mapping[str, int], cost: Mapping[str, float] | None) -> None:
        self.count += 1
        self.input += usage.get("input", 0)
        self.output += usage.get("output", 0)
        self.cache_read += usage.get("cacheRead", 0)
        self.cache_write += usage.get("cacheWrite", 0)
        self.total_tokens += usage.get("total", 0)
        if cost is None:
            self.missing_cost_entries += 1
            return
        self.total_cost += cost.get("total", 0.0)
        self.input_cost += cost.get("input", 0.0)
        self.output_cost += cost.get("output", 0.0)
        self.cache_read_cost += cost.get("cacheRead", 0.0)
        self.cache_write_cost += cost.get("cacheWrite", 0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write,
            "totalTokens": self.total_tokens,
            "totalCost": round(self.total_cost, 10),
            "inputCost": round(self.input_cost, 10),
            "outputCost": round(self.output_cost, 10),
            "cacheReadCost": round(self.cache_read_cost, 10),
            "cacheWriteCost": round(self.cache_write_cost, 10),
            "missingCostEntries": self.missing_cost_entries,
        }


def _cost_of(raw: Mapping[str, Any], usage: Mapping[str, int], prices: Prices | None) -> dict[str, float] | None:
    """The cost a transcript recorded, else an estimate from today's prices, else None (missing)."""
    recorded = raw.get("cost")
    if isinstance(recorded, dict):
        total = recorded.get("total")
        if isinstance(total, (int, float)) and not isinstance(total, bool) and math.isfinite(total) and total >= 0:
            return {k: float(v) for k, v in recorded.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if prices is None:
        return None if usage.get("total", 0) else {"total": 0.0}
    return prices.cost(usage)


@attrs.frozen
class Window:
    """Which days a summary covers, and how days are told apart (UTC, local time, or a fixed offset)."""

    start_ms: int
    end_ms: int
    offset_minutes: int | None = 0  # None: the gateway's local time

    def day(self, ms: int) -> str:
        seconds = ms / 1000
        if self.offset_minutes is None:
            return time.strftime("%Y-%m-%d", time.localtime(seconds))
        return time.strftime("%Y-%m-%d", time.gmtime(seconds + self.offset_minutes * 60))

    def covers(self, ms: int) -> bool:
        return self.start_ms <= ms <= self.end_ms


def _timestamp_ms(entry: Mapping[str, Any]) -> int | None:
    raw = entry.get("timestamp")
    if isinstance(raw, str):
        try:
            base = time.strptime(raw[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            base = None
        if base is not None:
            millis = raw[20:23] if len(raw) > 20 and raw[19] == "." and raw[20:23].isdigit() else "0"
            return calendar.timegm(base) * 1000 + int(millis.ljust(3, "0"))
    message = entry.get("message")
    stamp = message.get("timestamp") if isinstance(message, dict) else None
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and math.isfinite(stamp) and stamp > 0:
        return int(stamp)
    return None


def usage_entries(path: Path) -> Iterable[tuple[int | None, str | None, str | None, Mapping[str, Any]]]:
    """C{(timestamp ms, provider, model, raw usage)} of each assistant message in one transcript."""
    for entry in Transcript(path).lines():
        message = entry.get("message")
        if entry.get("type") != "message" or not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        raw = message.get("usage")
        if not isinstance(raw, dict):
            continue
        provider = message.get("provider") if isinstance(message.get("provider"), str) else None
        model = message.get("model") if isinstance(message.get("model"), str) else None
        if provider is None:
            provider, model = split_label(model)  # older entries: "provider/model"
        yield _timestamp_ms(entry), provider, model, raw


def session_totals(entries: Iterable[Mapping[str, Any]], config: Mapping[str, Any]) -> tuple[Totals, dict[str, int] | None]:
    """A session's totals from its transcript entries, and the usage of its last model reply."""
    totals = Totals()
    last = None
    for entry in entries:
        message = entry.get("message")
        if entry.get("type") != "message" or not isinstance(message, dict) or message.get("role") != "assistant" or not isinstance(message.get("usage"), dict):
            continue
        provider = message.get("provider") if isinstance(message.get("provider"), str) else None
        model = message.get("model") if isinstance(message.get("model"), str) else None
        if provider is None:
            provider, model = split_label(model)
        last = _recorded(message["usage"])
        totals.add(last, _cost_of(message["usage"], last, prices_for(config, provider, model)))
    return totals, last


def cost_summary(folders: Mapping[str, Path], config: Mapping[str, Any], window: Window, days: int, now_ms: int) -> dict[str, Any]:
    """
    C{usage.cost}: token and cost totals per day and per model over the
    transcripts in C{folders} (agent id → its sessions folder), for entries
    inside C{window}. Reads files: call it off the reactor thread.
    """
    daily: dict[str, Totals] = {}
    models: dict[tuple[str, str], Totals] = {}
    totals = Totals()
    missing_by_model: dict[str, int] = {}
    recent: list[tuple[float, Path]] = []
    for folder in folders.values():
        try:
            paths = list(folder.glob("*.jsonl"))
        except OSError:
            continue
        for path in paths:
            try:
                modified = path.stat().st_mtime
            except OSError:
                continue
            if modified * 1000 >= window.start_ms:  # else nothing in it is new enough
                recent.append((modified, path))
    recent.sort(key=lambda item: item[0], reverse=True)
    for _, path in recent[:MAX_FILES]:  # past the cap, the newest transcripts count (a cron job makes one per run)
        for ts, provider, model, raw in usage_entries(path):
            if ts is None or not window.covers(ts):
                continue
            usage = _recorded(raw)
            cost = _cost_of(raw, usage, prices_for(config, provider, model))
            key = (provider or "unknown", model or "unknown")
            if cost is None:
                missing_by_model["/".join(key)] = missing_by_model.get("/".join(key), 0) + 1
            for bucket in (totals, daily.setdefault(window.day(ts), Totals()), models.setdefault(key, Totals())):
                bucket.add(usage, cost)
    summary_totals = totals.as_json()
    if missing_by_model:
        summary_totals["missingCostByModel"] = missing_by_model
    return {
        "updatedAt": now_ms,
        "days": days,
        "startDate": window.day(window.start_ms),
        "endDate": window.day(window.end_ms),
        "daily": [{"date": date, **bucket.as_json()} for date, bucket in sorted(daily.items())],
        "totals": summary_totals,
        "byModel": [
            {"provider": provider, "model": model, "count": bucket.count, "totals": bucket.as_json()}
            for (provider, model), bucket in sorted(models.items(), key=lambda kv: (-kv[1].total_cost, -kv[1].total_tokens, kv[0]))
        ],
    }


class UsageMeter:
    """Requests, tokens and cost per provider and model since the gateway started (C{usage.status})."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], Totals] = {}

    def record(self, provider: str | None, model: str | None, usage: Mapping[str, int], prices: Prices | None) -> None:
        bucket = self.models.setdefault((provider or "unknown", model or "unknown"), Totals())
        bucket.add(usage, prices.cost(usage) if prices is not None else None)

    def providers(self) -> list[dict[str, Any]]:
        """Upstream's C{usage.status} rows (C{windows}: quota windows, which no configured provider reports here)."""
        grouped: dict[str, list[tuple[str, Totals]]] = {}
        for (provider, model), bucket in sorted(self.models.items()):
            grouped.setdefault(provider, []).append((model, bucket))
        rows = []
        for provider, entries in grouped.items():
            total = Totals()
            for _, bucket in entries:
                for name in ("input", "output", "cache_read", "cache_write", "total_tokens", "total_cost", "input_cost", "output_cost", "cache_read_cost", "cache_write_cost", "missing_cost_entries", "count"):
                    setattr(total, name, getattr(total, name) + getattr(bucket, name))
            rows.append(
                {
                    "provider": provider,
                    "displayName": provider,
                    "windows": [],
                    "requests": total.count,
                    **total.as_json(),
                    "models": [{"model": model, "requests": bucket.count, **bucket.as_json()} for model, bucket in entries],
                }
            )
        return rows

    def session_line(self) -> str:
        return ", ".join(f"{p}/{m}: {b.count} requests" for (p, m), b in sorted(self.models.items())) or "no model requests yet"


def footer(usage: Mapping[str, int], cost: float | None, mode: str) -> str:
    """The per-reply usage line C{/usage tokens|full} asks for."""
    line = f"Usage: {usage.get('input', 0) + usage.get('cacheRead', 0) + usage.get('cacheWrite', 0)} in / {usage.get('output', 0)} out"
    if mode == "full":
        line += f" · {usage.get('total', 0)} total"
        if usage.get("cacheRead") or usage.get("cacheWrite"):
            line += f" (cache {usage.get('cacheRead', 0)} read, {usage.get('cacheWrite', 0)} written)"
        if cost is not None:
            line += f" · {format_usd(cost)}"
    return line


def format_usd(value: float) -> str:
    if value == 0:
        return "$0.00"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:.2f}"
