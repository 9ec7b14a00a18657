# -*- test-case-name: tests.test_tools -*-
"""
C{web_fetch} with an SSRF guard: resolve the host, refuse private, loopback,
link-local (cloud metadata), multicast and reserved addresses (IPv4-mapped
IPv6 included), connect to the vetted address only (pinned: a second DNS
answer cannot redirect us), follow redirects by hand re-checking each hop,
and stop reading past a size cap. The whole fetch (every hop, headers and
body) has one deadline; a body that stalls or breaks off is an error, never
a short success.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Awaitable, Callable, cast
from urllib.parse import urljoin, urlsplit

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 1024 * 1024
TIMEOUT = 20.0  # to connect
TOTAL_TIMEOUT = 30.0  # the whole fetch, body included


class FetchRefused(Exception):
    """The URL may not be fetched (the message says why)."""


class FetchFailed(Exception):
    """The fetch started but did not complete (timeout, broken body)."""


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (and Tailscale)


def is_public(address: str) -> bool:
    """True only for globally routable unicast addresses."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or ip.sixtofour is not None or ip.teredo is not None):
        return False
    return True


def resolve_host(host: str) -> list[str]:
    """Blocking: every address the host resolves to (IP literals in any notation included)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@implementer(IAgentEndpointFactory)
class _Pinned:
    """Connect to one vetted address, whatever the URL's host resolves to later."""

    def __init__(self, reactor: Any, address: str) -> None:
        self.reactor = reactor
        self.address = address

    def endpointForURI(self, uri: Any) -> Any:
        host = uri.host.decode("idna")
        endpoint_type = TCP6ClientEndpoint if ":" in self.address else TCP4ClientEndpoint
        endpoint: IStreamClientEndpoint = endpoint_type(self.reactor, self.address, uri.port, timeout=TIMEOUT)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
        return endpoint


@attrs.frozen
class FetchResult:
    url: str
    status: int
    content_type: str
    text: str
    truncated: bool


class WebFetcher:
    def __init__(
        self,
        reactor: Any,
        resolve: Callable[[str], Awaitable[list[str]]] | None = None,
        public: Callable[[str], bool] = is_public,
        timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.resolve = resolve or (lambda host: deferToThread(resolve_host, host))
        self.public = public
        self.timeout = timeout

    async def vet(self, url: str) -> tuple[Any, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"only http and https URLs can be fetched: {url[:200]}")
        try:
            addresses = await self.resolve(parts.hostname)
        except (OSError, UnicodeError) as e:
            raise FetchRefused(f"cannot resolve {parts.hostname}: {e}")
        if not addresses:
            raise FetchRefused(f"{parts.hostname} has no address")
        blocked = [a for a in addresses if not self.public(a)]
        if blocked:
            raise FetchRefused(f"refusing to fetch {parts.hostname}: it resolves to a private, loopback, link-local or reserved address ({blocked[0]})")
        return parts, addresses[0]

    async def fetch(self, url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> FetchResult:
        """Fetch C{url} within C{self.timeout} seconds, or raise L{FetchRefused}/L{FetchFailed}."""
        d = Deferred.fromCoroutine(self._fetch(url, max_bytes))
        expired: list[bool] = []
        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self.reactor.callLater(self.timeout, expire)
        try:
            return await d
        except CancelledError:
            if expired:
                raise FetchFailed(f"the fetch took longer than {self.timeout:g} s (body included); stopped")
            raise
        finally:
            if timer.active():
                timer.cancel()

    async def _fetch(self, url: str, max_bytes: int) -> FetchResult:
        for _ in range(MAX_REDIRECTS + 1):
            parts, address = await self.vet(url)
            agent = Agent.usingEndpointFactory(self.reactor, _Pinned(self.reactor, address))
            response = await agent.request(b"GET", url.encode(), Headers({b"User-Agent": [b"OpenClaw web_fetch"], b"Accept": [b"text/html, text/plain, application/json, */*"]}))
            if response.code in (301, 302, 303, 307, 308):
                location = response.headers.getRawHeaders(b"location")
                response.deliverBody(_Discard())
                if not location:
                    raise FetchRefused(f"redirect without a Location from {url}")
                url = urljoin(url, location[0].decode("latin-1"))
                continue  # the next hop is vetted like the first
            body, truncated = await _read_capped(response, max_bytes)
            content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
            return FetchResult(url, response.code, content_type, body.decode("utf-8", "replace"), truncated)
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


class _Discard:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        return None

    def connectionLost(self, reason: Any) -> None:
        return None


async def _read_capped(response: Any, limit: int) -> tuple[bytes, bool]:
    """The body up to C{limit} bytes (and whether it was cut); cancelling aborts the connection."""
    readers: list[Protocol] = []

    def abort(_: Deferred[Any]) -> None:
        for reader in readers:
            if reader.transport is not None:
                cast(IPushProducer, reader.transport).stopProducing()

    done: Deferred[tuple[bytes, bool]] = Deferred(abort)

    class Reader(Protocol):
        def __init__(self) -> None:
            self.data = bytearray()
            self.cut = False

        def dataReceived(self, data: bytes) -> None:
            room = limit - len(self.data)
            self.data.extend(data[: max(room, 0)])
            if len(data) > room and not self.cut:
                self.cut = True
                cast(IPushProducer, self.transport).stopProducing()  # stop reading: we have enough

        def connectionLost(self, reason: Any = None) -> None:
            if done.called:
                return
            if self.cut or reason is None or reason.check(ResponseDone, PotentialDataLoss):
                done.callback((bytes(self.data), self.cut))
            else:
                done.errback(FetchFailed(f"the body broke off after {len(self.data)} bytes: {reason.getErrorMessage()}"))

    reader = Reader()
    readers.append(reader)
    response.deliverBody(reader)
    return await done

