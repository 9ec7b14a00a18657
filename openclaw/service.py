# -*- test-case-name: tests.test_service -*-
"""
L{GatewayService}: the MultiService one gateway process runs.

It owns the state directory (lock, stray temp cleanup), the JSON-lines log
file, and the listeners. Later subsystems (bridge, canvas, channels) are
added as siblings of the HTTP listener.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger, LogPublisher, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from openclaw.config.settings import GatewaySettings
from openclaw.gateway.hub import Hub
from openclaw.agent.methods import AGENT_METHODS
from openclaw.agent.runtime import AgentRuntime
from openclaw.gateway.methods import METHODS
from openclaw.nodes.methods import NODE_METHODS
from openclaw.bridge.protocol import BridgeFactory
from openclaw.listen import LISTEN_BACKLOG, ConnectionLimit, ListenService, bridge_endpoint
from openclaw.logs import LogFileService, gateway_redactor
from openclaw.portowner import listeners
from openclaw.store import StateLock, clean_stray_temps, ensure_dir
from openclaw.discovery import GatewayRecord, IAdvertiser, MdnsService, ZeroconfAdvertiser
from openclaw.netinfo import lan_address
from openclaw.web.canvas_host import CanvasHost
from openclaw.web.openai_api import OpenAIApi
from openclaw.web.tools_invoke import ToolsInvoke
from openclaw.web.root import GatewayRoot
from openclaw.ws import websocket_resource

HTTP_IDLE_TIMEOUT = 60
MAX_REQUEST_BODY = 22 * 1024 * 1024  # the chat-completions limit (20 MB) plus headroom
CLOSE_GRACE = 1.0  # seconds for clients to finish the close handshake on stop

log = Logger(namespace="openclaw.gateway")


class BoundedRequest(Request):
    """A request whose body may not grow past C{MAX_REQUEST_BODY} (413, then hang up)."""

    def gotLength(self, length: int | None) -> None:
        self._received = 0
        if length is not None and length > MAX_REQUEST_BODY:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received = getattr(self, "_received", 0) + len(data)
        if self._received > MAX_REQUEST_BODY:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        if self.channel is not None and self.channel.transport is not None:
            body = b'{"error":{"message":"request body too large","type":"invalid_request_error"}}'
            self.channel.transport.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            self.channel.transport.loseConnection()


class GatewaySite(Site):
    """A Site that never shows tracebacks, bounds request bodies, and keeps request lines out of the log."""

    displayTracebacks = False
    noisy = False
    requestFactory = BoundedRequest

    def log(self, request: Any) -> None:
        # Access logs could carry secrets in paths; requests are logged by handlers.
        return None


class GatewayService(MultiService):
    """One gateway: state dir, log file, and the gateway-port listeners."""

    def __init__(
        self,
        settings: GatewaySettings,
        reactor: Any,
        publisher: LogPublisher = globalLogPublisher,
        advertiser: IAdvertiser | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.redactor = gateway_redactor(settings)
        self.lock = StateLock(settings.state_dir)
        self.started_at: float | None = None

        logging = settings.logging
        if logging.file is not None and logging.level != "silent":
            LogFileService(
                logging.file, logging.level, self.redactor, publisher, logging.max_bytes, logging.max_files
            ).setServiceParent(self)

        gateway = settings.config.get("gateway", {}) or {}
        self.trusted_proxies: list[str] = list(gateway.get("trustedProxies") or [])
        self.allowed_origins: list[str] = list((gateway.get("controlUi") or {}).get("allowedOrigins") or [])
        self.hub = Hub(settings, reactor, {**METHODS, **NODE_METHODS, **AGENT_METHODS})
        self.hub.agent = AgentRuntime(self.hub, reactor, redactor=self.redactor)
        self.hub.on_secrets = lambda secrets: self.redactor.add(*secrets)
        self.hub.canvas_url = self.canvas_url
        self.root = GatewayRoot(websocket_resource(self))
        api = OpenAIApi(self.hub)
        self.root.putChild(b"v1", api)
        tools = Resource()
        tools.putChild(b"invoke", ToolsInvoke(self.hub, api))
        self.root.putChild(b"tools", tools)
        self.site = GatewaySite(self.root, timeout=HTTP_IDLE_TIMEOUT, reactor=reactor)
        self.http: list[ListenService] = []
        for host in settings.hosts:
            endpoint = TCP4ServerEndpoint(reactor, settings.port, backlog=LISTEN_BACKLOG, interface=host)
            listener = ListenService(endpoint, ConnectionLimit(self.site, settings.max_connections), "the gateway", settings.port)
            listener.setName(f"http:{host}")
            listener.setServiceParent(self)
            self.http.append(listener)

        self.canvas: CanvasHost | None = None
        self.canvas_listeners: list[ListenService] = []
        if settings.canvas_enabled:
            self.canvas = CanvasHost(settings.canvas_root, settings.canvas_live_reload, reactor)
            self.canvas.setServiceParent(self)
            self.root.putChild(b"__openclaw__", self.canvas.tree)
            canvas_site = GatewaySite(self.canvas.site_root, timeout=HTTP_IDLE_TIMEOUT, reactor=reactor)
            for host in settings.hosts:
                endpoint = TCP4ServerEndpoint(reactor, settings.canvas_port, backlog=LISTEN_BACKLOG, interface=host)
                listener = ListenService(endpoint, ConnectionLimit(canvas_site, settings.max_connections), "the canvas host", settings.canvas_port)
                listener.setName(f"canvas:{host}")
                listener.setServiceParent(self)
                self.canvas_listeners.append(listener)

        self.bridge: list[ListenService] = []
        if settings.bridge_enabled:
            bridge_factory = BridgeFactory(self.hub, self.canvas_url)
            for host in settings.hosts:
                endpoint = bridge_endpoint(reactor, settings.bridge_port, host, settings.bridge_tls, settings.state_dir)
                listener = ListenService(endpoint, ConnectionLimit(bridge_factory, settings.max_connections), "the node bridge", settings.bridge_port)
                listener.setName(f"bridge:{host}")
                listener.setServiceParent(self)
                self.bridge.append(listener)

        if settings.mdns_enabled:
            # Last child: it starts after every listener is bound, and stops first.
            MdnsService(advertiser or ZeroconfAdvertiser(), self.mdns_record).setServiceParent(self)

    def mdns_record(self) -> GatewayRecord:
        host = self.settings.hosts[0]
        lan = lan_address() if host == "0.0.0.0" else host
        addresses = tuple(a for a in (lan,) if a) or ("127.0.0.1",)
        bridge = str(self.bridge[0].port) if self.bridge and self.bridge[0].listening else ""
        canvas = str(self.canvas_listeners[0].port) if self.canvas_listeners and self.canvas_listeners[0].listening else ""
        name = f"{self.hub.hostname.split('.')[0]}-{self.port}"
        txt = {
            "role": "gateway",
            "displayName": self.hub.hostname,
            "lanHost": addresses[0],
            "gatewayPort": str(self.port),
            "bridgePort": bridge,
            "canvasPort": canvas,
            "transport": "ws",
        }
        return GatewayRecord(name=name, addresses=addresses, port=self.port, txt=txt)

    def canvas_url(self) -> str | None:
        """Where nodes load canvas pages: the gateway's origin (paths under /__openclaw__/)."""
        if self.canvas is None or not self.http or self.http[0].listening is None:
            return None
        host = self.settings.hosts[0]
        if host == "0.0.0.0":
            host = lan_address() or "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound gateway port (differs from settings when asked for port 0)."""
        return self.http[0].port

    def _claim_state(self) -> None:
        if self.lock.held:
            return
        ensure_dir(self.settings.state_dir)
        self.lock.acquire()
        for path in clean_stray_temps(self.settings.state_dir):
            log.info("removed stray temp file {path}", path=str(path))
        if self.settings.force and self.settings.port:
            self._stop_port_owners()

    def _stop_port_owners(self) -> None:
        owners = [pid for pid, _ in listeners(self.settings.port) if pid != os.getpid()]
        for pid in owners:
            log.warn("--force: stopping pid {pid} on port {port}", pid=pid, port=self.settings.port)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5
        while owners and time.monotonic() < deadline:
            if not listeners(self.settings.port):
                return
            time.sleep(0.05)

    def _holding_state(self, start: Any) -> None:
        """Run a start step with the state dir claimed; a failure gives it back."""
        self._claim_state()
        try:
            start()
        except BaseException:
            self.lock.release()
            raise

    def privilegedStartService(self) -> None:
        self._holding_state(super().privilegedStartService)

    def startService(self) -> None:
        self._holding_state(super().startService)
        self.started_at = time.time()
        self.hub.start()
        for listener in self.http:
            host = listener.listening.getHost()  # type: ignore[union-attr]
            log.info("listening on ws://{host}:{port} (http + websocket)", host=host.host, port=host.port)
        for listener in self.canvas_listeners:
            host = listener.listening.getHost()  # type: ignore[union-attr]
            log.info("canvas host on http://{host}:{port}/ (root {root})", host=host.host, port=host.port, root=str(self.settings.canvas_root))
        for listener in self.bridge:
            host = listener.listening.getHost()  # type: ignore[union-attr]
            log.info("node bridge on {host}:{port} (JSON lines)", host=host.host, port=host.port)
        for warning in self.settings.warnings:
            log.warn("config: {issue}", issue=str(warning))

    def stopService(self) -> Deferred[None]:
        log.info("gateway stopping")
        d = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        try:
            # Listeners do not close upgraded sockets: say goodbye (1012) and wait a little.
            self.hub.agent.stop()
            self.hub.stop()
            await self._drain(CLOSE_GRACE)
            await super().stopService()
            # Stopping a listener leaves its connections (HTTP keep-alive, bridge) open.
            for listener in [*self.http, *self.bridge, *self.canvas_listeners]:
                for protocol in list(getattr(listener.factory, "protocols", ())):
                    protocol.transport.loseConnection()
        finally:
            self.lock.release()

    async def _drain(self, seconds: float) -> None:
        waited = 0.0
        while self.hub.open_sockets() and waited < seconds:
            await deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02
