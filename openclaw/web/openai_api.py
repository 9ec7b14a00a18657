# -*- test-case-name: tests.test_openai_api -*-
"""
The OpenAI-compatible HTTP API on the gateway port (off unless
C{gateway.http.endpoints.chatCompletions.enabled}): C{GET /v1/models} and
C{POST /v1/chat/completions}, non-streaming and SSE, behind the gateway's
bearer token or password. The C{model} names an agent, not a model.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, Mapping

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from openclaw.agent.runtime import AgentRuntime, text_message
from openclaw.agent.sessions import SessionError, canonical_key
from openclaw.web.bearer import BearerAuth
from openclaw.web.jsonbody import BodyError, check_agent_id, read_json
from openclaw.web.jsonpage import failed

log = Logger(namespace="openclaw.openai")

MAX_BODY = 20 * 1024 * 1024
RESERVED_PREFIXES = ("subagent:", "cron:", "acp:")


class Invalid(BodyError):
    """A request OpenAI clients get a 400 for, naming the C{param} at fault."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(400, message, param, code)


def _header(request: Request, name: bytes) -> str | None:
    raw = request.getHeader(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{name.decode()} is not UTF-8.") from None


def _error(request: Request, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None, retry: bool | None = None, param: str | None = None) -> bytes:
    body = json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    if retry is not None:
        request.setHeader(b"x-should-retry", b"true" if retry else b"false")
    return body


def _json(request: Request, value: Any) -> bytes:
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(value).encode()


def agent_from_model(model: str) -> str | None:
    """openclaw, openclaw/default → main; openclaw/<id>, openclaw:<id>, agent:<id> → id."""
    if model in ("openclaw", "openclaw/default"):
        return "main"
    for prefix in ("openclaw/", "openclaw:", "agent:"):
        if model.startswith(prefix) and model[len(prefix) :]:
            return model[len(prefix) :]
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return ""


class OpenAIApi(Resource):
    """C{/v1}: bearer auth, then C{models} and C{chat/completions}."""

    def __init__(self, bearer: BearerAuth, agent: AgentRuntime, enabled: bool, started_ms: int) -> None:
        super().__init__()
        self.bearer = bearer
        self.agent = agent
        self.enabled = enabled  # gateway.http.endpoints.chatCompletions.enabled
        self.started_ms = started_ms

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Route(self, path)

    def agents(self) -> list[str]:
        return sorted(self.agent.agents())


class _Route(Resource):
    isLeaf = True

    def __init__(self, api: OpenAIApi, first: bytes) -> None:
        super().__init__()
        self.api = api
        self.first = first

    def render(self, request: Request) -> Any:
        if not self.api.enabled:
            return _error(request, 404, "The OpenAI-compatible API is disabled (gateway.http.endpoints.chatCompletions.enabled).", code="not_found")
        bearer = self.api.bearer.authorize(request)
        if bearer.retry_after is not None:
            request.setHeader(b"Retry-After", str(bearer.retry_after).encode())
            return _error(request, 429, "Too many failed authentication attempts; retry later.", "rate_limit_error", "rate_limited")
        if not bearer.ok:
            request.setHeader(b"WWW-Authenticate", b"Bearer")
            return _error(request, 401, "Invalid or missing bearer token.", "authentication_error", "invalid_api_key")
        path = [self.first, *(request.postpath or [])]
        if path[0] == b"models" and request.method == b"GET":
            return self.models(request, path[1].decode() if len(path) > 1 and path[1] else None)
        if path == [b"chat", b"completions"]:
            if request.method != b"POST":
                request.setHeader(b"Allow", b"POST")
                return _error(request, 405, "Use POST.")
            return self.completions(request)
        return _error(request, 404, "Unknown API path.", code="not_found")

    def _parse(self, request: Request, body: Any) -> tuple[str, str, str, list[dict[str, Any]], dict[str, Any]]:
        """Agent, session key, model, messages and the last user message; L{Invalid} when unusable."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise Invalid("messages must be a non-empty array.", "messages")
        for name, kind, what in (("model", str, "a string"), ("user", str, "a string"), ("stream", bool, "a boolean"), ("stream_options", dict, "an object")):
            if body.get(name) is not None and not isinstance(body[name], kind):
                raise Invalid(f"{name} must be {what}.", name)
        model = body.get("model") or "openclaw"
        header_agent = _header(request, b"x-openclaw-agent-id")
        if header_agent:
            agent_id = check_agent_id(header_agent, "x-openclaw-agent-id")
        else:
            named = agent_from_model(model)
            if named is None:
                raise Invalid(f"Unknown model '{model}': use openclaw, openclaw/default or openclaw/<agentId>.", "model", "model_not_found")
            agent_id = check_agent_id(named, "model")
        if agent_id not in self.api.agent.agents():
            raise Invalid(f"Unknown model '{model}': use openclaw, openclaw/default or openclaw/<agentId> of a configured agent.", "model", "model_not_found")
        raw_key = _header(request, b"x-openclaw-session-key")
        if raw_key:
            if raw_key.startswith(RESERVED_PREFIXES):
                raise Invalid(f"x-openclaw-session-key may not start with {', '.join(RESERVED_PREFIXES)}")
        elif isinstance(body.get("user"), str) and body["user"]:
            raw_key = "openai-user:" + hashlib.sha256(body["user"].encode()).hexdigest()[:24]
        else:
            raw_key = f"openai:{uuid.uuid4()}"
        try:
            key = canonical_key(raw_key, agent_id)
        except SessionError as e:
            raise Invalid(str(e)) from None
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        if last_user is None or not _text(last_user.get("content")).strip():
            raise Invalid("messages must end with a user message that has text.", "messages")
        return agent_id, key, model, messages, last_user

    def models(self, request: Request, one: str | None) -> bytes:
        created = int(self.api.started_ms / 1000)
        names = ["openclaw", "openclaw/default", *[f"openclaw/{a}" for a in self.api.agents()]]
        entries = [{"id": n, "object": "model", "created": created, "owned_by": "openclaw"} for n in names]
        if one is not None:
            for entry in entries:
                if entry["id"] == one:
                    return _json(request, entry)
            return _error(request, 404, f"The model '{one}' does not exist.", code="model_not_found")
        return _json(request, {"object": "list", "data": entries})

    def completions(self, request: Request) -> Any:
        try:
            body = read_json(request, MAX_BODY, empty={})
            agent_id, key, model, messages, last_user = self._parse(request, body)
        except BodyError as e:
            log.debug("chat completion refused: {why}", why=e.message)
            return _error(request, e.status, e.message, code=e.code, param=e.param)
        runtime = self.api.agent
        store = runtime.store(agent_id)
        if not store.messages(key):
            # A stateless client sends the whole conversation: seed it once.
            for m in messages[: messages.index(last_user)]:
                if m.get("role") in ("user", "assistant") and _text(m.get("content")):
                    store.append_message(key, text_message(m["role"], _text(m.get("content"))))
        run_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        try:
            run, _ = runtime.submit(key, _text(last_user.get("content")), run_id, agent_id)
        except Exception as e:
            return _error(request, 503, str(e), "server_error", retry=True)
        created = int(time.time())
        closed: list[bool] = []  # set once the response is over, either way

        def ended(result: Any) -> None:
            closed.append(True)
            if result is not None:  # a failure: the client went away mid-run
                runtime.abort(key, run.run_id)

        request.notifyFinish().addBoth(ended)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(request, run, model, created, include_usage, closed)
        else:
            run.outcome.wait().addCallback(self._finish_json, request, run, model, created, closed).addErrback(failed, request, closed)
        return NOT_DONE_YET

    def _finish_json(self, summary: dict[str, Any], request: Request, run: Any, model: str, created: int, closed: list[bool]) -> None:
        if closed:
            return
        if run.status != "ok":
            request.write(_error(request, 500, run.error or f"agent run {run.status}", "server_error", retry=False))
        else:
            usage = run.usage or {}
            request.write(
                _json(
                    request,
                    {
                        "id": run.run_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": run.text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": usage.get("input", 0), "completion_tokens": usage.get("output", 0), "total_tokens": usage.get("total", 0)},
                    },
                )
            )
        request.finish()

    def _stream(self, request: Request, run: Any, model: str, created: int, include_usage: bool, closed: list[bool]) -> None:
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-store")

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> None:
            if closed:
                return
            body: dict[str, Any] = {"id": run.run_id, "object": "chat.completion.chunk", "created": created, "model": model}
            body["choices"] = [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            if usage is not None:
                body["usage"] = usage
            request.write(b"data: " + json.dumps(body).encode() + b"\n\n")

        chunk({"role": "assistant", "content": ""})
        def delta(stream: str, data: Mapping[str, Any]) -> None:
            if stream == "assistant":
                chunk({"content": data.get("delta", "")})

        run.observe(delta)

        def done(_: Any) -> None:
            if closed:
                return
            if run.status != "ok":
                request.write(b"data: " + json.dumps({"error": {"message": run.error or f"agent run {run.status}", "type": "server_error"}}).encode() + b"\n\n")
            else:
                chunk({}, "stop")
                if include_usage:
                    u = run.usage or {}
                    chunk({}, usage={"prompt_tokens": u.get("input", 0), "completion_tokens": u.get("output", 0), "total_tokens": u.get("total", 0)})
            request.write(b"data: [DONE]\n\n")
            request.finish()

        run.outcome.wait().addCallback(done).addErrback(failed, request, closed)
