"""
Discord's sans-IO parts on a fake clock: the gateway session (HELLO,
heartbeats with jitter, zombies, op 1/7/9, close codes, the send limit),
REST rate-limit buckets, and MESSAGE_CREATE as inbound messages.
"""

from __future__ import annotations

import json
import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from openclaw.channels.discord.events import Directory, normalize
from openclaw.channels.discord.gateway import (
    AGAIN,
    FRESH,
    SEND_LIMIT,
    SEND_RESERVE,
    STOP,
    GatewaySession,
    SessionState,
    intents_for,
)
from openclaw.channels.discord.ratelimit import RateLimits
from openclaw.channels.discord.rest import map_error
from openclaw.channels.interfaces import CHANNEL, DM, THREAD, AuthFailed, ConfigProblem, Rejected, Unreachable

BOT = "900000000000000001"
TOKEN = "bot-token-value"


class FixedRandom(random.Random):
    """random() and uniform() give what the test says."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.value


class Harness:
    """A session wired to lists instead of a socket."""

    def __init__(self, state: SessionState | None = None, jitter: float = 0.25, intents: int = intents_for(True)) -> None:
        self.clock = Clock()
        self.state = state or SessionState()
        self.frames: list[dict] = []
        self.closes: list[tuple[int, str, bool]] = []
        self.events: list[tuple[str, object, int | None]] = []
        self.session = GatewaySession(
            self.clock,
            TOKEN,
            intents,
            self.state,
            lambda text: self.frames.append(json.loads(text)),
            lambda code, reason, abort: self.closes.append((code, reason, abort)),
            lambda name, data, seq: self.events.append((name, data, seq)),
            FixedRandom(jitter),
        )
        self.session.opened()

    def feed(self, frame: dict) -> None:
        self.session.received(json.dumps(frame).encode())

    def hello(self, interval_ms: int = 40000) -> None:
        self.feed({"op": 10, "d": {"heartbeat_interval": interval_ms}})

    def ready(self, seq: int = 1) -> None:
        self.feed({"op": 0, "t": "READY", "s": seq, "d": {"user": {"id": BOT, "username": "bot"}, "session_id": "sess-1", "resume_gateway_url": "wss://resume.example/"}})

    def ops(self, op: int) -> list[dict]:
        return [f for f in self.frames if f["op"] == op]


class GatewaySessionTests(SynchronousTestCase):
    def test_identify_with_intents(self):
        """After HELLO a fresh session IDENTIFYs with GUILDS|GUILD_MESSAGES|DIRECT_MESSAGES|MESSAGE_CONTENT; without messageContent the privileged bit is left out."""
        h = Harness()
        h.hello()
        (identify,) = h.ops(2)
        self.assertEqual(identify["d"]["token"], TOKEN)
        self.assertEqual(identify["d"]["intents"], (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15))
        self.assertEqual(set(identify["d"]["properties"]), {"os", "browser", "device"})
        self.assertEqual(intents_for(False) & (1 << 15), 0)

    def test_heartbeat_jitter_then_interval(self):
        """The first beat goes after interval × random(), the next ones every interval, each with the last sequence number."""
        h = Harness(jitter=0.25)
        h.hello(40000)
        h.clock.advance(9.99)
        self.assertEqual(h.ops(1), [])
        h.clock.advance(0.01)
        self.assertEqual(h.ops(1), [{"op": 1, "d": None}])
        h.feed({"op": 11})
        h.ready(seq=5)
        h.clock.advance(39.9)
        self.assertEqual(len(h.ops(1)), 1)
        h.clock.advance(0.1)
        self.assertEqual(h.ops(1)[-1], {"op": 1, "d": 5})

    def test_missed_ack_is_a_zombie(self):
        """A beat due while the last one has no ACK closes the connection with a non-1000 code (aborting it), and the ending says resume."""
        h = Harness(jitter=0.0)
        h.hello(1000)
        h.ready()
        h.clock.advance(0)  # first beat at once (jitter 0)
        self.assertEqual(len(h.ops(1)), 1)
        h.clock.advance(1.0)  # no ACK came
        self.assertEqual(len(h.ops(1)), 1)
        ((code, reason, abort),) = h.closes
        self.assertNotIn(code, (1000, 1001))
        self.assertTrue(abort)
        self.assertIn("zombie", reason)
        ending = h.session.closed(1006)
        self.assertEqual(ending.action, AGAIN)
        self.assertEqual(h.state.session_id, "sess-1")

    def test_acked_beats_keep_going(self):
        """With every beat ACKed, the connection stays up through many intervals; the latency is measured."""
        h = Harness(jitter=0.5)
        h.hello(1000)
        for _ in range(10):
            h.clock.advance(0.5)
            h.clock.advance(0.01)
            h.feed({"op": 11})
            h.clock.advance(0.49)
        self.assertEqual(h.closes, [])
        self.assertGreaterEqual(len(h.ops(1)), 9)
        self.assertAlmostEqual(h.session.latency, 0.01, places=5)

    def test_server_asks_for_a_beat(self):
        """op 1 from the server is answered with a heartbeat at once."""
        h = Harness(jitter=0.9)
        h.hello(40000)
        h.feed({"op": 1, "d": None})
        self.assertEqual(h.ops(1), [{"op": 1, "d": None}])

    def test_resume_with_seq(self):
        """A known session RESUMEs with the last handled sequence number instead of identifying."""
        h = Harness(SessionState("sess-9", "wss://resume.example/", 41, 40))
        h.hello()
        self.assertEqual(h.ops(2), [])
        self.assertEqual(h.ops(6), [{"op": 6, "d": {"token": TOKEN, "session_id": "sess-9", "seq": 40}}])
        h.feed({"op": 0, "t": "RESUMED", "s": 42, "d": None})
        self.assertTrue(h.session.ready)
        self.assertTrue(h.session.resumed)

    def test_ready_keeps_the_session(self):
        """READY gives the session id and resume URL, which the dispatch sees in order."""
        h = Harness()
        h.hello()
        h.ready(seq=1)
        self.assertEqual((h.state.session_id, h.state.resume_url, h.state.seq), ("sess-1", "wss://resume.example/", 1))
        self.assertEqual(h.events[0][0], "READY")
        self.assertTrue(h.session.ready)

    def test_reconnect_op7(self):
        """op 7 closes with a non-1000 code and the ending says resume now."""
        h = Harness()
        h.hello()
        h.ready()
        h.feed({"op": 7, "d": None})
        self.assertNotIn(h.closes[0][0], (1000, 1001))
        self.assertEqual(h.session.closed(4000).action, AGAIN)

    def test_invalid_session_resumable(self):
        """op 9 with d: true keeps the session and resumes."""
        h = Harness()
        h.hello()
        h.ready()
        h.feed({"op": 9, "d": True})
        ending = h.session.closed(4000)
        self.assertEqual((ending.action, ending.delay), (AGAIN, 0.0))
        self.assertTrue(h.state.session_id)

    def test_invalid_session_not_resumable(self):
        """op 9 with d: false forgets the session and waits 1–5 s before identifying afresh."""
        for jitter, wait in ((0.0, 1.0), (1.0, 5.0), (0.5, 3.0)):
            h = Harness(jitter=jitter)
            h.hello()
            h.ready()
            h.feed({"op": 9, "d": False})
            ending = h.session.closed(4000)
            self.assertEqual((ending.action, ending.delay), (FRESH, wait))
            self.assertFalse(h.state.resumable)

    def test_close_codes(self):
        """4004 stops (bad token); 4010-4014 stop with the fix (4014 names the Message Content intent); 4007/4009 identify afresh; 4000-4003, 4005, 4008 and drops resume."""
        for code, action, kind in (
            (4004, STOP, AuthFailed),
            (4010, STOP, ConfigProblem),
            (4011, STOP, ConfigProblem),
            (4012, STOP, ConfigProblem),
            (4013, STOP, ConfigProblem),
            (4014, STOP, ConfigProblem),
            (4007, FRESH, None),
            (4009, FRESH, None),
            (4000, AGAIN, None),
            (4001, AGAIN, None),
            (4002, AGAIN, None),
            (4003, AGAIN, None),
            (4005, AGAIN, None),
            (4008, AGAIN, None),
            (1006, AGAIN, None),
            (1000, AGAIN, None),
            (None, AGAIN, None),
        ):
            h = Harness()
            h.hello()
            h.ready()
            ending = h.session.closed(code)
            self.assertEqual(ending.action, action, code)
            if kind is not None:
                self.assertIsInstance(ending.error, kind)
        h = Harness()
        message = str(h.session.closed(4014).error)
        self.assertIn("Message Content Intent", message)
        self.assertIn("channels.discord.intents.messageContent", message)
        self.assertIn("channels.discord.token", str(Harness().session.closed(4004).error))

    def test_no_hello_times_out(self):
        """A server that never sends HELLO is given up on (resume), and so is one that never sends READY."""
        h = Harness()
        h.clock.advance(20)
        self.assertEqual(len(h.closes), 1)
        self.assertEqual(h.session.closed(1006).action, AGAIN)
        h = Harness()
        h.hello()
        h.clock.advance(30)
        self.assertIn("READY", h.closes[0][1])

    def test_send_limit(self):
        """Sends stay within 120 per 60 s: beyond the window's share (a few kept for heartbeats) they wait for the window; heartbeats still go."""
        h = Harness(jitter=0.99)
        h.hello(1_000_000)
        h.ready()
        for i in range(SEND_LIMIT):
            h.session.send({"op": 3, "d": {"n": i}})
        self.assertEqual(len(h.ops(3)), SEND_LIMIT - SEND_RESERVE - 1)  # IDENTIFY counted too
        h.feed({"op": 1, "d": None})
        self.assertEqual(len(h.ops(1)), 1)
        h.clock.advance(60)
        self.assertEqual(len(h.ops(3)), SEND_LIMIT)
        self.assertEqual([f["d"]["n"] for f in h.ops(3)], list(range(SEND_LIMIT)))

    def test_bad_frames_are_ignored(self):
        """A frame that is not JSON (or not an object) changes nothing."""
        h = Harness()
        h.session.received(b"{nope")
        h.session.received(b"[1, 2]")
        h.hello()
        self.assertEqual(len(h.ops(2)), 1)

    def test_cursor_round_trip(self):
        """The journal cursor holds the session id, the handled sequence and the resume URL; junk gives a fresh state."""
        state = SessionState("s", "wss://r/", 10, 9)
        self.assertEqual(SessionState.from_cursor(state.cursor()), SessionState("s", "wss://r/", 9, 9))
        for junk in (None, 5, {"sessionId": ""}, {"sessionId": "s", "seq": "9"}, {"sessionId": "s", "seq": True}):
            self.assertFalse(SessionState.from_cursor(junk).resumable)


class RateLimitTests(SynchronousTestCase):
    ROUTE = "POST /channels/{id}/messages"

    def test_exhausted_bucket_waits_for_reset(self):
        """Remaining 0 with Reset-After 2.5 makes the next request on that channel wait 2.5 s; another channel does not wait."""
        limits = RateLimits()
        limits.update(self.ROUTE, "1", {"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "2.5", "x-ratelimit-bucket": "abc", "x-ratelimit-limit": "5"}, 100.0)
        self.assertEqual(limits.wait(self.ROUTE, "1", 100.0), 2.5)
        self.assertEqual(limits.wait(self.ROUTE, "2", 100.0), 0.0)
        self.assertEqual(limits.wait(self.ROUTE, "1", 102.5), 0.0)

    def test_local_count(self):
        """Requests in flight count down the bucket, so a burst stops before Discord says no."""
        limits = RateLimits()
        limits.update(self.ROUTE, "1", {"x-ratelimit-remaining": "2", "x-ratelimit-reset-after": "5", "x-ratelimit-limit": "5"}, 0.0)
        limits.taken(self.ROUTE, "1", 0.0)
        limits.taken(self.ROUTE, "1", 0.0)
        self.assertEqual(limits.wait(self.ROUTE, "1", 0.0), 5.0)
        limits.taken(self.ROUTE, "1", 6.0)  # after the reset the bucket is full again
        self.assertEqual(limits.wait(self.ROUTE, "1", 6.0), 0.0)

    def test_429_holds_the_route_or_everything(self):
        """A 429 holds its route for retry_after (a float); a global one holds every route."""
        limits = RateLimits()
        limits.limited(self.ROUTE, "1", 0.75, False, 10.0)
        self.assertEqual(limits.wait(self.ROUTE, "1", 10.0), 0.75)
        self.assertEqual(limits.wait("POST /channels/{id}/typing", "1", 10.0), 0.0)
        limits.limited(self.ROUTE, "1", 3.0, True, 10.0)
        self.assertEqual(limits.wait("GET /users/@me", "", 10.0), 3.0)

    def test_invalid_requests_capped(self):
        """Too many 401/403/429 in ten minutes hold every request until the oldest leaves the window."""
        limits = RateLimits(invalid_limit=3)
        for t in (0.0, 1.0, 2.0):
            limits.invalid(t)
        self.assertEqual(limits.wait("GET /users/@me", "", 3.0), 597.0)
        self.assertEqual(limits.wait("GET /users/@me", "", 600.0), 0.0)

    def test_buckets_bounded(self):
        """Buckets are remembered up to a limit."""
        limits = RateLimits(bucket_limit=10)
        for i in range(50):
            limits.update(self.ROUTE, str(i), {"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "9"}, 0.0)
        self.assertEqual(len(limits._buckets), 10)

    def test_error_mapping(self):
        """401 stops the account; 50001/50013/10003 and other 403s drop the message; other 4xx reject it; 5xx are retried."""
        self.assertIsInstance(map_error("x", 401, {"message": "401: Unauthorized", "code": 0}), AuthFailed)
        for status, code in ((403, 50001), (403, 50013), (404, 10003), (403, 50007), (403, 0)):
            self.assertIsInstance(map_error("x", status, {"message": "m", "code": code}), Unreachable)
        self.assertIn("Send Messages", str(map_error("x", 403, {"message": "Missing Permissions", "code": 50013})))
        self.assertIsInstance(map_error("x", 400, {"message": "Invalid Form Body", "code": 50035}), Rejected)
        error = map_error("x", 502, None)
        self.assertNotIsInstance(error, (Rejected, Unreachable, AuthFailed))


class NormalizeTests(SynchronousTestCase):
    def setUp(self):
        self.directory = Directory()
        self.directory.guild({"id": "80", "name": "Server", "channels": [{"id": "70", "type": 0, "name": "general"}], "threads": [{"id": "71", "type": 11, "parent_id": "70", "name": "t"}]})

    def message(self, **fields):
        base = {"id": "1300000000000000000", "channel_id": "50", "author": {"id": "42", "username": "alice", "global_name": "Alice"}, "content": "hi", "type": 0, "mentions": []}
        return {**base, **fields}

    def test_dm(self):
        """No guild_id: a DM in the DM channel, never counted as a mention."""
        m = normalize(self.message(), BOT, self.directory)
        self.assertEqual((m.chat_type, m.chat_id, m.sender_id, m.sender_username, m.sender_name), (DM, "50", "42", "alice", "Alice"))
        self.assertFalse(m.mentions_me)
        self.assertGreater(m.ts_ms, 1420070400000)

    def test_guild_mentions(self):
        """In a guild: a mention by the mentions array, by <@id> or <@!id> text, or by replying to the bot; the text shows @names."""
        plain = normalize(self.message(guild_id="80", channel_id="70"), BOT, self.directory)
        self.assertEqual((plain.chat_type, plain.chat_id, plain.chat_title), (CHANNEL, "70", "Server #general"))
        self.assertFalse(plain.mentions_me)
        listed = normalize(self.message(guild_id="80", channel_id="70", content=f"<@{BOT}> hi", mentions=[{"id": BOT, "username": "clawbot"}]), BOT, self.directory)
        self.assertTrue(listed.mentions_me)
        self.assertEqual(listed.text, "@clawbot hi")
        self.assertTrue(normalize(self.message(guild_id="80", channel_id="70", content=f"<@!{BOT}> hi"), BOT, self.directory).mentions_me)
        reply = normalize(self.message(guild_id="80", channel_id="70", referenced_message={"id": "9", "author": {"id": BOT, "username": "clawbot"}, "content": "earlier"}), BOT, self.directory)
        self.assertTrue(reply.mentions_me)
        self.assertTrue(reply.reply_to.from_me)
        self.assertEqual(reply.reply_to.text, "earlier")

    def test_thread(self):
        """A message in a known thread belongs to the parent channel with the thread as `thread`."""
        m = normalize(self.message(guild_id="80", channel_id="71"), BOT, self.directory)
        self.assertEqual((m.chat_id, m.thread_id, m.thread_kind), ("70", "71", THREAD))

    def test_dropped(self):
        """Own messages, other bots and webhooks (unless allowBots), system messages, empty ones and junk give nothing."""
        self.assertIsNone(normalize(self.message(author={"id": BOT, "username": "me", "bot": True}), BOT, self.directory))
        bot = self.message(author={"id": "55", "username": "other", "bot": True})
        self.assertIsNone(normalize(bot, BOT, self.directory))
        self.assertIsNotNone(normalize(bot, BOT, self.directory, allow_bots=True))
        self.assertIsNone(normalize(self.message(webhook_id="3"), BOT, self.directory))
        self.assertIsNone(normalize(self.message(type=7), BOT, self.directory))
        self.assertIsNone(normalize(self.message(content=""), BOT, self.directory))
        self.assertIsNotNone(normalize(self.message(content="", attachments=[{"content_type": "image/png"}]), BOT, self.directory))
        for junk in (None, [], {"id": "x"}, self.message(id="not-a-number"), self.message(author=None)):
            self.assertIsNone(normalize(junk, BOT, self.directory))

    def test_directory_follows_events(self):
        """Threads created or synced later are learned from THREAD_* events; deleted ones are forgotten; the directory is bounded."""
        self.directory.event("THREAD_CREATE", {"id": "72", "type": 12, "guild_id": "80", "parent_id": "70"})
        self.assertTrue(self.directory.get("72").is_thread)
        self.directory.event("THREAD_DELETE", {"id": "72", "type": 12})
        self.assertIsNone(self.directory.get("72"))
        self.directory.event("THREAD_LIST_SYNC", {"guild_id": "80", "threads": [{"id": "73", "type": 11, "parent_id": "70"}]})
        self.assertEqual(self.directory.get("73").parent_id, "70")
        small = Directory(limit=3)
        for i in range(10):
            small.channel({"id": str(i), "type": 0})
        self.assertEqual([small.get(str(i)) is not None for i in range(10)], [False] * 7 + [True] * 3)
