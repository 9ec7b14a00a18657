# -*- test-case-name: tests.test_nodehost -*-
"""
The node host's connection: over the gateway WebSocket (role node, signed
device identity) or the JSONL bridge (pair-request, then a stored token).
Reconnects with jittered exponential backoff until stopped.
"""

from __future__ import annotations

import json
import platform
import socket
import uuid
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from openclaw import __version__
from openclaw.backoff import Backoff
from openclaw.client.core import GatewayClosed, RequestFailed
from openclaw.client.identity import DeviceIdentity, DeviceTokens
from openclaw.nodehost.commands import CommandError, NodeCommands
from openclaw.store import read_json, write_json

log = Logger(namespace="openclaw.nodehost")

MAX_LINE = 8 * 1024 * 1024


def node_connect_params(commands: list[str], display_name: str | None, token: str | None) -> dict[str, Any]:
    client = {"id": "node-host", "version": __version__, "platform": platform.system().lower() or "linux", "mode": "node", "instanceId": str(uuid.uuid4())}
    if display_name:
        client["displayName"] = display_name
    params: dict[str, Any] = {"minProtocol": 3, "maxProtocol": 4, "client": client, "role": "node", "scopes": [], "caps": ["system"], "commands": commands}
    if token:
        params["auth"] = {"token": token}
    return params


class NodeHost:
    """Runs until C{stop()}; C{on_status} hears "connected", "pairing required: ...", etc."""

    def __init__(
        self,
        reactor: Any,
        state_dir: Path,
        host: str,
        port: int,
        bridge: bool = False,
        display_name: str | None = None,
        token: str | None = None,
        on_status: Callable[[str], None] = lambda text: None,
        backoff: Backoff | None = None,
    ) -> None:
        self.reactor = reactor
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.bridge = bridge
        self.display_name = display_name or socket.gethostname()
        self.token = token
        self.on_status = on_status
        self.backoff = backoff or Backoff()
        self.settings = read_json(self.state_dir / "node.json", {}) or {}
        self.commands = NodeCommands(reactor, self.state_dir, self.settings, self._emit)
        self._stopped = False
        self._wake: Deferred[None] | None = None
        self._send_event: Callable[[str, dict[str, Any]], object] | None = None
        self.connected: Deferred[None] = Deferred()

    def stop(self) -> None:
        self._stopped = True
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self._send_event is not None:
            self._send_event(event, payload)

    async def run(self) -> None:
        while not self._stopped:
            try:
                await (self._bridge_session() if self.bridge else self._ws_session())
            except (GatewayClosed, ConnectionError, OSError) as e:
                self.on_status(f"disconnected: {e}")
            except RequestFailed as e:
                details = e.error.get("details") or {}
                if e.error.get("code") == "NOT_PAIRED":
                    self.on_status(f"pairing required: approve request {details.get('requestId')} on the gateway (openclaw devices approve {details.get('requestId')})")
                else:
                    self.on_status(f"refused: {e.error.get('code')}: {e.error.get('message')}")
            except Exception as e:  # one bad session must not end the host
                log.failure("node session failed")
                self.on_status(f"error: {e}")
            if self._stopped:
                break
            delay = self.backoff.next()
            self.on_status(f"reconnecting in {delay:.1f} s")
            pause = self._session_end()
            call = self.reactor.callLater(delay, self._end_session, None)
            await pause
            if call.active():
                call.cancel()

    # -- over the WebSocket

    def _session_end(self) -> Deferred[Any]:
        """Fires when the current session closes, or at once on stop()."""
        self._wake = Deferred()
        return self._wake

    def _end_session(self, reason: Any) -> None:
        self._send_event = None
        if self._wake is not None and not self._wake.called:
            self._wake.callback(reason)

    async def _ws_session(self) -> None:
        from openclaw.client.ws import open_gateway

        identity = DeviceIdentity.load_or_create(self.state_dir)
        tokens = DeviceTokens(self.state_dir)
        token = self.token or tokens.get(identity.id, "node")
        params = node_connect_params(self.commands.declared(), self.display_name, token)
        connection = await open_gateway(self.reactor, f"ws://{self.host}:{self.port}", params, identity)
        auth = connection.hello.get("auth") or {}
        if auth.get("deviceToken"):
            tokens.put(identity.id, "node", auth["deviceToken"], [])
        self.backoff.reset()
        self.node_id = identity.id
        self.on_status(f"connected to ws://{self.host}:{self.port} as node {identity.id[:12]}… (protocol {connection.hello.get('protocol')})")
        ended = self._session_end()
        core = connection.core
        core.on_event = lambda frame: self._ws_event(connection, frame)
        core.on_closed = self._end_session
        self._send_event = lambda event, payload: connection.call("node.event", {"event": event, "payload": payload}).addErrback(lambda f: None)
        if not self.connected.called:
            self.connected.callback(None)
        reason = await ended
        if self._stopped:
            connection.close()
            return
        raise reason if isinstance(reason, Exception) else GatewayClosed(None, None)

    def _ws_event(self, connection: Any, frame: dict[str, Any]) -> None:
        if frame.get("event") == "node.invoke.request":
            Deferred.fromCoroutine(self._ws_invoke(connection, frame.get("payload") or {}))

    async def _ws_invoke(self, connection: Any, request: dict[str, Any]) -> None:
        result = await self._run_command(request.get("command"), request.get("paramsJSON"))
        result.update(id=request.get("id"), nodeId=request.get("nodeId"))
        try:
            await connection.call("node.invoke.result", result)
        except (RequestFailed, GatewayClosed) as e:
            log.warn("could not deliver invoke result: {error}", error=str(e))

    async def _run_command(self, command: Any, params_json: Any) -> dict[str, Any]:
        try:
            params = json.loads(params_json) if isinstance(params_json, str) else {}
        except ValueError:
            return {"ok": False, "error": {"code": "INVALID_REQUEST", "message": "paramsJSON is not JSON"}}
        try:
            payload = await self.commands.handle(str(command), params)
        except CommandError as e:
            return {"ok": False, "error": {"code": e.code, "message": e.message}}
        return {"ok": True, "payloadJSON": json.dumps(payload)}

    # -- over the bridge

    async def _bridge_session(self) -> None:
        stored = read_json(self.state_dir / "node-bridge.json", {}) or {}
        node_id = stored.get("nodeId") or str(uuid.uuid4())
        if not stored.get("nodeId"):
            write_json(self.state_dir / "node-bridge.json", {"nodeId": node_id})
        factory = _BridgeClientFactory(self, node_id, stored.get("token"))
        ended = self._session_end()
        await HostnameEndpoint(self.reactor, self.host, self.port, timeout=10).connect(factory)
        await ended
        if self._stopped and factory.client is not None and factory.client.transport is not None:
            factory.client.transport.loseConnection()
            return
        raise ConnectionError("bridge connection closed")


class _BridgeClient(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    factory: _BridgeClientFactory

    def connectionMade(self) -> None:
        self.factory.client = self
        host: NodeHost = self.factory.host
        hello = {
            "nodeId": self.factory.node_id,
            "displayName": host.display_name,
            "platform": platform.system().lower(),
            "version": __version__,
            "caps": ["system"],
            "commands": host.commands.declared(),
        }
        if self.factory.token:
            self.send({"type": "hello", "token": self.factory.token, **hello})
        else:
            host.on_status(f"pairing: waiting for approval of node {self.factory.node_id} (openclaw nodes approve)")
            self.send({"type": "pair-request", **hello})
        host._send_event = lambda event, payload: self.send({"type": "event", "event": event, "payloadJSON": json.dumps(payload)})

    def send(self, frame: dict[str, Any]) -> None:
        self.sendLine(json.dumps(frame, separators=(",", ":")).encode())

    def lineReceived(self, line: bytes) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            return
        host: NodeHost = self.factory.host
        kind = frame.get("type")
        if kind == "pair-ok":
            self.factory.token = frame.get("token")
            write_json(host.state_dir / "node-bridge.json", {"nodeId": self.factory.node_id, "token": self.factory.token})
        elif kind == "hello-ok":
            host.backoff.reset()
            host.node_id = self.factory.node_id
            host.on_status(f"connected to bridge {host.host}:{host.port} as node {self.factory.node_id}")
            if not host.connected.called:
                host.connected.callback(None)
        elif kind == "invoke":
            Deferred.fromCoroutine(self._invoke(frame))
        elif kind == "ping":
            self.send({"type": "pong", "id": frame.get("id")})
        elif kind == "error":
            host.on_status(f"bridge error: {frame.get('code')}: {frame.get('message')}")
            if frame.get("message") == "invalid token":
                write_json(host.state_dir / "node-bridge.json", {"nodeId": self.factory.node_id})

    async def _invoke(self, frame: dict[str, Any]) -> None:
        result = await self.factory.host._run_command(frame.get("command"), frame.get("paramsJSON"))
        self.send({"type": "invoke-res", "id": frame.get("id"), **result})

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.host._end_session(None)


class _BridgeClientFactory(Factory):
    """Carries what a bridge connection needs; C{client} is the connected protocol."""

    protocol = _BridgeClient  # type: ignore[assignment]  # Twisted types it as a factory of its own protocol kind

    def __init__(self, host: NodeHost, node_id: str, token: str | None) -> None:
        self.host = host
        self.node_id = node_id
        self.token = token
        self.client: _BridgeClient | None = None
