"""Admission: per-address budgets, the connection limit and hard deadlines for unauthenticated connections."""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import TestCase

from openclaw.net.listen import OPEN, PENDING, TRUSTED, Admission
from tests.wsclient import GatewayMixin, connect_params


class Stub(Protocol):
    kind = PENDING
    lost = False

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class Upgraded(Stub):
    """What a WebSocket resource puts in place of the HTTP channel."""


def admission(clock, limit=10, per_address=3, deadline=5.0, upgrade_deadline=12.0, exempt=lambda ip: False):
    return Admission(Factory.forProtocol(Stub), clock, limit, per_address, deadline, upgrade_deadline, classify=lambda p: p.kind, exempt=exempt)


def connect(factory, ip="10.0.0.1", port=1000):
    address = IPv4Address("TCP", ip, port)
    wrapper = factory.buildProtocol(address)
    if wrapper is None:
        return None
    transport = StringTransport(peerAddress=address)
    wrapper.makeConnection(transport)
    return wrapper


def closed(wrapper):
    return wrapper.transport.disconnecting


class AdmissionTests(TestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()

    def test_per_address_budget_evicts_the_oldest(self):
        """Over its budget an address loses its oldest unauthenticated connection; other addresses keep theirs."""
        factory = admission(self.clock)
        other = connect(factory, "10.0.0.2")
        mine = []
        for i in range(5):
            self.clock.advance(0.1)
            mine.append(connect(factory, port=2000 + i))
        self.assertEqual([closed(w) for w in mine], [True, True, False, False, False])
        self.assertFalse(closed(other))
        self.assertEqual(len(factory.protocols), 4)
        self.assertEqual(factory.evicted, 2)

    def test_authenticated_do_not_count(self):
        """Authenticated connections are outside the budget and never evicted; open ones count, oldest first."""
        factory = admission(self.clock, per_address=2)
        trusted = []
        for port in (1, 2, 3):
            trusted.append(connect(factory, port=port))
            trusted[-1].wrappedProtocol.kind = TRUSTED  # e.g. a WebSocket past connect
        reload_socket = connect(factory, port=4)
        reload_socket.wrappedProtocol.kind = OPEN
        fresh = []
        for port in (5, 6):
            self.clock.advance(0.1)
            fresh.append(connect(factory, port=port))
        self.assertEqual([closed(w) for w in trusted], [False, False, False])
        self.assertTrue(closed(reload_socket))  # the oldest unauthenticated one
        self.assertEqual([closed(w) for w in fresh], [False, False])
        self.clock.advance(0.1)
        connect(factory, port=7)
        self.assertEqual([closed(w) for w in fresh], [True, False])

    def test_trusted_proxy_exempt_from_budget(self):
        """A trusted proxy's address carries many clients: only the connection limit applies to it."""
        factory = admission(self.clock, per_address=1, exempt=lambda ip: ip == "10.9.9.9")
        proxied = [connect(factory, "10.9.9.9", p) for p in range(5)]
        self.assertFalse(any(closed(w) for w in proxied))

    def test_limit_evicts_unauthenticated_then_refuses(self):
        """At the limit a new connection evicts the oldest unauthenticated one; with none left it is refused."""
        factory = admission(self.clock, limit=3, per_address=10)
        first = connect(factory, "10.0.0.1")
        self.clock.advance(1)
        second = connect(factory, "10.0.0.2")
        second.wrappedProtocol.kind = TRUSTED
        third = connect(factory, "10.0.0.3")
        fourth = connect(factory, "10.0.0.4")
        self.assertEqual((closed(first), closed(second), closed(third)), (True, False, False))
        for w in (third, fourth):
            w.wrappedProtocol.kind = TRUSTED
        self.assertIsNone(connect(factory, "10.0.0.5"))
        self.assertEqual(len(factory.protocols), 3)

    def test_deadline_is_not_extended_by_bytes(self):
        """A pending connection closes at its deadline however steadily it sends; it is aborted if it will not drain."""
        factory = admission(self.clock, deadline=5.0)
        slow = connect(factory)
        for _ in range(9):
            self.clock.advance(0.5)
            slow.dataReceived(b"x")
        self.assertFalse(closed(slow))
        self.clock.advance(0.5)
        self.assertTrue(closed(slow))
        self.assertFalse(slow.transport.disconnected)
        self.clock.advance(2.0)
        self.assertTrue(slow.transport.disconnected)  # aborted
        self.assertEqual(factory.expired, 1)

    def test_authenticated_outlive_the_deadline(self):
        """Authenticated and open connections stay past the deadline; idle() (an HTTP response ended) starts a new one."""
        factory = admission(self.clock, deadline=5.0)
        client = connect(factory)
        live = connect(factory, port=2)
        client.wrappedProtocol.kind = TRUSTED
        live.wrappedProtocol.kind = OPEN
        self.clock.advance(60)
        self.assertFalse(closed(client) or closed(live))
        client.wrappedProtocol.kind = PENDING
        client.idle()
        self.clock.advance(4.9)
        self.assertFalse(closed(client))
        self.clock.advance(0.1)
        self.assertTrue(closed(client))
        live.wrappedProtocol.kind = PENDING  # e.g. a bridge node whose pairing was answered
        self.clock.advance(5)
        self.assertTrue(closed(live))

    def test_upgrade_gets_the_websocket_deadline_once(self):
        """An upgrade restarts the deadline once, at the WebSocket allowance; bytes after it do not."""
        factory = admission(self.clock, deadline=5.0, upgrade_deadline=12.0)
        wrapper = connect(factory)
        self.clock.advance(4)
        wrapper.wrappedProtocol = Upgraded()
        for _ in range(11):
            self.clock.advance(1)
            wrapper.dataReceived(b"x")
        self.assertFalse(closed(wrapper))
        self.clock.advance(1)
        self.assertTrue(closed(wrapper))

    def test_lost_connections_leave_the_books(self):
        """A closed connection frees its slot and cancels its timer."""
        factory = admission(self.clock)
        wrapper = connect(factory)
        wrapper.connectionLost(None)
        self.assertEqual((factory.protocols, factory.by_address), ({}, {}))
        self.assertEqual(self.clock.getDelayedCalls(), [])


def _recv_closed(sock):
    """True once the server has closed C{sock} (EOF or reset); False while it is open."""
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


class AttackTests(GatewayMixin, TestCase):
    """Real loopback sockets: one address holding many idle or slow sockets."""

    timeout = 60

    def hold(self, count, first=b""):
        socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", self.service.port))
            s.setblocking(False)
            if first:
                s.send(first)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        return socks

    async def test_idle_and_slow_sockets_lock_no_one_out(self):
        """/health and an authenticated client work while 127.0.0.1 holds 120 sockets; the attacker's close at the deadline."""
        await self.gateway(gateway={"maxConnections": 100, "preauth": {"timeoutMs": 1500, "maxPerAddress": 8}})
        idle = self.hold(100)
        slow = self.hold(20, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await deferLater(reactor, 0.2, lambda: None)

        code, _, body = await self.get("/health")
        self.assertEqual((code, body), (200, b'{"ok":true,"status":"live"}'))
        ws, res = await self.connect(connect_params())
        self.assertTrue(res["ok"], res)

        # Bytes keep coming on the slow sockets: they must not keep them open.
        start = reactor.seconds()
        while reactor.seconds() - start < 2.5:
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            await deferLater(reactor, 0.1, lambda: None)
        attacker = idle + slow
        self.assertEqual([s for s in attacker if not _recv_closed(s)], [])
        res = await ws.request("health")  # the authenticated client outlives the deadline
        self.assertTrue(res["ok"])
        code, _, _ = await self.get("/health")
        self.assertEqual(code, 200)

    async def test_keep_alive_deadline_restarts_per_response(self):
        """A keep-alive connection gets a fresh deadline after each response, and is closed once it idles past one."""
        await self.gateway(gateway={"preauth": {"timeoutMs": 1000}})
        (sock,) = self.hold(1)
        answered = 0
        for _ in range(5):  # 2.5 s of requests, each inside the deadline of the one before
            sock.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await deferLater(reactor, 0.5, lambda: None)
            answered += sock.recv(65536).count(b"HTTP/1.1 200")
        self.assertEqual(answered, 5)
        await deferLater(reactor, 1.3, lambda: None)
        self.assertTrue(_recv_closed(sock))

    async def test_connection_limit(self):
        """At gateway.maxConnections a new connection evicts the oldest unauthenticated one; with all authenticated it is refused."""
        await self.gateway(gateway={"maxConnections": 3})
        first, _ = await self.connect(connect_params())
        second, _ = await self.connect(connect_params())
        (idle,) = self.hold(1)
        await deferLater(reactor, 0.1, lambda: None)
        code, _, _ = await self.get("/health")
        self.assertEqual(code, 200)
        self.assertTrue(_recv_closed(idle))
        third, res = await self.connect(connect_params())
        self.assertTrue(res["ok"])
        (extra,) = self.hold(1)
        for _ in range(100):
            await deferLater(reactor, 0.01, lambda: None)
            if _recv_closed(extra):
                break
        else:
            self.fail("the connection over the limit was not closed")
        self.assertTrue((await first.request("health"))["ok"])

    async def get(self, path):
        import treq

        response = await treq.request("GET", f"http://127.0.0.1:{self.service.port}{path}", persistent=False)
        return response.code, response.headers, await response.content()
