# -*- test-case-name: tests.test_client -*-
"""
The client side of the protocol, without sockets: answer the challenge with
a signed C{connect}, then match responses to requests (including the
two-response C{accepted} then final pattern).
"""

from __future__ import annotations

import platform
import uuid
from typing import Any, Callable

from twisted.internet.defer import Deferred

from openclaw import __version__
from openclaw.client.identity import DeviceIdentity
from openclaw.protocol import frames

CLI_SCOPES = ["operator.admin", "operator.approvals", "operator.pairing"]


class GatewayClosed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"gateway closed ({code}): {reason or 'no close reason'}")
        self.code = code
        self.reason = reason


class RequestFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


def cli_params(token: str | None, password: str | None, device_token: str | None, scopes: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": __version__, "platform": platform.system().lower() or "linux", "mode": "cli", "instanceId": str(uuid.uuid4())},
        "role": "operator",
        "scopes": scopes,
        "caps": [],
    }
    auth = {}
    if token:
        auth["token"] = token
    elif device_token:
        auth["token"] = device_token
    if password:
        auth["password"] = password
    if auth:
        params["auth"] = auth
    return params


class ClientCore:
    """Drives one connection: C{ready} fires with hello-ok, C{call} sends requests."""

    def __init__(self, send: Callable[[str], None], params: dict[str, Any], identity: DeviceIdentity | None) -> None:
        self._send = send
        self._params = params
        self._identity = identity
        self.ready: Deferred[dict[str, Any]] = Deferred()
        self.hello: dict[str, Any] | None = None
        self._pending: dict[str, tuple[Deferred[Any], bool]] = {}
        self._ids = 0
        self.closed_with: GatewayClosed | None = None
        self.events: list[dict[str, Any]] = []
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.on_closed: Callable[[GatewayClosed], None] | None = None

    def received(self, text: bytes | str) -> None:
        try:
            frame = frames.decode(text)
        except frames.NotJSON:
            return
        if not isinstance(frame, dict):
            return
        if frame.get("type") == "event":
            if frame.get("event") == "connect.challenge" and self.hello is None:
                self._connect(frame.get("payload") or {})
            elif self.on_event is not None:
                self.on_event(frame)
            return
        if frame.get("type") != "res":
            return
        frame_id = frame.get("id")
        entry = self._pending.get(frame_id) if isinstance(frame_id, str) else None
        if entry is None:
            return
        d, expect_final = entry
        payload = frame.get("payload")
        if frame.get("ok") and expect_final and isinstance(payload, dict) and payload.get("status") == "accepted":
            return  # the final response comes later with the same id
        del self._pending[frame["id"]]
        if frame.get("ok"):
            d.callback(payload)
        else:
            d.errback(RequestFailed(frame.get("error") or {}))

    def _connect(self, challenge: dict[str, Any]) -> None:
        params = dict(self._params)
        nonce, ts = challenge.get("nonce"), challenge.get("ts")
        if self._identity is not None and isinstance(nonce, str) and isinstance(ts, int):
            token = (params.get("auth") or {}).get("token", "")
            params["device"] = self._identity.sign_connect(params, nonce, ts, token)
        d = self._request("connect", params, False)
        d.addCallbacks(self._hello, self._refused)

    def _hello(self, hello: dict[str, Any]) -> None:
        self.hello = hello
        self.ready.callback(hello)

    def _refused(self, failure: Any) -> None:
        if not self.ready.called:
            self.ready.errback(failure)

    def _request(self, method: str, params: Any, expect_final: bool) -> Deferred[Any]:
        self._ids += 1
        id = f"{self._ids}:{uuid.uuid4()}"
        d: Deferred[Any] = Deferred()
        self._pending[id] = (d, expect_final)
        frame: dict[str, Any] = {"type": "req", "id": id, "method": method}
        if params is not None:
            frame["params"] = params
        self._send(frames.dumps(frame))
        return d

    def call(self, method: str, params: Any = None, expect_final: bool = False) -> Deferred[Any]:
        if self.closed_with is not None:
            raise self.closed_with
        return self._request(method, params, expect_final)

    def closed(self, code: int | None, reason: str | None) -> None:
        self.closed_with = GatewayClosed(code, reason)
        pending, self._pending = self._pending, {}
        for d, _ in pending.values():
            d.errback(self.closed_with)
        if not self.ready.called:
            self.ready.errback(self.closed_with)
        if self.on_closed is not None:
            self.on_closed(self.closed_with)
