# -*- test-case-name: tests.test_tools -*-
"""
C{POST /tools/invoke}: run one agent tool over HTTP, behind the gateway's
bearer secret. Tools that read, write or execute files, and spec §7's
default deny list, are refused unless C{gateway.tools.allow} names them.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from openclaw.agent.tools import HTTP_DENY, TOOLS, run_tool
from openclaw.protocol.errors import GatewayError

MAX_BODY = 2 * 1024 * 1024


def _reply(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode()


class ToolsInvoke(Resource):
    isLeaf = True

    def __init__(self, hub: Any, api: Any) -> None:
        super().__init__()
        self.hub = hub
        self.api = api  # the OpenAI API resource: same bearer check

    def allowed(self, name: str) -> bool:
        tools = (self.hub.settings.config.get("gateway") or {}).get("tools") or {}
        allow, deny = set(tools.get("allow") or []), set(tools.get("deny") or [])
        return name in TOOLS and name not in deny and (name not in HTTP_DENY or name in allow)

    def render(self, request: Request) -> Any:
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return _reply(request, 405, {"ok": False, "error": {"type": "method_not_allowed", "message": "Use POST."}})
        if not self.api.authorized(request):
            return _reply(request, 401, {"ok": False, "error": {"type": "unauthorized", "message": "Invalid or missing bearer token."}})
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _reply(request, 413, {"ok": False, "error": {"type": "payload_too_large", "message": "body over 2 MB"}})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _reply(request, 400, {"ok": False, "error": {"type": "invalid_request", "message": "the body is not JSON"}})
        name = body.get("tool") or body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return _reply(request, 400, {"ok": False, "error": {"type": "invalid_request", "message": "tool is required"}})
        if not self.allowed(name):
            return _reply(request, 404, {"ok": False, "error": {"type": "not_found", "message": f"tool not available over HTTP: {name}"}})
        runtime = self.hub.agent
        try:
            key = runtime.key(body.get("sessionKey") or "main", body.get("agentId"))
        except (ValueError, GatewayError) as e:  # a bad key, or an agent that is not configured
            return _reply(request, 400, {"ok": False, "error": {"type": "invalid_request", "message": getattr(e, "message", None) or str(e)}})
        d = Deferred.fromCoroutine(run_tool(TOOLS[name], runtime.tool_context(key), body.get("args") if "args" in body else {}))
        closed: list[bool] = []
        request.notifyFinish().addBoth(lambda _: closed.append(True))

        def done(result: tuple[str, bool]) -> None:
            if closed:
                return
            text, is_error = result
            if is_error:
                request.write(_reply(request, 400, {"ok": False, "error": {"type": "tool_error", "message": text}}))
            else:
                request.write(_reply(request, 200, {"ok": True, "result": text}))
            request.finish()

        d.addCallback(done)
        return NOT_DONE_YET
