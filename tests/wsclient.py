"""
A raw WebSocket test client (autobahn) and a running-gateway fixture on
loopback port 0, plus device identities that sign connects like upstream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred, DeferredQueue  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402

from openclaw.config import Flags, LoadedConfig, resolve_settings  # noqa: E402
from openclaw.gateway.devices import b64url  # noqa: E402
from openclaw.paths import resolve_layout  # noqa: E402
from openclaw.service import GatewayService  # noqa: E402
from tests.helpers import base_env, scratch_home  # noqa: E402

TOKEN = "test-token-0123456789"


class Client(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.close_info = (code, reason)
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed before open: {code} {reason}"))
        if not self.factory.closed.called:
            self.factory.closed.callback((code, reason))
        self.factory.frames.put(None)

    def send_json(self, value: Any) -> None:
        self.sendMessage(json.dumps(value).encode())


class WS:
    """One test connection: C{next()} frames, C{request()}, C{closed}."""

    def __init__(self, factory: WebSocketClientFactory, protocol: Client) -> None:
        self.factory = factory
        self.protocol = protocol
        self.challenge: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self._ids = 0

    @property
    def closed(self) -> Deferred:
        return self.factory.closed

    async def next(self, timeout: float = 5.0) -> dict[str, Any] | None:
        d = self.factory.frames.get()
        timer = reactor.callLater(timeout, d.cancel)
        try:
            return await d
        finally:
            if timer.active():
                timer.cancel()

    async def _until(self, wanted: Any, timeout: float) -> dict[str, Any]:
        """The next frame C{wanted} accepts; other frames go to C{events}."""
        while True:
            frame = await self.next(timeout)
            if frame is None:
                raise ConnectionError(f"closed: {self.factory.close_info}")
            if wanted(frame):
                return frame
            self.events.append(frame)

    async def response(self, id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next response with C{id}; events seen meanwhile go to C{events}."""
        return await self._until(lambda f: f.get("type") == "res" and f.get("id") == id, timeout)

    async def request(self, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        self._ids += 1
        frame = {"type": "req", "id": f"r{self._ids}", "method": method, **extra}
        if params is not None:
            frame["params"] = params
        self.protocol.send_json(frame)
        return await self.response(frame["id"])

    async def event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        for i, frame in enumerate(self.events):
            if frame.get("event") == name:
                return self.events.pop(i)
        return await self._until(lambda f: f.get("type") == "event" and f.get("event") == name, timeout)

    def close(self) -> None:
        self.protocol.sendClose(1000)


async def open_ws(port: int, headers: dict[str, str] | None = None) -> WS:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/", headers=headers or {})
    factory.protocol = Client
    factory.opened = Deferred()
    factory.closed = Deferred()
    factory.frames = DeferredQueue()
    factory.close_info = None
    protocol = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    await factory.opened
    ws = WS(factory, protocol)
    ws.challenge = await ws.next()
    return ws


class Device:
    """An Ed25519 device identity that signs connects (v2 or v3 payloads)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = b64url(raw)
        self.id = hashlib.sha256(raw).hexdigest()

    def block(self, params: dict[str, Any], nonce: str | None, signed_at: int, version: str = "v3", token: str = "") -> dict[str, Any]:
        client = params["client"]
        fields = [self.id, client["id"], client["mode"], params.get("role", "operator"), ",".join(params.get("scopes", [])), str(signed_at), token]
        if version == "v3":
            fields += [nonce or "", (client.get("platform") or "").lower(), (client.get("deviceFamily") or "").lower()]
        elif version == "v2":
            fields += [nonce or ""]
        payload = "|".join([version, *fields])
        block = {"id": self.id, "publicKey": self.public_key, "signature": b64url(self.key.sign(payload.encode())), "signedAt": signed_at}
        if nonce is not None:
            block["nonce"] = nonce
        return block


def connect_params(protocol: int = 3, client_id: str = "cli", mode: str = "cli", scopes: list[str] | None = None, token: str | None = TOKEN, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": protocol,
        "maxProtocol": protocol,
        "client": {"id": client_id, "version": "1.0.0", "platform": "linux", "mode": mode},
        "role": "operator",
        "scopes": ["operator.admin"] if scopes is None else scopes,
        "caps": [],
    }
    if token is not None:
        params["auth"] = {"token": token}
    params.update(extra)
    return params


def gateway_settings(home, env_extra=None, **config):
    env = base_env(home, **(env_extra or {}))
    gateway = {"mode": "local", "auth": {"token": TOKEN}}
    for key, value in config.pop("gateway", {}).items():
        gateway[key] = value
    loaded = LoadedConfig(path=home / ".openclaw" / "openclaw.json", exists=False, raw=None, hash=None, config={"gateway": gateway, **config}, env=env)
    return resolve_settings(loaded, resolve_layout(env), Flags(port=0))


async def autobahn_timers_done(limit: float = 3.0) -> None:
    """
    Wait for autobahn's handshake timers to run out: they live on the global
    reactor (txaio batched timers), so trial would call the reactor unclean.
    """
    waited = 0.0
    while waited < limit and any("_notify_bucket" in repr(c.func) for c in reactor.getDelayedCalls()):
        await deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


class GatewayMixin:
    """For trial TestCases: C{await self.gateway()} and C{await self.connect()}."""

    async def gateway(self, **config: Any) -> GatewayService:
        home = getattr(self, "home", None) or scratch_home(self)
        self.home = home
        service = GatewayService(gateway_settings(home, **config), reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self._stop, service)
        self.service = service
        return service

    async def _stop(self, service: GatewayService) -> None:
        if service.running:
            await service.stopService()
        for _ in range(100):
            if not service.core.connections.open_sockets():
                break
            await deferLater(reactor, 0.01, lambda: None)
        await autobahn_timers_done()


    async def ws(self, headers: dict[str, str] | None = None) -> WS:
        ws = await open_ws(self.service.port, headers)
        self.addCleanup(self._close_ws, ws)
        return ws

    async def _close_ws(self, ws: WS) -> None:
        if not ws.closed.called:
            ws.close()
            timer = reactor.callLater(2, ws.closed.cancel)
            try:
                await ws.closed
            except Exception:
                pass
            if timer.active():
                timer.cancel()

    async def connect(self, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> tuple[WS, dict[str, Any]]:
        ws = await self.ws(headers)
        res = await ws.request("connect", params or connect_params())
        return ws, res
