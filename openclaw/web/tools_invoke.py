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
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.sessions import SessionError
from openclaw.config.settings import HttpSettings
from openclaw.agent.tools import HTTP_DENY, TOOLS, run_tool
from openclaw.protocol.errors import GatewayError
from openclaw.web.bearer import BearerAuth
from openclaw.web.jsonbody import BodyError, check_agent_id, read_json
from openclaw.web.jsonpage import failed

log = Logger(namespace="openclaw.http")

MAX_BODY = 2 * 1024 * 1024


def _reply(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode()


class ToolsInvoke(Resource):
    isLeaf = True

    def __init__(self, bearer: BearerAuth, agent: AgentRuntime, settings: HttpSettings) -> None:
        super().__init__()
        self.bearer = bearer
        self.agent = agent
        self.settings = settings

    def allowed(self, name: str) -> bool:
        allow, deny = self.settings.tools_allow, self.settings.tools_deny
        return name in TOOLS and name not in deny and (name not in HTTP_DENY or name in allow)

    def render(self, request: Request) -> Any:
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return _reply(request, 405, {"ok": False, "error": {"type": "method_not_allowed", "message": "Use POST."}})
        bearer = self.bearer.authorize(request)
        if bearer.retry_after is not None:
            request.setHeader(b"Retry-After", str(bearer.retry_after).encode())
            return _reply(request, 429, {"ok": False, "error": {"type": "rate_limited", "message": "Too many failed authentication attempts; retry later."}})
        if not bearer.ok:
            return _reply(request, 401, {"ok": False, "error": {"type": "unauthorized", "message": "Invalid or missing bearer token."}})
        try:
            name, key, args = self._parse(read_json(request, MAX_BODY, empty={}))
        except BodyError as e:
            log.debug("tools/invoke refused: {why}", why=e.message)
            kind = "payload_too_large" if e.status == 413 else "invalid_request"
            return _reply(request, e.status, {"ok": False, "error": {"type": kind, "message": e.message}})
        if not self.allowed(name):
            return _reply(request, 404, {"ok": False, "error": {"type": "not_found", "message": f"tool not available over HTTP: {name}"}})
        d = Deferred.fromCoroutine(run_tool(TOOLS[name], self.agent.tool_context(key), args))
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

        d.addCallback(done).addErrback(failed, request, closed)
        return NOT_DONE_YET

    def _parse(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        """The tool, the canonical session key and the args; L{BodyError} 400 when unusable."""
        if not isinstance(body, dict):
            raise BodyError(400, "the body must be a JSON object")
        name = body.get("tool") or body.get("name")
        if not isinstance(name, str) or not name:
            raise BodyError(400, "tool is required")
        session_key = body.get("sessionKey")
        if session_key is not None and not isinstance(session_key, str):
            raise BodyError(400, "sessionKey must be a string")
        agent_id = check_agent_id(body["agentId"]) if body.get("agentId") is not None else None
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise BodyError(400, "args must be an object")
        try:
            key = self.agent.key(session_key or "main", agent_id)
        except SessionError as e:
            raise BodyError(400, str(e)) from None
        except GatewayError as e:  # an agent that is not configured
            raise BodyError(400, e.message) from None
        return name, key, args
