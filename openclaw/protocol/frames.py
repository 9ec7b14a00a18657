# -*- test-case-name: tests.test_protocol -*-
"""
Frames: C{req}, C{res}, C{event}. Parsing never raises anything but
L{NotJSON} or L{FrameError}; serialising keeps upstream's key order.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from openclaw.protocol import jsonvalue

TRACEPARENT_MAX = 128
MAX_DEPTH = 64  # nesting of a whole frame, params included


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
    """
    One JSON value, depth-bounded. C{NaN}/C{Infinity} make a L{FrameError}
    carrying the frame's id when it has one, so the request gets its answer.
    """
    try:
        return jsonvalue.loads(text, MAX_DEPTH)
    except jsonvalue.NonFinite as e:
        raise FrameError(str(e), _lenient_id(text)) from None
    except jsonvalue.JSONValueError as e:
        raise NotJSON(str(e)) from None


def _lenient_id(text: str | bytes) -> str | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    frame_id = value.get("id") if isinstance(value, dict) else None
    return frame_id if isinstance(frame_id, str) and frame_id else None


def parse(text: str | bytes, allow_traceparent: bool = True) -> Request:
    """L{decode} then L{parse_request}."""
    return parse_request(decode(text), allow_traceparent)


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


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept (one encoder object for every frame)."""
    return _ENCODE(value)


def response(id: str, ok: bool, payload: Any = None, error: dict[str, Any] | None = None) -> str:
    """A C{res}; a failure may carry a payload too (upstream's failed C{agent} run does)."""
    frame: dict[str, Any] = {"type": "res", "id": id, "ok": ok}
    if ok or payload is not None:
        frame["payload"] = payload
    if not ok:
        frame["error"] = error
    return dumps(frame)


def event(name: str, payload: Any = None, seq: int | None = None, state_version: dict[str, int] | None = None) -> str:
    return EventFrame(name, payload, state_version).text(seq)


class EventFrame:
    """
    One C{event} for many connections: the name, payload and C{stateVersion}
    are encoded once, the first time a connection asks; each connection only
    adds its own C{seq}. The text is what C{dumps} of the whole frame gives
    (upstream's key order: type, event, payload, seq, stateVersion).
    """

    __slots__ = ("name", "payload", "state_version", "_head", "_tail")

    def __init__(self, name: str, payload: Any = None, state_version: dict[str, int] | None = None) -> None:
        self.name = name
        self.payload = payload
        self.state_version = state_version
        self._head: bytes | None = None
        self._tail = b"}"

    def _encode(self) -> bytes:
        head = '{"type":"event","event":' + dumps(self.name)
        if self.payload is not None:
            head += ',"payload":' + dumps(self.payload)
        if self.state_version is not None:
            self._tail = (',"stateVersion":' + dumps(self.state_version) + "}").encode("utf-8")
        self._head = head.encode("utf-8")
        return self._head

    def data(self, seq: int | None = None) -> bytes:
        """The frame as UTF-8, with C{seq} when given."""
        head = self._head if self._head is not None else self._encode()
        if seq is None:
            return head + self._tail
        return b"".join((head, b',"seq":%d' % seq, self._tail))

    def text(self, seq: int | None = None) -> str:
        return self.data(seq).decode("utf-8")
