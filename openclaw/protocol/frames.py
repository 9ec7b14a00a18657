# -*- test-case-name: tests.test_protocol -*-
"""
Frames: C{req}, C{res}, C{event}. Parsing never raises anything but
L{FrameError}; serialising keeps upstream's key order.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

TRACEPARENT_MAX = 128


class NotJSON(Exception):
    """The text is not one JSON value."""


class FrameError(Exception):
    """JSON, but not a valid request frame; C{id} is the frame's id if it had one."""

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


@attrs.frozen
class Request:
    id: str
    method: str
    params: Any = None


def decode(text: str | bytes) -> Any:
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise NotJSON(str(e)) from None


_REQUEST_KEYS = {"type", "id", "method", "params"}


def parse_request(value: Any, allow_traceparent: bool = True) -> Request:
    """Check a decoded value is a request frame (v3 rejects C{traceparent})."""
    if not isinstance(value, dict):
        raise FrameError("frame must be an object")
    frame_id = value.get("id") if isinstance(value.get("id"), str) and value.get("id") else None
    if value.get("type") != "req":
        raise FrameError("type must be \"req\"", frame_id)
    if frame_id is None:
        raise FrameError("id must be a non-empty string")
    method = value.get("method")
    if not isinstance(method, str) or not method:
        raise FrameError("method must be a non-empty string", frame_id)
    allowed = _REQUEST_KEYS | ({"traceparent"} if allow_traceparent else set())
    extra = sorted(set(value) - allowed)
    if extra:
        raise FrameError(f"unexpected property {extra[0]!r}", frame_id)
    traceparent = value.get("traceparent")
    if traceparent is not None and (not isinstance(traceparent, str) or len(traceparent) > TRACEPARENT_MAX):
        raise FrameError("traceparent must be a string of at most 128 characters", frame_id)
    return Request(frame_id, method, value.get("params"))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def response(id: str, ok: bool, payload: Any = None, error: dict[str, Any] | None = None) -> str:
    frame: dict[str, Any] = {"type": "res", "id": id, "ok": ok}
    if ok:
        frame["payload"] = payload
    else:
        frame["error"] = error
    return dumps(frame)


def event(name: str, payload: Any = None, seq: int | None = None, state_version: dict[str, int] | None = None) -> str:
    frame: dict[str, Any] = {"type": "event", "event": name}
    if payload is not None:
        frame["payload"] = payload
    if seq is not None:
        frame["seq"] = seq
    if state_version is not None:
        frame["stateVersion"] = state_version
    return dumps(frame)
