"""
Slack's sans-IO parts: error mapping, events as messages, Slack markup in
and mrkdwn out, request signing, targets, account config, and the order
of keeping an envelope and acknowledging it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from openclaw.channels.interfaces import (
    CHANNEL,
    DM,
    GROUP,
    THREAD,
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IChannel,
    IInbound,
    InboundMessage,
    Rejected,
    RetryAfter,
    Unreachable,
)
from openclaw.channels.slack.api import map_error, retry_after
from openclaw.channels.slack.channel import SlackChannel
from openclaw.channels.slack.events import BotUser, Recent, normalize, plain_text
from openclaw.channels.slack.format import to_mrkdwn
from openclaw.channels.slack.platform import SlackPlatform
from openclaw.channels.slack.signing import check, signature
from openclaw.channels.slack.socket import Link, _Conn
from openclaw.config.schema import validate

BOT = BotUser("UBOT0001", "clawbot", "BBOT0001", "T1", "Team")


def callback(event: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    return {"type": "event_callback", "event_id": event_id, "event": event}


def message(**fields: Any) -> dict[str, Any]:
    return callback({"type": "message", "channel": "C1", "user": "UBOB", "text": "hi", "ts": "1712345678.000100", "channel_type": "channel", **fields})


class ErrorMapTests(TestCase):
    def test_slack_errors_steer_the_framework(self):
        """Each error code of Slack's table maps to the framework error that decides drop, stop, wait or retry."""
        table = {
            "channel_not_found": Unreachable,
            "not_in_channel": Unreachable,
            "is_archived": Unreachable,
            "restricted_action_read_only_channel": Unreachable,
            "msg_too_long": Rejected,
            "no_text": Rejected,
            "invalid_blocks": Rejected,
            "invalid_auth": AuthFailed,
            "not_authed": AuthFailed,
            "token_revoked": AuthFailed,
            "missing_scope": AuthFailed,
            "ratelimited": RetryAfter,
        }
        for code, kind in table.items():
            self.assertIs(type(map_error("chat.postMessage", code)), kind, code)
        transient = map_error("chat.postMessage", "internal_error")
        self.assertIs(type(transient), ChannelError)

    def test_auth_errors_name_the_token_to_fix(self):
        """An auth error says which token and what it should be; a missing scope names it."""
        self.assertIn("channels.slack.appToken", str(map_error("apps.connections.open", "invalid_auth", "appToken")))
        self.assertIn("channels.slack.botToken", str(map_error("auth.test", "invalid_auth")))
        self.assertIn("chat:write", str(map_error("chat.postMessage", "missing_scope", needed="chat:write")))

    def test_retry_after_header(self):
        """Retry-After seconds are used; junk or absurd values fall back to 5 s."""
        self.assertEqual(retry_after(b"7"), 7.0)
        self.assertEqual(retry_after(None), 5.0)
        self.assertEqual(retry_after(b"soon"), 5.0)
        self.assertEqual(retry_after("-3"), 5.0)


class EventTests(TestCase):
    def test_channel_message(self):
        """A channel message: ids, ts as message id, type, sender profile, readable text, time."""
        m = normalize(message(text="hey <@UBOT0001> see <https://x.example/a?b=1&amp;c=2|the doc> in <#C2|general> &lt;3", user_profile={"display_name": "Bob", "name": "bob"}), BOT)
        assert m is not None
        self.assertEqual((m.chat_id, m.chat_type, m.sender_id, m.message_id, m.sender_name, m.sender_username), ("C1", CHANNEL, "UBOB", "1712345678.000100", "Bob", "bob"))
        self.assertEqual(m.text, "hey @clawbot see the doc (https://x.example/a?b=1&c=2) in #general <3")
        self.assertTrue(m.mentions_me)
        self.assertEqual(m.ts_ms, 1712345678000)
        self.assertEqual(m.key, "C1:1712345678.000100")

    def test_types(self):
        """im → dm, mpim → group, channel and group (private channel) → channel; app_mention (no channel_type) follows what a message event said, else the id's prefix."""
        kinds = {"im": DM, "mpim": GROUP, "channel": CHANNEL, "group": CHANNEL}
        for slack, ours in kinds.items():
            m = normalize(message(channel_type=slack, channel="G9"), BOT)
            assert m is not None
            self.assertEqual(m.chat_type, ours, slack)
        known: Recent[str, str] = Recent(10)
        mention = callback({"type": "app_mention", "channel": "G7", "user": "UBOB", "text": "<@UBOT0001> hi", "ts": "1.2"})
        self.assertEqual(normalize(mention, BOT, known).chat_type, CHANNEL)  # type: ignore[union-attr]
        normalize(message(channel="G7", channel_type="mpim", ts="1.1"), BOT, known)
        m = normalize(mention, BOT, known)
        assert m is not None
        self.assertEqual((m.chat_type, m.mentions_me), (GROUP, True))
        dm = normalize(callback({"type": "app_mention", "channel": "D5", "user": "UBOB", "text": "x", "ts": "1.3"}), BOT)
        self.assertEqual(dm.chat_type, DM)  # type: ignore[union-attr]

    def test_ignored(self):
        """Edits, joins, deletions, bot messages, our own user, hidden events, other event types and broken payloads give nothing."""
        for fields in ({"subtype": "message_changed"}, {"subtype": "channel_join"}, {"subtype": "message_deleted"}, {"subtype": "bot_message"}, {"bot_id": "B2"}, {"user": "UBOT0001"}, {"hidden": True}, {"ts": "nope"}, {"user": None}):
            self.assertIsNone(normalize(message(**fields), BOT), fields)
        self.assertIsNone(normalize(callback({"type": "reaction_added", "user": "UBOB"}), BOT))
        self.assertIsNone(normalize({"type": "url_verification"}, BOT))
        self.assertIsNone(normalize("junk", BOT))
        for subtype in ("file_share", "thread_broadcast", "me_message"):
            self.assertIsNotNone(normalize(message(subtype=subtype), BOT), subtype)

    def test_threads_and_mentions(self):
        """thread_ts is the thread id; a thread reply under the bot's message counts as a mention; a DM never needs one; files are media."""
        m = normalize(message(thread_ts="1712345600.000001", parent_user_id="UBOT0001"), BOT)
        assert m is not None
        self.assertEqual((m.thread_id, m.thread_kind, m.mentions_me), ("1712345600.000001", THREAD, True))
        m = normalize(message(thread_ts="1712345600.000001", parent_user_id="UOTHER"), BOT)
        self.assertFalse(m.mentions_me)  # type: ignore[union-attr]
        m = normalize(message(channel_type="im", channel="D1", text="<@UBOT0001>"), BOT)
        self.assertFalse(m.mentions_me)  # type: ignore[union-attr]
        m = normalize(message(subtype="file_share", files=[{"mimetype": "image/png"}, {"mimetype": "application/pdf"}]), BOT)
        self.assertEqual(m.media, ("photo", "document"))  # type: ignore[union-attr]

    def test_plain_text(self):
        """Slack markup: users, special mentions, mailto, bare links; entities decoded last."""
        self.assertEqual(plain_text("<@U1|ann> <@U2> <!here> <!subteam^S1|@ops> <mailto:a@b.c|a@b.c> <https://x.y> a &amp;lt; b"), "@ann @U2 @here @ops a@b.c https://x.y a &lt; b")

    def test_recent_is_bounded(self):
        """The memory keeps the newest entries only."""
        recent: Recent[int, bool] = Recent(3)
        for i in range(10):
            recent.put(i, True)
        self.assertEqual(len(recent), 3)
        self.assertNotIn(0, recent)
        self.assertIn(9, recent)


class MrkdwnTests(TestCase):
    def test_conversions(self):
        """Bold, italics, strike, links, headings, bullets and code become mrkdwn; &, <, > are escaped everywhere, code included."""
        source = "# Title\n**bold** and *it* and ~~gone~~, [docs](https://d.example/?a=1&b=2)\n- item\n`a<b`\n```python\nif a < b && c:\n```"
        self.assertEqual(
            to_mrkdwn(source),
            "*Title*\n*bold* and _it_ and ~gone~, <https://d.example/?a=1&amp;b=2|docs>\n• item\n`a&lt;b`\n```\nif a &lt; b &amp;&amp; c:\n```",
        )

    def test_model_cannot_ping_the_channel(self):
        """Raw Slack markup from the model stays text: no @channel, no user mention, no link."""
        self.assertEqual(to_mrkdwn("<!channel> <@U123> <https://evil|safe>"), "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|safe&gt;")

    @given(st.text(max_size=400))
    def test_never_more_than_five_times_longer(self, text):
        """Whatever the model writes, the mrkdwn is at most five times as long (so 8000 characters fit Slack's 40,000) and has no raw < or >."""
        out = to_mrkdwn(text)
        self.assertLessEqual(len(out), 5 * len(text) + 8)
        stripped = out.replace("&lt;", "").replace("&gt;", "")
        links = [part for part in stripped.split("<") if part][1:] if "<" in stripped else []
        self.assertTrue(all(p.startswith("http") for p in links), out)


class SigningTests(TestCase):
    def test_check(self):
        """A right signature within five minutes passes; wrong, missing, stale, malformed, or a blank secret fail."""
        body = b'{"type":"event_callback"}'
        good = signature("s3cret", "1700000000", body).encode()
        self.assertIsNone(check("s3cret", b"1700000000", good, body, 1700000100))
        self.assertEqual(check("s3cret", b"1700000000", good, body + b" ", 1700000100), "bad signature")
        self.assertEqual(check("other", b"1700000000", good, body, 1700000100), "bad signature")
        self.assertEqual(check("s3cret", b"1700000000", good, body, 1700000400), "stale timestamp")
        self.assertEqual(check("s3cret", b"1700000000", good, body, 1699999600), "stale timestamp")
        self.assertEqual(check("s3cret", None, good, body, 1700000100), "unsigned request")
        self.assertEqual(check("s3cret", b"1700000000", None, body, 1700000100), "unsigned request")
        self.assertEqual(check("s3cret", b"17e8", good, body, 1700000100), "bad timestamp")
        self.assertEqual(check("  ", b"1700000000", signature("  ", "1700000000", body).encode(), body, 1700000100), "no signing secret is configured")

    def test_known_vector(self):
        """Slack's documented example request signs to its documented signature."""
        body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        self.assertEqual(signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body), "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


@implementer(IInbound)
class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.events: list[str] = []
        self.messages: list[InboundMessage] = []
        self.fail = fail

    def cursor(self) -> Any:
        return None

    def received(self, message: InboundMessage, cursor: Any = None) -> bool:
        self.events.append("received")
        if self.fail is not None:
            raise self.fail
        self.messages.append(message)
        return True

    def advance(self, cursor: Any) -> None:
        pass

    def connected(self) -> None:
        self.events.append("connected")

    def problem(self, text: str | None) -> None:
        pass


def account(config: dict[str, Any], env: dict[str, str] | None = None, account_id: str = "default") -> AccountConfig:
    return AccountConfig("slack", account_id, config, env or {}, Path("."))


class ChannelUnitTests(TestCase):
    def channel(self, **config: Any) -> SlackChannel:
        built = SlackPlatform().build(account({"botToken": "xoxb-1", "appToken": "xapp-1", **config}), ChannelHost(Clock(), routes=None))  # type: ignore[arg-type]
        assert isinstance(built, SlackChannel)
        built.bot = BOT
        self.addCleanup(built.close)
        return built

    def test_interface(self):
        """The channel provides IChannel; its secrets are both tokens and the signing secret."""
        channel = self.channel(signingSecret="sig")
        verifyObject(IChannel, channel)
        self.assertEqual(channel.secrets(), ("xoxb-1", "xapp-1", "sig"))
        self.assertEqual((channel.limits.chunk, channel.limits.typing_every, channel.limits.reply_mode), (4000, None, "off"))

    def test_ack_only_after_the_message_is_kept(self):
        """An envelope is acknowledged after received() returned; when it raises there is no ack (Slack resends); a known event_id is acknowledged without keeping it twice."""
        channel = self.channel()
        envelope = {"envelope_id": "e1", "type": "events_api", "payload": message(channel_type="im", channel="D1")}
        inbound = Recorder(OSError("disk full"))
        self.assertIsNone(channel._envelope(inbound, envelope))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        inbound = Recorder()
        self.assertEqual(channel._envelope(inbound, envelope), {"envelope_id": "e1"})
        self.assertEqual(inbound.events, ["received"])
        self.assertEqual(channel._envelope(inbound, {**envelope, "retry_attempt": 1}), {"envelope_id": "e1"})
        self.assertEqual(inbound.events, ["received"])
        other = {"envelope_id": "e2", "type": "events_api", "payload": callback({"type": "reaction_added"}, "Ev9")}
        self.assertEqual(channel._envelope(inbound, other), {"envelope_id": "e2"})
        slash = {"envelope_id": "e3", "type": "slash_commands", "accepts_response_payload": True, "payload": {"command": "/x"}}
        self.assertIn("payload", channel._envelope(inbound, slash))  # type: ignore[operator]

    def test_targets(self):
        """user:/channel:/slack: prefixes and raw ids; a thread suffix or id; names and bad ts are refused."""
        channel = self.channel()
        self.assertEqual(channel.parse_target("user:U123ABC").chat_id, "U123ABC")
        self.assertEqual(channel.parse_target("slack:channel:C123ABC").chat_id, "C123ABC")
        target = channel.parse_target("C123ABC:thread:1712345678.000100")
        self.assertEqual((target.chat_id, target.thread_id), ("C123ABC", "1712345678.000100"))
        self.assertEqual(channel.parse_target("D123ABC", reply_to="1.2").reply_to, "1.2")
        for bad in ("#general", "@bob", "c123", "", "C123ABC:thread:abc"):
            self.assertRaises(ValueError, channel.parse_target, bad)
        self.assertRaises(ValueError, channel.parse_target, "C123ABC", "tomorrow")

    def test_typing_and_polls_unsupported(self):
        """Typing and polls fail as unsupported (Slack has neither for bots)."""
        channel = self.channel()
        self.failureResultOf(channel.typing(channel.parse_target("C123ABC")))
        self.failureResultOf(channel.poll(channel.parse_target("C123ABC"), "q", ["a", "b"], False, None))


class PlatformTests(TestCase):
    def test_tokens_and_modes(self):
        """Tokens from config or (default account only) the environment; each missing or swapped token, a bad mode or apiBase is a config problem naming the fix."""
        platform = SlackPlatform()
        host = ChannelHost(Clock(), routes=None)  # type: ignore[arg-type]
        env = {"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_APP_TOKEN": "xapp-env"}
        self.assertTrue(platform.configured(account({}, env)))
        self.assertFalse(platform.configured(account({}, env, "work")))
        channel = platform.build(account({}, env), host)
        self.addCleanup(channel.close)
        self.assertEqual((channel.snapshot()["botTokenSource"], channel.snapshot()["appTokenSource"]), ("env", "env"))
        problems = {
            "no appToken": {"botToken": "xoxb-1"},
            "holds an app-level token": {"botToken": "xapp-1", "appToken": "xapp-2"},
            "holds a user token": {"botToken": "xoxp-1", "appToken": "xapp-2"},
            "holds a bot token": {"botToken": "xoxb-1", "appToken": "xoxb-2"},
            "mode must be": {"botToken": "xoxb-1", "appToken": "xapp-2", "mode": "rtm"},
            "apiBase": {"botToken": "xoxb-1", "appToken": "xapp-2", "apiBase": "ftp://x"},
        }
        for words, config in problems.items():
            with self.assertRaises(ConfigProblem) as caught:
                platform.build(account(config), host)
            self.assertIn(words, str(caught.exception))
            self.assertNotIn("xoxb-2", str(caught.exception))
        http = platform.build(account({"botToken": "xoxb-1", "mode": "http"}), host)
        self.addCleanup(http.close)
        self.assertEqual(http.snapshot()["webhookPath"], "/slack/events")
        other = platform.build(account({"botToken": "xoxb-1", "mode": "http"}, account_id="work"), host)
        self.addCleanup(other.close)
        self.assertEqual(other.snapshot()["webhookPath"], "/slack/events-work")

    def test_schema_knows_the_keys(self):
        """channels.slack and its accounts validate; a wrong mode or timeout is an error, not a silent default."""
        config = {"channels": {"slack": {"botToken": "xoxb-1", "appToken": "xapp-1", "mode": "socket", "apiBase": "http://127.0.0.1:1/api", "groups": {"C1": {"requireMention": False}}, "accounts": {"work": {"mode": "http", "signingSecret": "s", "webhookPath": "/slack/work"}}}}}
        self.assertEqual(validate(config), ([], []))
        errors, _ = validate({"channels": {"slack": {"mode": "rtm", "timeoutSeconds": 0}}})
        self.assertEqual(sorted(e.path for e in errors), ["channels.slack.mode", "channels.slack.timeoutSeconds"])


class StubSocket:
    """What Link uses of an autobahn protocol."""

    STATE_OPEN, STATE_CLOSED = 3, 0

    def __init__(self) -> None:
        self.state = self.STATE_OPEN
        self.sent: list[bytes] = []
        self.closed: list[int] = []
        self.transport = None

    def sendMessage(self, payload: bytes) -> None:
        self.sent.append(payload)

    def sendClose(self, code: int) -> None:
        self.closed.append(code)


class LinkFrameTests(TestCase):
    def link(self) -> tuple[Link, _Conn, StubSocket, list[dict[str, Any]]]:
        envelopes: list[dict[str, Any]] = []

        def on_envelope(envelope: dict[str, Any]) -> dict[str, Any] | None:
            envelopes.append(envelope)
            return None if envelope.get("type") == "keep-failed" else {"envelope_id": envelope["envelope_id"]}

        link = Link(Clock(), lambda: None, on_envelope, lambda hello: None)  # type: ignore[arg-type,return-value]
        socket = StubSocket()
        conn = _Conn(1, socket)  # type: ignore[arg-type]
        link.conns.append(conn)
        link._frame(conn, socket, b'{"type": "hello"}')  # type: ignore[arg-type]
        return link, conn, socket, envelopes

    JSON = st.recursive(
        st.none() | st.integers() | st.text(max_size=20) | st.sampled_from(["hello", "disconnect", "events_api", "refresh_requested", "link_disabled"]),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "envelope_id", "reason", "payload"]), inner, max_size=4),
        max_leaves=8,
    )

    @given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
    def test_garbage_frames_never_crash(self, payload):
        """Whatever Slack (or a broken proxy) sends, the link neither crashes nor acknowledges something without an envelope id."""
        link, conn, socket, envelopes = self.link()
        link._frame(conn, socket, payload)  # type: ignore[arg-type]
        self.assertTrue(all(isinstance(e["envelope_id"], str) and e["envelope_id"] for e in envelopes))
        link.done.addErrback(lambda f: None)

    def test_acks_and_disconnects(self):
        """An envelope is acknowledged on its connection (not when keeping failed); a disconnect for an unknown reason closes that connection and, with none left, ends the session."""
        link, conn, socket, envelopes = self.link()
        self.assertTrue(conn.up)
        link._frame(conn, socket, b'{"envelope_id": "e1", "type": "events_api"}')  # type: ignore[arg-type]
        link._frame(conn, socket, b'{"envelope_id": "e2", "type": "keep-failed"}')  # type: ignore[arg-type]
        self.assertEqual(socket.sent, [b'{"envelope_id": "e1"}'])
        link._frame(conn, socket, b'{"type": "disconnect", "reason": "too_many_websockets"}')  # type: ignore[arg-type]
        self.assertEqual(socket.closed, [1000])
        failure = self.failureResultOf(link.done, ChannelError)
        self.assertIn("too_many_websockets", failure.getErrorMessage())

    def test_link_disabled(self):
        """disconnect link_disabled ends the session with the config problem that stops the account."""
        link, conn, socket, _ = self.link()
        link._frame(conn, socket, b'{"type": "disconnect", "reason": "link_disabled"}')  # type: ignore[arg-type]
        self.failureResultOf(link.done, ConfigProblem)
