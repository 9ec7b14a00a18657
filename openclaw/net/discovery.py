# -*- test-case-name: tests.test_discovery -*-
"""
mDNS/Bonjour: advertise this gateway as C{_openclaw._tcp} and upstream's
C{_openclaw-gw._tcp}, and browse for gateways. python-zeroconf blocks, so
every call runs in a thread (C{deferToThread}), never on the reactor.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger(namespace="openclaw.discovery")

SERVICE_TYPES = ("_openclaw._tcp.local.", "_openclaw-gw._tcp.local.")
MAX_DISCOVER_SECONDS = 30.0


@attrs.frozen
class GatewayRecord:
    name: str
    addresses: tuple[str, ...]
    port: int
    txt: dict[str, str]


class IAdvertiser(Interface):
    def register(record: GatewayRecord) -> Deferred:
        """Start announcing C{record}."""

    def unregister() -> Deferred:
        """Stop announcing (goodbye packets), release resources."""


@implementer(IAdvertiser)
class ZeroconfAdvertiser:
    def __init__(self) -> None:
        self._zeroconf: Any = None
        self._infos: list[Any] = []

    def register(self, record: GatewayRecord) -> Deferred:
        return deferToThread(self._register, record)

    def _register(self, record: GatewayRecord) -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf

        self._zeroconf = Zeroconf(ip_version=IPVersion.V4Only)
        host = socket.gethostname().split(".")[0] or "openclaw"
        for service_type in SERVICE_TYPES:
            info = ServiceInfo(
                service_type,
                f"{record.name}.{service_type}",
                addresses=[socket.inet_aton(a) for a in record.addresses],
                port=record.port,
                properties=record.txt,
                server=f"{host}.local.",
            )
            self._zeroconf.register_service(info, allow_name_change=True)
            self._infos.append(info)

    def unregister(self) -> Deferred:
        return deferToThread(self._unregister)

    def _unregister(self) -> None:
        zeroconf, self._zeroconf = self._zeroconf, None
        infos, self._infos = self._infos, []
        if zeroconf is None:
            return
        for info in infos:
            try:
                zeroconf.unregister_service(info)
            except Exception:
                log.failure("mDNS unregister failed")
        zeroconf.close()


class MdnsService(Service):
    """Announces while running; the record is built at start (ports are bound by then)."""

    name = "mdns"

    def __init__(self, advertiser: IAdvertiser, record_factory: Callable[[], GatewayRecord]) -> None:
        self.advertiser = advertiser
        self.record_factory = record_factory
        self.registered: Deferred | None = None

    def startService(self) -> None:
        super().startService()
        record = self.record_factory()
        self.registered = self.advertiser.register(record)
        self.registered.addCallbacks(
            lambda _: log.info("mDNS: announcing {name} on port {port}", name=record.name, port=record.port),
            lambda f: log.failure("mDNS announcement failed", f),
        )

    def stopService(self) -> Deferred:
        super().stopService()
        registered = self.registered or Deferred()
        if self.registered is None:
            registered.callback(None)
        # unregister after registering finished, whichever way it went
        return registered.addBoth(lambda _: self.advertiser.unregister())


def _txt(properties: dict[Any, Any]) -> dict[str, str]:
    out = {}
    for key, value in (properties or {}).items():
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        out[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else ("" if value is None else str(value))
    return out


def browse(seconds: float) -> list[dict[str, Any]]:
    """Blocking: browse both service types for C{seconds}; one entry per gateway."""
    from zeroconf import IPVersion, ServiceBrowser, Zeroconf

    zeroconf = Zeroconf(ip_version=IPVersion.V4Only)
    names: set[tuple[str, str]] = set()

    class Listener:
        def add_service(self, zc: Any, service_type: str, name: str) -> None:
            names.add((service_type, name))

        update_service = add_service

        def remove_service(self, zc: Any, service_type: str, name: str) -> None:
            names.discard((service_type, name))

    browsers = [ServiceBrowser(zeroconf, t, Listener()) for t in SERVICE_TYPES]  # type: ignore[arg-type]  # duck-typed ServiceListener
    try:
        time.sleep(min(max(seconds, 0.1), MAX_DISCOVER_SECONDS))
        found: dict[tuple[tuple[str, ...], int | None], dict[str, Any]] = {}
        for service_type, name in sorted(names):
            info = zeroconf.get_service_info(service_type, name, timeout=1000)
            if info is None:
                continue
            addresses = tuple(socket.inet_ntoa(a) for a in info.addresses if len(a) == 4)
            key = (addresses, info.port)
            entry = found.setdefault(key, {"name": name.split(".")[0], "addresses": list(addresses), "port": info.port, "types": [], "txt": _txt(info.properties)})
            entry["types"].append(service_type.removesuffix(".local."))
        return list(found.values())
    finally:
        for browser in browsers:
            browser.cancel()
        zeroconf.close()


def discover(seconds: float) -> Deferred:
    return deferToThread(browse, seconds)
