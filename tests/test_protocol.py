"""Frames, negotiation, and property tests: arbitrary input never crashes a connection."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from openclaw.gateway.connection import Connection, Peer
from openclaw.gateway.core import GatewayCore
from openclaw.protocol import frames, jsonvalue
from openclaw.protocol.versions import V3, V4, negotiate, truncate_reason
from tests.wsclient import connect_params, gateway_settings

# What a connection may do to its socket: the specified close codes only.
ALLOWED_CLOSES = {1000, 1002, 1008, 1009}


class FakeTransport:
    def __init__(self):
        self.sent = []
        self.closes = []
        self.max_payload = None

    def send(self, text):
        json.loads(text)  # everything we send is one JSON object
        self.sent.append(text)
        return True

    def close(self, code, reason):
        self.closes.append((code, reason))

    def buffered(self):
        return 0

    def set_max_payload(self, size):
        self.max_payload = size


class FrameTests(SynchronousTestCase):
    def test_parse(self):
        """A request frame parses; extra keys and bad ids are errors that keep the id."""
        self.assertEqual(frames.parse_request({"type": "req", "id": "1", "method": "m", "params": {}}), frames.Request("1", "m", {}))
        with self.assertRaises(frames.FrameError) as cm:
            frames.parse_request({"type": "req", "id": "7", "method": "m", "x": 1})
        self.assertEqual(cm.exception.id, "7")
        self.assertRaises(frames.FrameError, frames.parse_request, {"type": "req", "id": "", "method": "m"})
        self.assertRaises(frames.FrameError, frames.parse_request, {"type": "req", "id": "1", "method": "m", "traceparent": "t"}, allow_traceparent=False)
        self.assertRaises(frames.FrameError, frames.parse_request, {"type": "req", "id": "1", "method": "m", "traceparent": "t" * 129})

    def test_event_key_order(self):
        """Broadcast frames keep upstream's key order: type, event, payload, seq, stateVersion."""
        text = frames.event("presence", {"a": 1}, 3, {"presence": 1, "health": 2})
        self.assertEqual(list(json.loads(text)), ["type", "event", "payload", "seq", "stateVersion"])

    def test_negotiate(self):
        """The highest common version wins; none is None."""
        self.assertIs(negotiate(3, 3), V3)
        self.assertIs(negotiate(1, 9), V4)
        self.assertIsNone(negotiate(5, 6))
        self.assertIsNone(negotiate(1, 2))

    def test_truncate_reason(self):
        """Close reasons are cut to 120 UTF-8 bytes on a character boundary."""
        reason = truncate_reason("é" * 100)
        self.assertLessEqual(len(reason.encode()), 120)
        self.assertEqual(reason, "é" * 60)


class JSONValueTests(SynchronousTestCase):
    def test_depth_bound(self):
        """max_depth levels parse; one more, or 100k, is TooDeep (a ValueError), never a RecursionError."""
        self.assertEqual(jsonvalue.loads("[" * 64 + "]" * 64), eval("[" * 63 + "[]" + "]" * 63))
        for text in ("[" * 65 + "]" * 65, '{"a":' * 65 + "1" + "}" * 65, "[" * 100_000 + "]" * 100_000, "[" * 100_000):
            with self.assertRaises(jsonvalue.TooDeep):
                jsonvalue.loads(text)
        self.assertTrue(issubclass(jsonvalue.TooDeep, ValueError))
        self.assertEqual(jsonvalue.loads("[[[1]]]", max_depth=3), [[[1]]])
        self.assertRaises(jsonvalue.TooDeep, jsonvalue.loads, "[[[[1]]]]", max_depth=3)

    def test_brackets_in_strings_do_not_count(self):
        """Brackets inside strings (escaped quotes too) are text, not nesting."""
        text = json.dumps({"a": "[" * 1000 + '\\"{' * 500, "b": [["]]]]"]]})
        self.assertEqual(jsonvalue.loads(text), json.loads(text))
        self.assertEqual(jsonvalue.depth(text), 3)

    def test_non_finite_refused(self):
        """NaN, Infinity and -Infinity are not JSON: NonFinite; ordinary numbers pass."""
        for text in ("NaN", "[1, Infinity]", '{"x": -Infinity}'):
            self.assertRaises(jsonvalue.NonFinite, jsonvalue.loads, text)
        self.assertEqual(jsonvalue.loads('{"x": 1e308, "y": -0.5}'), {"x": 1e308, "y": -0.5})

    def test_bad_text(self):
        """Invalid UTF-8, non-JSON and non-text are JSONValueError."""
        for text in (b"\xff\xfe", "{nope", "", b'"\xc3"', 42):
            self.assertRaises(jsonvalue.JSONValueError, jsonvalue.loads, text)
        self.assertEqual(jsonvalue.loads(b'{"\xc3\xa9": 1}'), {"é": 1})

    def test_frames_use_it(self):
        """A frame with NaN is a FrameError that keeps the id; a too-deep frame is NotJSON."""
        with self.assertRaises(frames.FrameError) as cm:
            frames.parse(b'{"type":"req","id":"n1","method":"health","params":{"x":NaN}}')
        self.assertEqual(cm.exception.id, "n1")
        self.assertRaises(frames.NotJSON, frames.parse, b'{"type":"req","id":"d","method":"health","params":' + b"[" * 200 + b"]" * 200 + b"}")


class ConnectionPropertyTests(SynchronousTestCase):
    def setUp(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        self.settings = gateway_settings(home)

    def fresh(self):
        clock = Clock()
        core = GatewayCore(self.settings, clock)
        transport = FakeTransport()
        conn = Connection(core.gate, transport, Peer("127.0.0.1", True))
        conn.opened()
        return conn, transport, clock

    def check_outcome(self, transport):
        for code, _ in transport.closes:
            self.assertIn(code, ALLOWED_CLOSES)
        for text in transport.sent[1:]:
            frame = json.loads(text)
            if frame["type"] == "res" and not frame["ok"]:
                self.assertTrue(frame["error"]["code"] and frame["error"]["message"])

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_before_hello(self, data):
        """Any bytes as the first frame: a specified close or an error response, never an exception."""
        conn, transport, _ = self.fresh()
        conn.received(data)
        self.assertTrue(transport.closes or len(transport.sent) > 1 or conn.state == "ready")
        self.check_outcome(transport)

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=20,
    )

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(json_values)
    def test_arbitrary_connect_params(self, params):
        """Any JSON as connect params: refused with a response and a 1002/1008 close, or accepted."""
        conn, transport, _ = self.fresh()
        conn.received(json.dumps({"type": "req", "id": "c", "method": "connect", "params": params}).encode())
        if conn.state != "ready":
            self.assertEqual(len(transport.closes), 1)
        self.check_outcome(transport)

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(st.text(max_size=30), json_values)
    def test_arbitrary_requests_after_hello(self, method, params):
        """After hello, any method and params get exactly one response; the socket stays open."""
        conn, transport, _ = self.fresh()
        conn.received(json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params()}).encode())
        self.assertEqual(conn.state, "ready")
        before = len(transport.sent)
        if method in ("set-heartbeats", "voicewake.set", "config.set", "config.patch", "config.apply", "device.pair.remove"):
            method = "health"  # keep side effects on disk out of the fuzz loop
        conn.received(json.dumps({"type": "req", "id": "q", "method": method or "x", "params": params}).encode())
        responses = [json.loads(t) for t in transport.sent[before:] if json.loads(t)["type"] == "res"]
        self.assertEqual([r["id"] for r in responses], ["q"])
        self.assertEqual(transport.closes, [])
        self.check_outcome(transport)

    def test_handshake_timeout_on_clock(self):
        """The handshake timer runs on the injected clock: 10 s, then close 1000."""
        conn, transport, clock = self.fresh()
        clock.advance(9.9)
        self.assertEqual(transport.closes, [])
        clock.advance(0.2)
        self.assertEqual(transport.closes, [(1000, "")])

    def test_preauth_limit_then_raised(self):
        """The payload cap is 64 KiB before hello and the version's maxPayload after."""
        conn, transport, _ = self.fresh()
        self.assertEqual(transport.max_payload, 65536)
        conn.received(json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params()}).encode())
        self.assertEqual(transport.max_payload, V3.max_payload)


class TimerTests(SynchronousTestCase):
    def setUp(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        self.clock = Clock()
        self.core = GatewayCore(gateway_settings(home), self.clock)
        self.core.load()
        self.core.start()
        self.addCleanup(self.core.stop)

    def ready(self, client_id="test", mode="test"):
        transport = FakeTransport()
        conn = Connection(self.core.gate, transport, Peer("127.0.0.1", True))
        conn.opened()
        params = {**connect_params(client_id=client_id, mode=mode), "client": {"id": client_id, "version": "1", "platform": "linux", "mode": mode, "instanceId": f"i-{id(transport)}"}}
        conn.received(json.dumps({"type": "req", "id": "c", "method": "connect", "params": params}).encode())
        transport.sent.clear()
        return conn, transport

    def events(self, transport, name):
        return [f for f in map(json.loads, transport.sent) if f.get("event") == name]

    def test_tick_every_30s_and_health_every_60s(self):
        """22. tick {ts} every 30 s; health (with stateVersion) every 60 s; both on the injected clock."""
        _, transport = self.ready()
        self.clock.advance(29)
        self.assertEqual(self.events(transport, "tick"), [])
        self.clock.advance(1)
        [tick] = self.events(transport, "tick")
        self.assertEqual(tick["payload"], {"ts": 30000 + self.core.boot.started_ms})
        self.clock.advance(30)
        self.assertEqual(len(self.events(transport, "tick")), 2)
        [health] = self.events(transport, "health")
        self.assertIn("stateVersion", health)
        seqs = [f["seq"] for f in map(json.loads, transport.sent)]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))  # gap-free

    def test_presence_on_disconnect(self):
        """24. A non-CLI client's disconnect bumps stateVersion.presence and is broadcast."""
        watcher, transport = self.ready()
        other, _ = self.ready()
        before = self.core.versions.presence
        transport.sent.clear()
        other.closed()
        [event] = self.events(transport, "presence")
        self.assertEqual(event["stateVersion"]["presence"], before + 1)
        cli, _ = self.ready("cli", "cli")
        self.assertEqual(self.core.versions.presence, before + 1)  # the CLI is not presence


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


class EventFrameTests(SynchronousTestCase):
    """An event encoded once for many connections is byte for byte what encoding each frame whole gave."""

    @settings(max_examples=300)
    @given(
        name=_TEXT.filter(bool),
        payload=_JSON,
        seqs=st.lists(st.none() | st.integers(0, 2**53), min_size=1, max_size=3),
        state_version=st.none() | st.fixed_dictionaries({"presence": st.integers(0, 10**6), "health": st.integers(0, 10**6)}),
    )
    def test_same_bytes_as_the_whole_frame(self, name, payload, seqs, state_version):
        """EventFrame(...).data(seq) == the whole frame dumped (key order type, event, payload, seq, stateVersion), per seq."""
        shared = frames.EventFrame(name, payload, state_version)
        for seq in seqs:
            frame = {"type": "event", "event": name}
            if payload is not None:
                frame["payload"] = payload
            if seq is not None:
                frame["seq"] = seq
            if state_version is not None:
                frame["stateVersion"] = state_version
            whole = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
            self.assertEqual(shared.data(seq), whole.encode("utf-8"))
            self.assertEqual(frames.event(name, payload, seq, state_version), whole)
