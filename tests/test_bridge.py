"""The JSONL node bridge: every frame and error of spec §5.4, unit and over loopback TCP."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.bridge.protocol import BridgeFactory
from openclaw.bridge.session import BridgeEnv
from openclaw.gateway.core import GatewayCore
from tests.wsclient import GatewayMixin, gateway_settings


class Harness(SynchronousTestCase):
    def setUp(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        self.clock = Clock()
        self.core = GatewayCore(gateway_settings(home), self.clock)
        self.core.load()

    def connect(self, max_length=None):
        factory = BridgeFactory(BridgeEnv.of(self.core, lambda: "http://gw:18793"))
        proto = factory.buildProtocol(None)
        proto.factory = factory
        if max_length:
            proto.MAX_LENGTH = max_length
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def frames(self, transport):
        out = [json.loads(line) for line in transport.value().splitlines() if line]
        transport.clear()
        return out

    def send(self, proto, *frames):
        proto.dataReceived(b"".join((f if isinstance(f, bytes) else json.dumps(f).encode()) + b"\n" for f in frames))

    def paired_token(self, node_id="n1"):
        request, _ = self.core.node_pairing.request(node_id, {"commands": ["system.run"]}, self.core.boot.now_ms())
        return self.core.node_pairing.approve(request["requestId"], self.core.boot.now_ms())["token"]

    def ready(self, node_id="n1"):
        token = self.paired_token(node_id)
        proto, transport = self.connect()
        self.send(proto, {"type": "hello", "nodeId": node_id, "token": token, "platform": "linux", "commands": ["system.run"]})
        [hello] = self.frames(transport)
        self.assertEqual(hello, {"type": "hello-ok", "serverName": self.core.boot.hostname, "canvasHostUrl": "http://gw:18793"})
        return proto, transport


class FrameTests(Harness):
    def test_errors_before_hello(self):
        """The §5.4 error rows before authentication."""
        proto, transport = self.connect()
        self.send(
            proto,
            b"{not json",
            b"   ",
            {"type": "warp"},
            [1, 2],
            {"type": "invoke", "id": "1"},
            {"type": "res", "id": "1"},
            {"type": "hello"},
            {"type": "hello", "nodeId": "n1"},
            {"type": "req", "id": "r1", "method": "health"},
            {"type": "event", "event": "x"},
            {"type": "ping", "id": "p"},
        )
        got = [(f["type"], f.get("code"), f.get("message") or f.get("error", {}).get("message")) for f in self.frames(transport)]
        self.assertEqual(got[0][:2], ("error", "INVALID_REQUEST"))
        self.assertTrue(got[0][2].startswith("invalid JSON"))
        self.assertEqual(
            got[1:],
            [
                ("error", "INVALID_REQUEST", "unknown type"),
                ("error", "INVALID_REQUEST", "frame must be a JSON object"),
                ("error", "INVALID_REQUEST", "invoke not allowed from node"),
                ("error", "INVALID_REQUEST", "res not allowed from node"),
                ("error", "INVALID_REQUEST", "nodeId required"),
                ("error", "NOT_PAIRED", "pairing required"),
                ("res", None, "not authenticated"),
                ("error", "UNAUTHORIZED", "not authenticated"),
                ("error", "UNAUTHORIZED", "not authenticated"),
            ],
        )
        self.assertTrue(transport.connected)

    def test_tokens(self):
        """A paired node without a token, or with a wrong one, is UNAUTHORIZED."""
        self.paired_token("n1")
        proto, transport = self.connect()
        self.send(proto, {"type": "hello", "nodeId": "n1"}, {"type": "hello", "nodeId": "n1", "token": "bad"})
        self.assertEqual([(f["code"], f["message"]) for f in self.frames(transport)], [("UNAUTHORIZED", "pairing required"), ("UNAUTHORIZED", "invalid token")])

    def test_hello_alias_and_capabilities(self):
        """bridge.hello and `capabilities` work as aliases of hello and caps."""
        token = self.paired_token("n2")
        proto, transport = self.connect()
        self.send(proto, {"type": "bridge.hello", "nodeId": "n2", "token": token, "capabilities": ["canvas"]})
        self.assertEqual(self.frames(transport)[0]["type"], "hello-ok")
        self.assertEqual(self.core.nodes.describe("n2")["caps"], ["canvas"])

    def test_after_hello(self):
        """req (allowlisted), ping/pong, event, missing id/method, disallowed methods."""
        proto, transport = self.ready()
        self.send(
            proto,
            {"type": "req", "id": "r1", "method": "health", "paramsJSON": None},
            {"type": "req", "id": "r2", "method": "config.set", "paramsJSON": "{}"},
            {"type": "req", "method": "health"},
            {"type": "req", "id": "r3", "method": "voicewake.get", "paramsJSON": "{bad"},
            {"type": "ping", "id": "p1"},
            {"type": "pong", "id": "x"},
            {"type": "event", "event": "chat.subscribe", "payloadJSON": '{"sessionKey":"main"}'},
        )
        r1, r2, missing, r3, pong = self.frames(transport)
        self.assertEqual((r1["type"], r1["ok"], json.loads(r1["payloadJSON"])["ok"]), ("res", True, True))
        self.assertEqual((r2["ok"], r2["error"]["code"]), (False, "INVALID_REQUEST"))
        self.assertEqual(missing, {"type": "error", "code": "INVALID_REQUEST", "message": "id and method required"})
        self.assertTrue(r3["error"]["message"].startswith("paramsJSON is not JSON"))
        self.assertEqual(pong, {"type": "pong", "id": "p1"})
        self.assertEqual(proto.session.subscriptions, {"main"})

    def test_invoke_round_trip_and_timeout(self):
        """An invoke goes out as {type:invoke}; invoke-res answers it; silence times out (15 s)."""
        proto, transport = self.ready()
        d = self.core.nodes.invoke("n1", "system.run", {"command": ["echo", "hi"]}, None, "k")
        [invoke] = self.frames(transport)
        self.assertEqual((invoke["type"], invoke["command"], json.loads(invoke["paramsJSON"])), ("invoke", "system.run", {"command": ["echo", "hi"]}))
        self.send(proto, {"type": "invoke-res", "id": invoke["id"], "ok": True, "payloadJSON": '{"stdout":"hi\\n"}'})
        self.assertEqual(self.successResultOf(d)["payload"], {"stdout": "hi\n"})
        late = self.core.nodes.invoke("n1", "system.run", {}, None, None)
        self.clock.advance(15)
        self.assertEqual(self.failureResultOf(late).value.message, "invoke timeout")

    def test_oversize_line(self):
        """A line over MAX_LENGTH gets an error frame, then the connection closes."""
        proto, transport = self.connect(max_length=100)
        proto.dataReceived(b"x" * 200)
        self.assertEqual(self.frames(transport), [{"type": "error", "code": "INVALID_REQUEST", "message": "line too long"}])
        self.assertFalse(transport.connected)

    def test_garbage_bytes(self):
        """Non-UTF-8 garbage is an error frame; the connection stays."""
        proto, transport = self.connect()
        proto.dataReceived(b"\xff\xfe\x00garbage\n")
        [frame] = self.frames(transport)
        self.assertEqual(frame["code"], "INVALID_REQUEST")
        self.assertTrue(transport.connected)

    def test_half_open(self):
        """No hello within 30 s: dropped. After hello: pinged every 60 s, dropped after 180 s of silence."""
        proto, transport = self.connect()
        self.clock.advance(30)
        self.assertFalse(transport.connected)
        proto, transport = self.ready("n3")
        self.clock.advance(60)
        self.assertEqual(self.frames(transport)[-1]["type"], "ping")
        self.clock.advance(180)
        self.assertFalse(transport.connected)
        self.assertFalse(self.core.nodes.connected("n3"))

    def test_replacement(self):
        """A second hello for the same node replaces the first connection."""
        first, first_transport = self.ready("n4")
        token = self.core.node_pairing.paired_record("n4")["token"]
        second, second_transport = self.connect()
        self.send(second, {"type": "hello", "nodeId": "n4", "token": token})
        self.assertFalse(first_transport.connected)
        self.assertTrue(second_transport.connected)
        self.assertIs(self.core.nodes.links["n4"][0], second.session)

    def test_pairing_rejected(self):
        """pair-request then reject: error "pairing rejected", disconnect."""
        proto, transport = self.connect()
        self.send(proto, {"type": "pair-request", "nodeId": "n5"})
        [request] = self.core.node_pairing.pending(self.core.boot.now_ms())
        self.core.node_pairing.reject(request["requestId"])
        self.clock.advance(0.25)
        self.assertEqual(self.frames(transport), [{"type": "error", "code": "UNAUTHORIZED", "message": "pairing rejected"}])
        self.assertFalse(transport.connected)

    def test_pairing_expired(self):
        """pair-request with no decision in 5 minutes: "pairing expired"."""
        proto, transport = self.connect()
        self.send(proto, {"type": "pair-request", "nodeId": "n6"})
        self.clock.advance(301)
        self.assertEqual(self.frames(transport)[-1]["message"], "pairing expired")


class BoundsTests(Harness):
    """Unauthenticated pair requests cannot grow the state files (issue 8, item 6)."""

    def pending_file(self):
        return self.core.settings.state_dir / "nodes" / "pending.json"

    def test_huge_line_before_hello(self):
        """A 2 MB pair request is refused as a line too long before authentication, then hung up."""
        proto, transport = self.connect()
        self.send(proto, {"type": "pair-request", "nodeId": "big", "displayName": "x" * 2_000_000})
        [frame] = self.frames(transport)
        self.assertEqual(frame["code"], "INVALID_REQUEST")
        self.assertIn("line too long before authentication", frame["message"])
        self.assertFalse(transport.connected)
        self.assertEqual(self.core.node_pairing.pending(self.core.boot.now_ms()), [])

    def test_fields_bounded(self):
        """Oversized fields within the line cap are refused with the bound; nothing is stored."""
        proto, transport = self.connect()
        self.send(
            proto,
            {"type": "pair-request", "nodeId": "n", "displayName": "x" * 30_000},
            {"type": "pair-request", "nodeId": "n", "commands": [f"c{i}" for i in range(1000)]},
            {"type": "pair-request", "nodeId": "n", "permissions": {"camera": "yes"}},
        )
        messages = [f["message"] for f in self.frames(transport)]
        self.assertEqual(messages[0], "displayName must be a string of at most 120 characters")
        self.assertTrue(messages[1].startswith("commands must be at most 128 strings"))
        self.assertTrue(messages[2].startswith("permissions must be"))
        self.assertTrue(transport.connected)
        self.assertEqual(self.core.node_pairing.pending(self.core.boot.now_ms()), [])
        self.clock.advance(5)
        self.assertFalse(self.pending_file().exists())

    def test_pending_writes_coalesced_and_bounded(self):
        """300 maximal pair requests: no write on the request path, one per second after; the file stays bounded."""
        big = {"displayName": "d" * 120, "platform": "p" * 256, "commands": ["c" * 128] * 128, "caps": ["k" * 128] * 128}
        for i in range(300):
            proto, _ = self.connect()
            self.send(proto, {"type": "pair-request", "nodeId": f"node-{i}", **big})
        self.assertFalse(self.pending_file().exists())
        self.clock.advance(1)
        stored = json.loads(self.pending_file().read_text())
        self.assertEqual(len(stored), 200)
        self.assertLess(self.pending_file().stat().st_size, 200 * 40_000)
        self.assertEqual(self.core.node_pairing._pending.file.writes, 1)


class LineClient(LineOnlyReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        self.factory.connected.callback(self)

    def lineReceived(self, line):
        self.factory.frames.put(json.loads(line))

    def connectionLost(self, reason):
        self.factory.frames.put(None)

    def send(self, frame):
        self.sendLine(json.dumps(frame).encode())


async def open_bridge(port):
    factory = Factory.forProtocol(LineClient)
    factory.connected = Deferred()
    factory.frames = DeferredQueue()
    proto = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    return proto, factory.frames


class LoopbackTests(GatewayMixin, TestCase):
    async def test_pairing_flow_and_invoke(self):
        """pair-request → operator approves over WebSocket → pair-ok → hello-ok → invoke round trip."""
        service = await self.gateway()
        op, _ = await self.connect()
        bridge, frames = await open_bridge(service.bridge[0].port)
        self.addCleanup(bridge.transport.loseConnection)
        bridge.send({"type": "pair-request", "nodeId": "tcp-node", "displayName": "TCP node", "platform": "linux", "commands": ["system.run"]})
        requested = await op.event("node.pair.requested")
        approved = await op.request("node.pair.approve", {"requestId": requested["payload"]["requestId"]})
        self.assertTrue(approved["ok"])
        pair_ok = await frames.get()
        self.assertEqual(pair_ok["type"], "pair-ok")
        self.assertEqual(len(pair_ok["token"]), 32)
        self.assertEqual((await frames.get())["type"], "hello-ok")
        op.protocol.send_json({"type": "req", "id": "inv", "method": "node.invoke", "params": {"nodeId": "tcp-node", "command": "system.run", "params": {"command": ["echo", "hi"]}, "idempotencyKey": "k"}})
        invoke = await frames.get()
        self.assertEqual(invoke["type"], "invoke")
        bridge.send({"type": "invoke-res", "id": invoke["id"], "ok": True, "payloadJSON": json.dumps({"exitCode": 0, "stdout": "hi\n"})})
        res = await op.response("inv")
        self.assertEqual(res["payload"]["payload"]["stdout"], "hi\n")
        listing = (await op.request("node.list"))["payload"]["nodes"]
        self.assertEqual([(n["nodeId"], n["connected"], n.get("transport")) for n in listing], [("tcp-node", True, "bridge")])
        bridge.transport.loseConnection()
        self.assertIsNone(await frames.get())


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cert_path, key_path


class TLSTests(GatewayMixin, TestCase):
    async def test_bridge_over_tls(self):
        """With bridge.tls enabled the bridge speaks TLS (a client trusting the cert gets frames)."""
        from twisted.internet.endpoints import wrapClientTLS
        from twisted.internet.ssl import Certificate, optionsForClientTLS

        folder = Path(self.mktemp()).resolve()
        folder.mkdir()
        cert, key = self_signed(folder)
        service = await self.gateway(bridge={"tls": {"enabled": True, "certPath": str(cert), "keyPath": str(key)}})
        factory = Factory.forProtocol(LineClient)
        factory.connected = Deferred()
        factory.frames = DeferredQueue()
        trust = Certificate.loadPEM(cert.read_bytes())
        endpoint = wrapClientTLS(optionsForClientTLS("localhost", trustRoot=trust), TCP4ClientEndpoint(reactor, "127.0.0.1", service.bridge[0].port))
        client = await endpoint.connect(factory)
        client.send({"type": "hello", "nodeId": "tls-node"})
        self.assertEqual(await factory.frames.get(), {"type": "error", "code": "NOT_PAIRED", "message": "pairing required"})
        client.transport.loseConnection()
        self.assertIsNone(await factory.frames.get())  # closed (TLS close needs a round trip)

    async def test_missing_certificate(self):
        """TLS enabled without a readable certificate refuses to start, naming the file."""
        from openclaw.net.listen import StartupError

        with self.assertRaises(StartupError) as cm:
            await self.gateway(bridge={"tls": {"enabled": True, "certPath": "/nonexistent/cert.pem", "keyPath": "/nonexistent/key.pem"}})
        self.assertIn("/nonexistent/", str(cm.exception))
