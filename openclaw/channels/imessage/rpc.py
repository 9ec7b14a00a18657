# -*- test-case-name: tests.test_imessage_units -*-
"""
Line-delimited JSON-RPC 2.0, as C{imsg rpc} speaks it on stdin/stdout
(sans-IO): one JSON object per line; requests carry an C{id}, notifications
(C{message}, C{error}) do not.

L{LineRpc} numbers requests and turns the bytes that arrive into
L{Response}s, L{Notification}s and L{Garbage} (a line that is not JSON-RPC,
or longer than the limit: reported and skipped, the stream goes on).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

MAX_LINE = 4 * 1024 * 1024


@attrs.frozen
class RpcError:
    code: int
    message: str
    data: Any = None

    def text(self) -> str:
        detail = self.data if isinstance(self.data, str) else (json.dumps(self.data)[:300] if self.data is not None else "")
        return f"{self.message} ({self.code}){': ' + detail[:300] if detail else ''}"


@attrs.frozen
class Response:
    id: str
    result: Any = None
    error: RpcError | None = None


@attrs.frozen
class Notification:
    method: str
    params: Any = None


@attrs.frozen
class Garbage:
    reason: str
    sample: str = ""


Frame = Response | Notification | Garbage


class LineRpc:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes until its newline
        self._next = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[str, bytes]:
        """A new request's id and its line."""
        self._next += 1
        rid = str(self._next)
        line = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}, separators=(",", ":"), ensure_ascii=False)
        return rid, line.encode("utf-8") + b"\n"

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            cut = data.find(b"\n", start)
            if cut < 0:
                break
            piece = data[start:cut]
            start = cut + 1
            if self._skipping:
                self._skipping = False
                continue
            if len(self._buffer) + len(piece) > self.max_line:
                self._buffer = bytearray()
                frames.append(Garbage(f"a line longer than {self.max_line} bytes"))
                continue
            self._buffer += piece
            line, self._buffer = bytes(self._buffer), bytearray()
            frame = self._frame(line)
            if frame is not None:
                frames.append(frame)
        rest = data[start:]
        if self._skipping:
            return frames
        self._buffer += rest
        if len(self._buffer) > self.max_line:
            self._buffer = bytearray()
            self._skipping = True
            frames.append(Garbage(f"a line longer than {self.max_line} bytes"))
        return frames

    def _frame(self, raw: bytes) -> Frame | None:
        line = raw.strip()
        if not line:
            return None
        sample = line[:120].decode("utf-8", "replace")
        try:
            value = json.loads(line)
        except ValueError:
            return Garbage("not JSON", sample)
        if not isinstance(value, dict):
            return Garbage("not a JSON object", sample)
        method = value.get("method")
        if isinstance(method, str) and method:
            return Notification(method, value.get("params"))
        rid = value.get("id")
        if isinstance(rid, bool) or not isinstance(rid, (str, int)):
            error = value.get("error")
            if isinstance(error, dict):  # an error without an id: the helper could not read a request of ours
                return Garbage(f"error without an id: {_error(error).text()}", sample)
            return Garbage("neither a response nor a notification", sample)
        error = value.get("error")
        if error is not None:
            return Response(str(rid), None, _error(error))
        if "result" not in value:
            return Garbage("a response without result or error", sample)
        return Response(str(rid), value.get("result"))


def _error(value: Any) -> RpcError:
    if not isinstance(value, dict):
        return RpcError(-32603, str(value)[:300])
    code = value.get("code")
    message = value.get("message")
    return RpcError(code if isinstance(code, int) and not isinstance(code, bool) else -32603, str(message)[:300] if message else "error", value.get("data"))
