# -*- test-case-name: tests.test_service,tests.test_http -*-
"""
L{GatewayService}: the MultiService one gateway process runs.

It owns the state directory (lock, stray temp cleanup), the JSON-lines log
file, and the listeners. Subsystems (bridge, canvas, channels) are
siblings of the HTTP listener.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from typing import Any, Callable

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger, LogPublisher, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site, UnsupportedMethod

from openclaw.config.settings import GatewaySettings
from openclaw.gateway.core import GatewayCore
from openclaw.channels.wiring import ChannelDelivery, install as install_channels
from openclaw.cron.wiring import SessionDelivery, install as install_scheduled_work
from openclaw.bridge.protocol import BridgeFactory, BridgeProtocol
from openclaw.bridge.session import BridgeEnv
from openclaw.net.listen import ABORT_GRACE, LISTEN_BACKLOG, OPEN, PENDING, TRUSTED, Admission, AdmissionProtocol, ListenService, StartupError, bridge_endpoint
from openclaw.logs import LogFileService, gateway_redactor
from openclaw.net.portowner import listeners
from openclaw.store import StateLock, StateLocked, clean_stray_temps, ensure_dir, loose_mode
from openclaw.net.discovery import GatewayRecord, IAdvertiser, MdnsService, ZeroconfAdvertiser
from openclaw.net.netinfo import lan_address
from openclaw.ops.metrics import install_metrics
from openclaw.protocol.versions import HANDSHAKE_TIMEOUT
from openclaw.web.canvas_host import CanvasHost
from openclaw.web.controlui import ControlUi
from openclaw.web.uiconfig import UiConfig
from openclaw.web.jsonpage import JsonError, write_json
from openclaw.web.openai_api import MAX_BODY as OPENAI_MAX_BODY, OpenAIApi
from openclaw.web.reload import ReloadProtocol
from openclaw.web.bearer import BearerAuth
from openclaw.web.tools_invoke import ToolsInvoke
from openclaw.web.root import GatewayRoot
from openclaw.web.websocket import GatewayWebSocket, IdentityCheck, websocket_resource

HTTP_IDLE_TIMEOUT = 60
MAX_REQUEST_BODY = OPENAI_MAX_BODY  # the largest body any route takes (chat completions: 20 MB)
CLOSE_GRACE = 1.0  # seconds for clients to finish the close handshake on stop
UPGRADE_DEADLINE = HANDSHAKE_TIMEOUT + ABORT_GRACE  # backs up the WebSocket's own connect timer
FORCE_WAIT = 10.0  # --force: seconds for the port's owner to exit and free the state lock
FORCE_KILL_GRACE = 3.0  # ... of which the last are for an owner that ignored SIGTERM

log = Logger(namespace="openclaw.gateway")

SERVER_ERROR = {"ok": False, "error": {"type": "server_error", "message": "Internal server error.", "param": None, "code": None}}
TOO_LARGE = {"ok": False, "error": {"type": "invalid_request_error", "message": "The body is too large.", "param": None, "code": "payload_too_large"}}


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise StartupError(f"--force: not allowed to stop pid {pid} (another user's process); stop it yourself") from None


def _alive(pid: int) -> bool:
    """Whether C{pid} still runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


class GatewayRequest(Request):
    """
    A request on a gateway site: its body may not grow past C{MAX_REQUEST_BODY}
    (413), every error it answers is JSON (an unhandled one is a logged 500),
    and when it ends its connection's admission deadline starts again.
    """

    authenticated = False  # set by bearer auth: the connection serves an authenticated client now
    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_REQUEST_BODY:
            self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after our answer
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped, so the client gets to read the 413
        self._received += len(data)
        if self._received > MAX_REQUEST_BODY:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        """Answer 413 at once; the rest of the body is dropped, then the connection closes."""
        self._refused = True
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        body = json.dumps(TOO_LARGE).encode()
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if self.content is not None:
            self.content.close()
            self.content = None

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            # Answered already; the whole body has been read, so closing now cannot reset it.
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    def render(self, resrc: IResource) -> None:
        code, brief = getattr(resrc, "code", None), getattr(resrc, "brief", None)
        if isinstance(code, int) and isinstance(brief, str) and not isinstance(resrc, JsonError):
            # twisted's error pages (NoResource, ForbiddenResource, ...) are HTML
            resrc = JsonError(code, "not_found" if code == 404 else "error", brief)
        super().render(_JsonErrors(resrc))

    def processingFailed(self, reason: Failure) -> Failure:
        # The path without its query (a query may carry a token).
        log.failure("{method} {path} failed", reason, method=self.method.decode("latin-1"), path=self.path.decode("latin-1", "replace")[:200])
        if self.finished or self._disconnected:
            return reason
        if self.startedWriting:
            # The status line is out: all that is left is to cut the response short.
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.loseConnection()
            return reason
        self.write(write_json(self, 500, SERVER_ERROR))
        self.finish()
        return reason

    def finish(self) -> None:
        transport = self.channel.transport if self.channel is not None else None
        super().finish()
        if isinstance(transport, AdmissionProtocol):
            transport.idle()


class _JsonErrors(Resource):
    """Renders C{resource}, answering what twisted would answer in HTML as JSON."""

    def __init__(self, resource: IResource) -> None:
        super().__init__()
        self.resource = resource

    def render(self, request: Request) -> Any:
        try:
            body = self.resource.render(request)
        except UnsupportedMethod as e:
            if request.method == b"HEAD" and b"GET" in e.allowedMethods:
                raise  # twisted answers HEAD with GET's headers
            request.setHeader(b"Allow", b", ".join(e.allowedMethods))
            return JsonError(405, "method_not_allowed", "Method Not Allowed").render(request)
        if body is not NOT_DONE_YET and not isinstance(body, bytes):
            raise TypeError(f"{type(self.resource).__name__} rendered {type(body).__name__}, not bytes")
        return body


class GatewaySite(Site):
    """A Site that never shows tracebacks, bounds request bodies, and keeps request lines out of the log."""

    displayTracebacks = False
    noisy = False
    requestFactory = GatewayRequest

    def log(self, request: Any) -> None:
        # Access logs could carry secrets in paths; requests are logged by handlers.
        return None


def _matcher(networks: list[str]) -> Callable[[str], bool]:
    """Whether an address is in one of C{networks} (CIDRs or addresses)."""
    parsed = []
    for net in networks:
        try:
            parsed.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            continue

    def match(ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in parsed)

    return match


def classify(protocol: Any) -> str:
    """Where a connection on one of our ports stands (see L{Admission})."""
    if isinstance(protocol, HTTPChannel):
        return TRUSTED if any(getattr(r, "authenticated", False) for r in protocol.requests) else PENDING
    if isinstance(protocol, GatewayWebSocket):
        connection = protocol.connection
        return TRUSTED if connection is not None and connection.state == "ready" else PENDING
    if isinstance(protocol, ReloadProtocol):
        return OPEN if protocol.state == protocol.STATE_OPEN else PENDING
    if isinstance(protocol, BridgeProtocol):
        state = protocol.session.state if protocol.session is not None else "new"
        return {"ready": TRUSTED, "pairing": OPEN}.get(state, PENDING)
    return PENDING


class GatewayService(MultiService):
    """One gateway: state dir, log file, and the gateway-port listeners."""

    def __init__(
        self,
        settings: GatewaySettings,
        reactor: Any,
        publisher: LogPublisher = globalLogPublisher,
        advertiser: IAdvertiser | None = None,
        identity: IdentityCheck | None = None,  # gateway.auth.allowTailscale: confirms Serve's identity headers
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

        self.from_proxy = _matcher(list(settings.trusted_proxies))  # proxies share one address among many clients
        # Every collaborator, built in one place; listeners and HTTP routes get the parts they use.
        self.core = core = GatewayCore(settings, reactor, redactor=self.redactor, canvas_url=self.canvas_url)
        self.root = GatewayRoot(websocket_resource(core.gate, core.connections, settings.trusted_proxies, settings.allowed_origins, identity))
        self.channels = install_channels(core, self.root, reactor)  # one child service per channel account (added below)
        # Cron jobs and heartbeats (openclaw/cron) deliver through the channels, or into the session itself.
        self.scheduled = install_scheduled_work(core, self, ChannelDelivery(self.channels, SessionDelivery(core.agent, core.events)))
        bearer = BearerAuth(core.auth, core.limiter, settings.rate_limit.exempt_loopback, settings.trusted_proxies)
        self.root.putChild(b"v1", OpenAIApi(bearer, core.agent, settings.http.chat_completions, core.boot.started_ms))
        tools = Resource()
        tools.putChild(b"invoke", ToolsInvoke(bearer, core.agent, settings.http))
        self.root.putChild(b"tools", tools)
        self.metrics = install_metrics(self, self.root, core, bearer, settings.hosts, self.scheduled.cron)  # GET /metrics, the request meter, run counts
        self.control_ui: ControlUi | None = None
        if settings.control_ui_enabled:
            self.control_ui = ControlUi(settings.control_ui_base_path, settings.control_ui_root, ui_config=UiConfig(bearer, settings, core.config.config))
            self.root.mount_ui(self.control_ui)
        self.site = GatewaySite(self.root, timeout=HTTP_IDLE_TIMEOUT, reactor=reactor)
        self.http: list[ListenService] = []
        for host in settings.hosts:
            endpoint = TCP4ServerEndpoint(reactor, settings.port, backlog=LISTEN_BACKLOG, interface=host)
            listener = ListenService(endpoint, self.admission(self.site), "the gateway", settings.port)
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
                listener = ListenService(endpoint, self.admission(canvas_site), "the canvas host", settings.canvas_port)
                listener.setName(f"canvas:{host}")
                listener.setServiceParent(self)
                self.canvas_listeners.append(listener)

        self.bridge: list[ListenService] = []
        if settings.bridge_enabled:
            bridge_factory = BridgeFactory(BridgeEnv.of(core, self.canvas_url))
            for host in settings.hosts:
                bridge_at = bridge_endpoint(reactor, settings.bridge_port, host, settings.bridge_tls, settings.state_dir)
                listener = ListenService(bridge_at, self.admission(bridge_factory), "the node bridge", settings.bridge_port)
                listener.setName(f"bridge:{host}")
                listener.setServiceParent(self)
                self.bridge.append(listener)

        self.channels.setServiceParent(self)

        if settings.mdns_enabled:
            # Last child: it starts after every listener is bound, and stops first.
            MdnsService(advertiser or ZeroconfAdvertiser(), self.mdns_record).setServiceParent(self)

    def admission(self, factory: IProtocolFactory) -> Admission:
        """One listener's admission: C{gateway.maxConnections}, C{gateway.preauth.*}."""
        s = self.settings
        return Admission(
            factory,
            self.reactor,
            limit=s.max_connections,
            per_address=s.preauth_per_address,
            deadline=s.preauth_timeout,
            upgrade_deadline=UPGRADE_DEADLINE,
            classify=classify,
            exempt=self.from_proxy,
        )

    def mdns_record(self) -> GatewayRecord:
        host = self.settings.hosts[0]
        lan = lan_address() if host == "0.0.0.0" else host
        addresses = tuple(a for a in (lan,) if a) or ("127.0.0.1",)
        bridge = str(self.bridge[0].port) if self.bridge and self.bridge[0].listening else ""
        canvas = str(self.canvas_listeners[0].port) if self.canvas_listeners and self.canvas_listeners[0].listening else ""
        hostname = self.core.boot.hostname
        name = f"{hostname.split('.')[0]}-{self.port}"
        txt = {
            "role": "gateway",
            "displayName": hostname,
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
        deadline = time.monotonic() + FORCE_WAIT
        stopped = bool(self.settings.force and self.settings.port) and self._stop_port_owners(deadline)
        ensure_dir(self.settings.state_dir)
        # The gateway --force stopped may be this state dir's; it lets go of the lock as it exits.
        while True:
            try:
                self.lock.acquire()
                break
            except StateLocked:
                if not stopped or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        for path in clean_stray_temps(self.settings.state_dir):
            log.info("removed stray temp file {path}", path=str(path))

    def _stop_port_owners(self, deadline: float) -> bool:
        """SIGTERM whatever listens on the port, SIGKILL what outlives the grace; True if there was any."""
        port = self.settings.port
        owners = [pid for pid, _ in listeners(port) if pid != os.getpid()]
        for pid in owners:
            log.warn("--force: stopping pid {pid} on port {port}", pid=pid, port=port)
            _signal(pid, signal.SIGTERM)
        kill_at = deadline - FORCE_KILL_GRACE
        killed = False
        while owners and time.monotonic() < deadline:
            left = [pid for pid in owners if _alive(pid)]
            if not left:
                return True
            if not killed and time.monotonic() >= kill_at:
                for pid in left:
                    log.warn("--force: pid {pid} ignored SIGTERM; killing it", pid=pid)
                    _signal(pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        return bool(owners)

    def _holding_state(self, start: Callable[[], object]) -> None:
        """Run a start step with the state dir claimed; a failure gives it back."""
        self._claim_state()
        try:
            start()
        except BaseException:
            self.lock.release()
            raise

    def _start_children(self) -> None:
        # File IO starts here, with the state dir locked: constructors read nothing.
        self.core.load()
        if self.control_ui is not None:
            self.control_ui.load()
        super().startService()

    def privilegedStartService(self) -> None:
        self._holding_state(super().privilegedStartService)

    def startService(self) -> None:
        self._holding_state(self._start_children)
        self.started_at = time.time()
        self.core.start()
        for listener in self.http:
            host = listener.address
            log.info("listening on ws://{host}:{port} (http + websocket)", host=host.host, port=host.port)
        if self.settings.control_ui_enabled and self.http:
            host = self.http[0].address
            base = self.settings.control_ui_base_path
            log.info("Control UI on http://{host}:{port}{base} and WebChat on {base}chat (`openclaw dashboard` prints a signed-in link)", host=host.host, port=host.port, base=base)
        for listener in self.canvas_listeners:
            host = listener.address
            log.info("canvas host on http://{host}:{port}/ (root {root})", host=host.host, port=host.port, root=str(self.settings.canvas_root))
        for listener in self.bridge:
            host = listener.address
            log.info("node bridge on {host}:{port} (JSON lines)", host=host.host, port=host.port)
        for warning in self.settings.warnings:
            log.warn("config: {issue}", issue=str(warning))
        mode = loose_mode(self.settings.state_dir)
        if mode is not None:
            log.warn(
                "state dir {path} is mode {mode}: other users can read or change the gateway's secrets; "
                "fix it with `chmod 700 {path}`",
                path=str(self.settings.state_dir),
                mode=f"{mode:o}",
            )

    def stopService(self) -> Deferred[None]:
        log.info("gateway stopping")
        d = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        try:
            # Nothing scheduled may start while the core aborts the runs in flight.
            self.scheduled.quiesce()
            # Listeners do not close upgraded sockets: say goodbye (1012) and wait a little.
            self.channels.shutting_down()  # runs aborted next stay journaled for the next start
            self.core.stop()
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
        while self.core.connections.open_sockets() and waited < seconds:
            await deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02
