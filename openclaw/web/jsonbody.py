# -*- test-case-name: tests.test_http -*-
"""
HTTP input: request bodies as JSON, bounded by size (413) and by nesting
depth, so no parser or later walk over the value can raise
C{RecursionError}; C{NaN} and C{Infinity} are refused (they are not JSON).
And the ids a request names, checked before they reach a path.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from openclaw.agent.sessions import AGENT_ID
from openclaw.protocol import jsonvalue

MAX_DEPTH = jsonvalue.DEFAULT_MAX_DEPTH


class BodyError(Exception):
    """
    Input that cannot be used: C{status} (400 or 413), a message for the
    client, and (for OpenAI-shaped answers) the C{param} at fault and a C{code}.
    """

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or L{BodyError} 413 when it is over C{limit} bytes."""
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read(limit + 1)
    if len(data) > limit:
        raise BodyError(413, f"The body is over {limit // (1024 * 1024)} MB.", code="payload_too_large")
    return data


def decode(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON; L{BodyError} 400 for anything that is not JSON or nests too deep."""
    try:
        return jsonvalue.loads(data, max_depth)
    except jsonvalue.TooDeep:
        raise BodyError(400, f"The body nests deeper than {max_depth} levels.") from None
    except jsonvalue.JSONValueError:
        raise BodyError(400, "The body is not valid JSON.") from None


def read_json(request: Request, limit: int, empty: Any = None) -> Any:
    """The body parsed (C{empty} for an empty body), bounded in size and depth."""
    data = read_body(request, limit)
    if not data.strip():
        if empty is None:
            raise BodyError(400, "The body is empty.")
        return empty
    return decode(data)


def check_agent_id(value: Any, what: str = "agentId") -> str:
    """C{value} if it is a usable agent id (it names a folder), else L{BodyError} 400."""
    if not isinstance(value, str) or not AGENT_ID.fullmatch(value):
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise BodyError(400, f"{what}: invalid agent id {shown!r} (lowercase letters, digits, _ and -).", what)
    return value
