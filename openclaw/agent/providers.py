# -*- test-case-name: tests.test_providers -*-
"""
Model providers behind one interface, all streaming over treq:
C{openai-completions} (OpenAI, and Ollama/vLLM/llama.cpp/LM Studio via
C{baseUrl}), C{anthropic-messages}, and Ollama's native C{/api/chat}.

A provider turns a L{ModelRequest} into text deltas and a final
L{ModelReply} (text, tool calls, usage in L{openclaw.agent.usage.tokens}'
form). A server that ignores C{stream: true} and answers with one JSON body
is read as that whole completion. Retries (429/5xx, honouring
C{retry-after}) happen only before any output arrived; keys never reach logs.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Mapping

import attrs
import treq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from zope.interface import Interface, implementer

from openclaw.agent.sse import SSEParser
from openclaw.agent.usage import anthropic_usage, openai_usage, tokens

log = Logger(namespace="openclaw.providers")

MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 60.0
MAX_ERROR_BODY = 64 * 1024
MAX_JSON_BODY = 16 * 1024 * 1024  # a whole (non-streamed) completion
DEFAULT_TIMEOUT = 120.0  # seconds without any byte from the provider

BUILTIN = {
    "openai": {"api": "openai-completions", "baseUrl": "https://api.openai.com/v1", "env": "OPENAI_API_KEY"},
    "anthropic": {"api": "anthropic-messages", "baseUrl": "https://api.anthropic.com/v1", "env": "ANTHROPIC_API_KEY"},
}


class ProviderError(Exception):
    def __init__(self, message: str, status: int | None = None, retryable: bool = False, retry_after: float | None = None, kind: str = "unknown") -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind  # refusal | timeout | rate_limit | context_length | unknown


@attrs.frozen
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@attrs.frozen
class ModelRef:
    provider: str
    model: str
    api: str
    base_url: str
    api_key: str | None = attrs.field(default=None, repr=False)
    max_tokens: int | None = None
    reasoning: bool = False  # models[].reasoning: the model takes a thinking level

    def thinks(self, level: str | None) -> bool:
        """Whether a request at C{level} asks this model to think."""
        return self.reasoning and level in THINKING_BUDGET

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


@attrs.frozen
class ModelRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[ToolSpec] = attrs.field(factory=list)
    max_tokens: int = 4096
    thinking: str | None = None  # off | minimal | low | medium | high | xhigh (the session's /think)


@attrs.define
class ModelReply:
    text: str = ""
    tool_calls: list[dict[str, Any]] = attrs.field(factory=list)
    stop_reason: str | None = None
    usage: dict[str, int] = attrs.field(factory=dict)
    model: str = ""
    thinking: list[dict[str, Any]] = attrs.field(factory=list)  # transcript parts {type: thinking, thinking, thinkingSignature}


# Thinking levels (/think) to Anthropic budgets; OpenAI takes the level as reasoning_effort.
THINKING_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
REASONING_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


class IModelProvider(Interface):
    def stream(model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> Deferred:
        """Stream one completion; C{on_text} gets text deltas; fires with a L{ModelReply}."""


def resolve_models(config: Mapping[str, Any], env: Mapping[str, str], agent_id: str = "main") -> list[ModelRef]:
    """C{agents.defaults.model} primary then fallbacks, each resolved to a provider."""
    agents = config.get("agents") or {}
    chosen = (agents.get("defaults") or {}).get("model")
    for agent in agents.get("list") or []:
        if isinstance(agent, dict) and agent.get("id") == agent_id and agent.get("model"):
            chosen = agent["model"]
    if isinstance(chosen, str):
        chosen = {"primary": chosen}
    refs = []
    names = ([chosen.get("primary")] + list(chosen.get("fallbacks") or [])) if isinstance(chosen, dict) else []
    for name in [n for n in names if isinstance(n, str)]:
        ref = resolve_ref(name, config, env)
        if ref is not None:
            refs.append(ref)
    if not refs:
        refs = default_refs(config, env)
    return refs


def _provider_config(provider: str, config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any] | None:
    providers = ((config.get("models") or {}).get("providers") or {})
    configured = providers.get(provider) if isinstance(providers, dict) else None
    builtin = BUILTIN.get(provider)
    if configured is None and builtin is None:
        return None
    merged = {**(builtin or {}), **(configured or {})}
    if not merged.get("apiKey") and builtin and env.get(builtin["env"]):
        merged["apiKey"] = env[builtin["env"]]
    return merged


def resolve_ref(name: str, config: Mapping[str, Any], env: Mapping[str, str]) -> ModelRef | None:
    provider, _, model = name.partition("/")
    if not model:
        return None
    settings = _provider_config(provider, config, env)
    if settings is None or not settings.get("baseUrl"):
        return None
    if provider in BUILTIN and provider not in ((config.get("models") or {}).get("providers") or {}) and not settings.get("apiKey"):
        return None  # a built-in provider without its key
    max_tokens = None
    reasoning = False
    for entry in settings.get("models") or []:
        if isinstance(entry, dict) and entry.get("id") == model:
            max_tokens = entry.get("maxTokens")
            reasoning = entry.get("reasoning") is True
    return ModelRef(provider, model, settings.get("api", "openai-completions"), settings["baseUrl"].rstrip("/"), settings.get("apiKey"), max_tokens, reasoning)


def default_refs(config: Mapping[str, Any], env: Mapping[str, str]) -> list[ModelRef]:
    """No model chosen: the first configured provider's first model, else a keyed built-in."""
    providers = ((config.get("models") or {}).get("providers") or {})
    for provider, settings in providers.items() if isinstance(providers, dict) else ():
        for entry in (settings or {}).get("models") or []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                ref = resolve_ref(f"{provider}/{entry['id']}", config, env)
                if ref is not None:
                    return [ref]
    if env.get("ANTHROPIC_API_KEY"):
        return [r for r in [resolve_ref("anthropic/claude-sonnet-4-5", config, env)] if r]
    if env.get("OPENAI_API_KEY"):
        return [r for r in [resolve_ref("openai/gpt-4.1", config, env)] if r]
    return []


NO_PROVIDER_MESSAGE = (
    "No model provider is configured: set agents.defaults.model.primary to \"<provider>/<model>\" "
    "with models.providers.<provider> {baseUrl, apiKey, api}, or set OPENAI_API_KEY or ANTHROPIC_API_KEY."
)


def _retry_after(headers: Any) -> float | None:
    values = headers.getRawHeaders("retry-after") if headers is not None else None
    if not values:
        return None
    try:
        return min(max(float(values[0]), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


def _error_kind(status: int | None, text: str) -> str:
    lowered = text.lower()
    if status == 429:
        return "rate_limit"
    if "context" in lowered and ("length" in lowered or "window" in lowered or "too long" in lowered):
        return "context_length"
    return "unknown"


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False  # no "Starting factory ..." / "Stopping factory ..." per request


class QuietPool(HTTPConnectionPool):
    """A connection pool whose per-connection factories do not log at info."""

    _factory = _QuietClientFactory


class HttpStreaming:
    """The shared HTTP part: POST JSON, retry before output, feed the body to a parser."""

    def __init__(self, reactor: Any, http: Any = treq, timeout: float = DEFAULT_TIMEOUT, rng: random.Random | None = None, pool: HTTPConnectionPool | None = None) -> None:
        self.reactor = reactor
        self.http = http
        self.timeout = timeout
        self.rng = rng or random.Random()
        # the runtime's persistent pool: no new connection (TCP, TLS) per model request
        self.pool = pool if pool is not None else QuietPool(reactor, persistent=False)

    def stream(self, model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> Deferred:
        """IModelProvider.stream: each API implements C{_stream}; cancelling the Deferred stops it."""
        return Deferred.fromCoroutine(self._stream(model, request, on_text))

    async def _stream(self, model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> ModelReply:
        raise TypeError(f"{type(self).__name__} does not define _stream")

    async def post_stream(
        self,
        url: str,
        headers: dict[str, str],
        body: dict[str, Any],
        on_chunk: Callable[[bytes], None],
        started: Callable[[], bool],
        on_json: Callable[[Any], None] | None = None,
    ) -> None:
        """POST C{body}; feed a streamed answer to C{on_chunk}, or a whole JSON answer to C{on_json}."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._once(url, headers, body, on_chunk, on_json)
                return
            except ProviderError as e:
                if not e.retryable or attempt >= MAX_ATTEMPTS or started():
                    raise
                delay = e.retry_after if e.retry_after is not None else min(30.0, 0.5 * 2 ** (attempt - 1)) * (1 + self.rng.uniform(0, 0.2))
                log.warn("model request failed ({status}); retry {attempt} in {delay:.1f} s", status=e.status, attempt=attempt, delay=delay)
                await deferLater(self.reactor, delay, lambda: None)

    async def _once(self, url: str, headers: dict[str, str], body: dict[str, Any], on_chunk: Callable[[bytes], None], on_json: Callable[[Any], None] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            response = await self.http.request("POST", url, data=data, headers={**headers, "Content-Type": "application/json"}, reactor=self.reactor, timeout=self.timeout, pool=self.pool)
        except CancelledError:
            raise
        except Exception as e:
            if _cancelled(e):
                raise CancelledError() from None  # the run was aborted while connecting: no retry
            raise ProviderError(f"cannot reach the model provider: {type(e).__name__}: {e}", retryable=True, kind="timeout" if "Timeout" in type(e).__name__ else "unknown") from None
        if response.code >= 400:
            text = (await response.content())[:MAX_ERROR_BODY].decode("utf-8", "replace")
            message = text
            try:
                parsed = json.loads(text)
                error = parsed.get("error") if isinstance(parsed, dict) else None
                message = (error.get("message") if isinstance(error, dict) else error) or text
            except ValueError:
                pass
            retryable = response.code == 429 or response.code >= 500
            raise ProviderError(f"model provider returned {response.code}: {str(message)[:500]}", response.code, retryable, _retry_after(response.headers), _error_kind(response.code, str(message)))
        if on_json is not None and _is_json(response.headers):
            on_json(await self._whole(response))
            return
        await self.http.collect(response, on_chunk)

    async def _whole(self, response: Any) -> Any:
        """A JSON body of bounded size."""
        parts: list[bytes] = []
        size = [0]

        def keep(chunk: bytes) -> None:
            size[0] += len(chunk)
            if size[0] > MAX_JSON_BODY:
                raise ProviderError(f"model provider sent more than {MAX_JSON_BODY // (1024 * 1024)} MiB")
            parts.append(chunk)

        await self.http.collect(response, keep)
        try:
            return json.loads(b"".join(parts))
        except ValueError:
            raise ProviderError(f"model provider sent malformed JSON: {b''.join(parts)[:200]!r}")


def _cancelled(e: Exception) -> bool:
    """Whether a connection error is our own cancel (while connecting, or while waiting for the answer)."""
    if isinstance(e, ConnectingCancelledError):
        return True
    reasons = getattr(e, "reasons", None)  # ResponseNeverReceived / ResponseFailed wrap their causes
    return isinstance(reasons, list) and any(isinstance(getattr(r, "value", None), CancelledError) for r in reasons)


def _is_json(headers: Any) -> bool:
    values: Any = headers.getRawHeaders("content-type") if headers is not None else None
    return bool(values) and str(values[0]).split(";")[0].strip().lower() == "application/json"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict) and part.get("type") == "text")


def openai_messages(request: ModelRequest, arguments_as_json: bool = True) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat format (Ollama's native API wants arguments as objects)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for m in request.messages:
        role = m.get("role")
        if role == "user":
            out.append({"role": "user", "content": _text_of(m)})
        elif role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": _text_of(m) or None}
            calls = [p for p in m.get("content") or [] if isinstance(p, dict) and p.get("type") == "toolCall"]
            if calls:
                entry["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments") or {}) if arguments_as_json else c.get("arguments") or {}}}
                    for c in calls
                ]
            out.append(entry)
        elif role == "toolResult":
            out.append({"role": "tool", "tool_call_id": m.get("toolCallId"), "content": _text_of(m)})
    return out


def openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]


@implementer(IModelProvider)
class OpenAICompletions(HttpStreaming):
    """OpenAI Chat Completions with SSE (and any compatible server)."""

    async def _stream(self, model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> ModelReply:
        body: dict[str, Any] = {
            "model": model.model,
            "messages": openai_messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": model.max_tokens or request.max_tokens,
        }
        if request.tools:
            body["tools"] = openai_tools(request.tools)
        if model.thinks(request.thinking):
            body["reasoning_effort"] = REASONING_EFFORT[str(request.thinking)]
        headers = {"Accept": "text/event-stream"}
        if model.api_key:
            headers["Authorization"] = f"Bearer {model.api_key}"
        reply = ModelReply(model=model.label)
        calls: dict[int, dict[str, Any]] = {}
        parser = SSEParser()
        done = []

        def on_chunk(chunk: bytes) -> None:
            for event in parser.feed(chunk):
                if event.data.strip() == "[DONE]":
                    done.append(True)
                    continue
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise ProviderError(f"model provider sent malformed JSON: {event.data[:200]}")
                if isinstance(data, dict) and data.get("error"):
                    error = data["error"]
                    raise ProviderError(f"model provider error: {(error.get('message') if isinstance(error, dict) else error)}")
                if isinstance(data.get("usage"), dict):
                    reply.usage = openai_usage(data["usage"])
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        reply.text += delta["content"]
                        on_text(delta["content"])
                    for call in delta.get("tool_calls") or []:
                        slot = calls.setdefault(int(call.get("index", 0)), {"id": None, "name": "", "arguments": ""})
                        if call.get("id"):
                            slot["id"] = call["id"]
                        function = call.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        reply.stop_reason = choice["finish_reason"]

        def on_json(data: Any) -> None:
            """A whole chat.completion object (the server did not stream)."""
            if not isinstance(data, dict):
                raise ProviderError("model provider sent a JSON answer that is not an object")
            if data.get("error"):
                error = data["error"]
                raise ProviderError(f"model provider error: {(error.get('message') if isinstance(error, dict) else error)}")
            choices = data.get("choices")
            choice = _dict(choices[0] if isinstance(choices, list) and choices else None)
            message = _dict(choice.get("message"))
            if isinstance(message.get("content"), str) and message["content"]:
                reply.text += message["content"]
                on_text(message["content"])
            for index, call in enumerate(message.get("tool_calls") or []):
                function = _dict(_dict(call).get("function"))
                arguments = function.get("arguments")
                calls[index] = {"id": _dict(call).get("id"), "name": function.get("name") or "", "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {})}
            reply.stop_reason = choice.get("finish_reason") or "stop"
            if isinstance(data.get("usage"), dict):
                reply.usage = openai_usage(data["usage"])
            done.append(True)

        await self.post_stream(f"{model.base_url}/chat/completions", headers, body, on_chunk, lambda: bool(reply.text or calls), on_json)
        if not done and reply.stop_reason is None:
            raise ProviderError("model stream ended early (no [DONE])", retryable=False)
        for index in sorted(calls):
            slot = calls[index]
            try:
                arguments = json.loads(slot["arguments"] or "{}")
            except ValueError:
                arguments = {"_raw": slot["arguments"]}
            reply.tool_calls.append({"id": slot["id"] or f"call_{index}", "name": slot["name"], "arguments": arguments})
        return reply


@implementer(IModelProvider)
class AnthropicMessages(HttpStreaming):
    """Anthropic Messages API with SSE (text and tool_use blocks)."""

    VERSION = "2023-06-01"

    def to_messages(self, request: ModelRequest, thinking: bool = False) -> list[dict[str, Any]]:
        """Anthropic's messages; C{thinking}: earlier signed thinking goes back (the API wants it before tool use)."""
        out: list[dict[str, Any]] = []
        for m in request.messages:
            role = m.get("role")
            if role == "user":
                out.append({"role": "user", "content": [{"type": "text", "text": _text_of(m)}]})
            elif role == "assistant":
                blocks: list[dict[str, Any]] = []
                for part in m.get("content") or [] if thinking else []:
                    if isinstance(part, dict) and part.get("type") == "thinking" and part.get("thinkingSignature"):
                        blocks.append({"type": "thinking", "thinking": part.get("thinking", ""), "signature": part["thinkingSignature"]})
                if _text_of(m):
                    blocks.append({"type": "text", "text": _text_of(m)})
                for part in m.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "toolCall":
                        blocks.append({"type": "tool_use", "id": part["id"], "name": part["name"], "input": part.get("arguments") or {}})
                if blocks:
                    out.append({"role": "assistant", "content": blocks})
            elif role == "toolResult":
                block = {"type": "tool_result", "tool_use_id": m.get("toolCallId"), "content": _text_of(m), "is_error": bool(m.get("isError"))}
                if out and out[-1]["role"] == "user" and out[-1]["content"] and out[-1]["content"][0].get("type") == "tool_result":
                    out[-1]["content"].append(block)  # results of one turn go in one user message
                else:
                    out.append({"role": "user", "content": [block]})
        return out

    async def _stream(self, model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> ModelReply:
        thinking = model.thinks(request.thinking)
        body: dict[str, Any] = {"model": model.model, "max_tokens": model.max_tokens or request.max_tokens, "messages": self.to_messages(request, thinking), "stream": True}
        if thinking:
            budget = THINKING_BUDGET[str(request.thinking)]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = max(body["max_tokens"], budget + 4096)  # the budget is part of max_tokens
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools]
        headers = {"Accept": "text/event-stream", "anthropic-version": self.VERSION}
        if model.api_key:
            headers["x-api-key"] = model.api_key
        reply = ModelReply(model=model.label)
        blocks: dict[int, dict[str, Any]] = {}
        parser = SSEParser()
        stopped = []

        def on_chunk(chunk: bytes) -> None:
            for event in parser.feed(chunk):
                if event.event == "ping":
                    continue
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise ProviderError(f"model provider sent malformed JSON: {event.data[:200]}")
                kind = data.get("type", event.event)
                if kind == "error":
                    error = data.get("error") or {}
                    overloaded = error.get("type") in ("overloaded_error", "rate_limit_error", "api_error")
                    raise ProviderError(f"model provider error: {error.get('message', error)}", retryable=overloaded and not reply.text, kind="rate_limit" if error.get("type") == "rate_limit_error" else "unknown")
                if kind == "message_start":
                    usage = (data.get("message") or {}).get("usage")
                    reply.usage = anthropic_usage(usage if isinstance(usage, dict) else {})
                elif kind == "content_block_start":
                    block = data.get("content_block") or {}
                    blocks[int(data.get("index", 0))] = {"type": block.get("type"), "id": block.get("id"), "name": block.get("name"), "json": "", "thinking": "", "signature": ""}
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        reply.text += delta["text"]
                        on_text(delta["text"])
                    elif delta.get("type") in ("thinking_delta", "signature_delta"):
                        slot = blocks.setdefault(int(data.get("index", 0)), {"type": "thinking", "thinking": "", "signature": ""})
                        slot["thinking"] = slot.get("thinking", "") + str(delta.get("thinking") or "")
                        slot["signature"] = slot.get("signature", "") + str(delta.get("signature") or "")
                    elif delta.get("type") == "input_json_delta":
                        blocks.setdefault(int(data.get("index", 0)), {"type": "tool_use", "json": ""})["json"] += delta.get("partial_json") or ""
                elif kind == "message_delta":
                    reply.stop_reason = (data.get("delta") or {}).get("stop_reason") or reply.stop_reason
                    if isinstance(data.get("usage"), dict):  # cumulative counts
                        reply.usage = anthropic_usage(data["usage"], reply.usage)
                elif kind == "message_stop":
                    stopped.append(True)

        def on_json(data: Any) -> None:
            """A whole Messages API response (the server did not stream)."""
            if not isinstance(data, dict):
                raise ProviderError("model provider sent a JSON answer that is not an object")
            if data.get("type") == "error":
                error = data.get("error") or {}
                raise ProviderError(f"model provider error: {error.get('message', error) if isinstance(error, dict) else error}")
            for index, block in enumerate(data.get("content") or []):
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
                    reply.text += block["text"]
                    on_text(block["text"])
                elif block.get("type") == "tool_use":
                    blocks[index] = {"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "json": json.dumps(block.get("input") or {})}
                elif block.get("type") == "thinking":
                    blocks[index] = {"type": "thinking", "thinking": str(block.get("thinking") or ""), "signature": str(block.get("signature") or "")}
            reply.stop_reason = data.get("stop_reason") or "end_turn"
            if isinstance(data.get("usage"), dict):
                reply.usage = anthropic_usage(data["usage"])
            stopped.append(True)

        await self.post_stream(f"{model.base_url}/messages", headers, body, on_chunk, lambda: bool(reply.text or blocks), on_json)
        if not stopped:
            raise ProviderError("model stream ended early (no message_stop)")
        for index in sorted(blocks):
            block = blocks[index]
            if block.get("type") == "thinking" and block.get("signature"):
                reply.thinking.append({"type": "thinking", "thinking": block.get("thinking", ""), "thinkingSignature": block["signature"]})
            if block.get("type") == "tool_use":
                try:
                    arguments = json.loads(block["json"] or "{}")
                except ValueError:
                    arguments = {"_raw": block["json"]}
                reply.tool_calls.append({"id": block.get("id") or f"toolu_{index}", "name": block.get("name") or "", "arguments": arguments})
        return reply


@implementer(IModelProvider)
class OllamaChat(HttpStreaming):
    """Ollama's native C{/api/chat} (NDJSON), which keeps tool calls intact."""

    async def _stream(self, model: ModelRef, request: ModelRequest, on_text: Callable[[str], None]) -> ModelReply:
        body: dict[str, Any] = {"model": model.model, "messages": openai_messages(request, arguments_as_json=False), "stream": True}
        if request.tools:
            body["tools"] = openai_tools(request.tools)
        if model.thinks(request.thinking):
            body["think"] = True
        reply = ModelReply(model=model.label)
        buffer = [b""]
        finished = []

        def on_line(line: bytes) -> None:
            if not line.strip():
                return
            try:
                data = json.loads(line)
            except ValueError:
                raise ProviderError(f"model provider sent malformed JSON: {line[:200]!r}")
            on_json(data)

        def on_chunk(chunk: bytes) -> None:
            buffer[0] += chunk
            *lines, buffer[0] = buffer[0].split(b"\n")
            for line in lines:
                on_line(line)

        def on_json(data: Any) -> None:
            """One NDJSON line, or the whole answer of a server that did not stream."""
            if not isinstance(data, dict):
                raise ProviderError("model provider sent a JSON line that is not an object")
            if data.get("error"):
                raise ProviderError(f"model provider error: {data['error']}")
            message = data.get("message") or {}
            if message.get("content"):
                reply.text += message["content"]
                on_text(message["content"])
            for index, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                reply.tool_calls.append({"id": f"call_{len(reply.tool_calls)}_{index}", "name": function.get("name", ""), "arguments": function.get("arguments") or {}})
            if data.get("done"):
                finished.append(True)
                reply.stop_reason = data.get("done_reason") or "stop"
                reply.usage = tokens(data.get("prompt_eval_count"), data.get("eval_count"))

        base = model.base_url[: -len("/v1")] if model.base_url.endswith("/v1") else model.base_url
        await self.post_stream(f"{base}/api/chat", {}, body, on_chunk, lambda: bool(reply.text or reply.tool_calls), on_json)
        on_line(buffer[0])  # a last line without its newline
        if not finished:
            raise ProviderError("model stream ended early (no done)")
        return reply


def provider_for(api: str, reactor: Any, http: Any = treq, pool: HTTPConnectionPool | None = None) -> IModelProvider:
    classes = {"openai-completions": OpenAICompletions, "anthropic-messages": AnthropicMessages, "ollama": OllamaChat}
    if api not in classes:
        raise ProviderError(f"unsupported model api {api!r}; use openai-completions, anthropic-messages or ollama")
    return classes[api](reactor, http, pool=pool)
