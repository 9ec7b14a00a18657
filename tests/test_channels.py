"""
The channel framework on a fake clock, with an in-memory channel and agent:
supervision and backoff, the journal across restarts, dedupe, delivery
queues and retry hints, typing, pairing, and isolation of failures.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import attrs

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import alsoProvides, implementer
from zope.interface.verify import verifyObject

from openclaw.channels.account import AccountDeps, AccountService
from openclaw.channels.inbox import Inbox
from openclaw.channels.interfaces import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IChannel,
    IConfigHint,
    IInbound,
    InboundMessage,
    IPlatform,
    ITypingStop,
    Limits,
    Moved,
    Outbound,
    Receipt,
    RetryAfter,
    Target,
    Unreachable,
)
from openclaw.channels.outbox import Outbox
from openclaw.channels.pairing import PairingSettings, PairingStore
from openclaw.channels.ports import AgentBusy, RunOutcome, Sender

LIMITS = Limits(chunk=40, max_text=100, typing_every=4.0, chat_rate=1.0, chat_burst=3, account_rate=30.0, account_burst=30)


def dm(message_id: str = "1", text: str = "hello", sender: str = "42") -> InboundMessage:
    return InboundMessage("fake", "default", sender, "dm", sender, message_id, text, sender_name="Alice")


@implementer(IChannel)
class FakeChannel:
    limits = LIMITS

    def __init__(self) -> None:
        self.self_ids = frozenset({"bot"})
        self.runs: list[tuple[IInbound, Deferred[None]]] = []
        self.sent: list[tuple[Target, Outbound]] = []
        self.script: list[Any] = []  # per send: an exception, "hang", or None for success
        self.typings: list[Target] = []
        self.closed = 0
        self.hanging: list[Deferred[Receipt]] = []

    def run(self, inbound: IInbound) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.runs.append((inbound, d))
        return d

    @property
    def inbound(self) -> IInbound:
        return self.runs[-1][0]

    def fail_run(self, error: Exception) -> None:
        self.runs[-1][1].errback(error)

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        if not to.isdigit():
            raise ValueError("not a number")
        return Target(to, thread_id, reply_to)

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        step = self.script.pop(0) if self.script else None
        if step == "hang":
            d: Deferred[Receipt] = Deferred()
            self.hanging.append(d)
            return d
        if isinstance(step, Exception):
            return fail(step)
        self.sent.append((target, message))
        return succeed(Receipt(str(len(self.sent)), target.chat_id))

    def typing(self, target: Target) -> Deferred[None]:
        self.typings.append(target)
        return succeed(None)

    def poll(self, target, question, options, multi, duration_s):
        return fail(ChannelError("no polls"))

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return succeed({"ok": True})

    def logout(self) -> Deferred[dict[str, Any]]:
        return succeed({"cleared": True})

    def snapshot(self) -> dict[str, Any]:
        return {"mode": "fake"}

    def secrets(self) -> tuple[str, ...]:
        return ("fake-secret-value",)

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)

    def texts(self) -> list[str]:
        return [m.text for _, m in self.sent]


@implementer(IPlatform)
class FakePlatform:
    id = "fake"
    label = "Fake"
    limits = LIMITS

    def __init__(self, build: Any = None) -> None:
        self.channels: list[FakeChannel] = []
        self._build = build

    def configured(self, account: AccountConfig) -> bool:
        return True

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        if self._build is not None:
            return self._build()
        self.channels.append(FakeChannel())
        return self.channels[-1]


class FakeRun:
    def __init__(self, session_key: str, message: str, run_id: str) -> None:
        self.session_key, self.message, self.run_id = session_key, message, run_id
        self._outcome: Deferred[RunOutcome] = Deferred()

    def outcome(self) -> Deferred[RunOutcome]:
        return self._outcome

    def observe(self, listener: Any) -> None:
        pass

    def abort(self) -> None:
        self.finish("aborted")

    def finish(self, status: str = "ok", text: str = "", error: str | None = None) -> None:
        self._outcome.callback(RunOutcome(status, text, error))


class FakeAgent:
    def __init__(self) -> None:
        self.runs: list[FakeRun] = []
        self.busy: list[float] = []
        self.senders: list[Sender | None] = []

    def start(self, session_key: str, message: str, run_id: str, agent_id: str, sender: Sender | None = None) -> FakeRun:
        self.senders.append(sender)
        if self.busy:
            raise AgentBusy("queue full", self.busy.pop(0))
        self.runs.append(FakeRun(session_key, message, run_id))
        return self.runs[-1]


class Harness:
    def __init__(self, testcase: TestCase, folder: Path | None = None, platform: FakePlatform | None = None, config: dict[str, Any] | None = None) -> None:
        self.clock = Clock()
        self.folder = folder or Path(testcase.mktemp())
        self.agent = FakeAgent()
        self.events: list[tuple[str, Any]] = []
        self.secrets: list[str] = []
        self.platform = platform or FakePlatform()
        self.pairing = PairingStore(self.folder / "credentials", "fake", PairingSettings())
        deps = AccountDeps(
            agent=self.agent,
            config=lambda: {},
            pairing=self.pairing,
            pairing_settings=PairingSettings,
            pairing_event=lambda action, request: self.events.append((action, request)),
            redact=lambda *s: self.secrets.extend(s),
            host=ChannelHost(self.clock, routes=None),  # type: ignore[arg-type]
        )
        account = AccountConfig("fake", "default", config if config is not None else {"dmPolicy": "open"}, {}, self.folder / "channels" / "fake" / "default")
        self.service = AccountService(self.platform, account, deps, self.clock)
        self.service.backoff._rng = random.Random(7)

    def start(self) -> FakeChannel | None:
        self.service.startService()
        return self.platform.channels[-1] if self.platform.channels else None

    def settle(self, seconds: float = 0.0) -> None:
        self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
        self.clock.advance(0)


class SupervisionTests(TestCase):
    def test_fake_channel_provides_the_interface(self):
        """The in-memory channel used here is a complete IChannel (so the tests exercise the real seam)."""
        verifyObject(IChannel, FakeChannel())
        verifyObject(IPlatform, FakePlatform())

    def test_backoff_schedule(self):
        """Failures reconnect after ≈2 s ×1.8 per attempt, capped at 30 s, each within ±25 %; the secrets go to the redactor."""
        h = Harness(self)
        channel = h.start()
        self.assertEqual(h.secrets, ["fake-secret-value"])
        delays = []
        for attempt in range(9):
            channel.fail_run(ChannelError("link lost"))
            (call,) = [c for c in h.clock.getDelayedCalls() if c.active()]
            delays.append(call.getTime() - h.clock.seconds())
            self.assertEqual(len(channel.runs), attempt + 1)
            h.clock.advance(delays[-1])
            self.assertEqual(len(channel.runs), attempt + 2)
        for i, delay in enumerate(delays):
            base = min(30.0, 2.0 * 1.8**i)
            self.assertTrue(base * 0.75 <= delay <= base * 1.25, (i, delay))
        self.assertEqual(h.service.reconnect_attempts, 9)
        self.assertEqual(h.service.snapshot()["lastError"], "link lost")

    def test_unconfigured_reason(self):
        """A platform that says why an account is not configured (IConfigHint) has its words in status; the account does not start or retry."""
        platform = FakePlatform()
        platform.configured = lambda account: False  # type: ignore[method-assign]
        platform.unconfigured = lambda account: "needs the fake helper: set channels.fake.helperPath"  # type: ignore[attr-defined]
        alsoProvides(platform, IConfigHint)
        h = Harness(self, platform=platform)
        self.assertIsNone(h.start())
        h.settle(60)
        snapshot = h.service.snapshot()
        self.assertEqual((h.service.state, snapshot["lastError"], snapshot["reconnectAttempts"]), ("not-configured", "needs the fake helper: set channels.fake.helperPath", 0))

    def test_backoff_resets_after_a_stable_minute(self):
        """A link that stayed up for a minute starts the backoff afresh."""
        h = Harness(self)
        channel = h.start()
        for _ in range(4):
            channel.fail_run(ChannelError("x"))
            h.clock.advance(40)
        channel.inbound.connected()
        self.assertTrue(h.service.snapshot()["connected"])
        h.clock.advance(61)
        channel.fail_run(ChannelError("x"))
        (call,) = [c for c in h.clock.getDelayedCalls() if c.active()]
        self.assertLessEqual(call.getTime() - h.clock.seconds(), 2.5)

    def test_auth_failure_stops_without_looping(self):
        """AuthFailed stops the account with the reason in status; no reconnect is ever scheduled."""
        h = Harness(self)
        channel = h.start()
        channel.fail_run(AuthFailed("bad token"))
        h.clock.advance(3600)
        self.assertEqual(len(channel.runs), 1)
        row = h.service.snapshot()
        self.assertEqual((row["running"], row["connected"], row["healthState"], row["lastError"]), (False, False, "auth-failed", "bad token"))

    def test_crashing_channel_is_contained(self):
        """A receive loop raising a bug is logged and retried; build errors (config or bugs) leave the account stopped, never raise."""
        h = Harness(self)
        channel = h.start()
        channel.fail_run(TypeError("bug in the channel"))
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        h.clock.advance(3)
        self.assertEqual(len(channel.runs), 2)
        self.assertIn("internal error", h.service.snapshot()["lastError"])

        def bad_config():
            raise ConfigProblem("no token")

        broken = Harness(self, platform=FakePlatform(bad_config))
        broken.start()
        self.assertEqual((broken.service.state, broken.service.snapshot()["lastError"]), ("misconfigured", "no token"))

        def crash():
            raise RuntimeError("boom")

        crashing = Harness(self, platform=FakePlatform(crash))
        crashing.start()
        self.assertEqual(crashing.service.state, "error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stop_cancels_the_loop_and_closes(self):
        """stopService cancels the receive loop and the pending reconnect, and closes the channel."""
        h = Harness(self)
        channel = h.start()
        channel.fail_run(ChannelError("x"))
        d = h.service.stopService()
        h.settle()
        self.assertTrue(d.called)
        self.assertEqual(channel.closed, 1)
        h.clock.advance(100)
        self.assertEqual(len(channel.runs), 1)
        self.assertEqual([c for c in h.clock.getDelayedCalls() if c.active()], [])

    def test_stale_sink_refuses(self):
        """A receive loop that was replaced cannot deliver messages (one live loop per account)."""
        h = Harness(self)
        channel = h.start()
        old = channel.inbound
        channel.fail_run(ChannelError("x"))
        h.clock.advance(3)
        self.assertRaises(ChannelError, old.received, dm())
        self.assertTrue(channel.inbound.received(dm()))


class InboundTests(TestCase):
    def test_message_journaled_before_ack_then_answered(self):
        """received() persists the message and cursor before returning; the run's reply goes back in chunks, the first threaded to the message."""
        h = Harness(self)
        channel = h.start()
        self.assertTrue(channel.inbound.received(dm("9", "what now?"), cursor=10))
        journal = json.loads((h.folder / "channels/fake/default/inbox.json").read_text())
        self.assertEqual(journal["cursor"], 10)
        self.assertEqual(journal["pending"][0]["message"]["text"], "what now?")
        self.assertEqual(channel.inbound.cursor(), 10)
        h.settle()
        (run,) = h.agent.runs
        self.assertEqual((run.session_key, run.message, run.run_id), ("agent:main:main", "what now?", "fake:default:42:9"))
        run.finish("ok", "first part of the answer. " * 4)
        h.settle(5)
        self.assertEqual(len(channel.sent), 3)
        self.assertTrue(all(len(m.text) <= 40 for _, m in channel.sent))
        self.assertEqual([t.reply_to for t, _ in channel.sent], ["9", None, None])
        self.assertEqual(Inbox(h.folder / "channels/fake/default/inbox.json").pending(), [])
        self.assertIsNotNone(h.service.snapshot().get("lastOutboundAt"))

    def test_platform_default_reply_mode(self):
        """A platform whose replies are not threaded by default (Slack: reply_mode off) sends no reply_to unless the account's replyToMode asks for it."""

        class Unthreaded(FakeChannel):
            limits = attrs.evolve(LIMITS, reply_mode="off")

        for config, expected in (({"dmPolicy": "open"}, [None]), ({"dmPolicy": "open", "replyToMode": "first"}, ["9"])):
            platform = FakePlatform()
            platform.channels.append(Unthreaded())
            platform._build = lambda: platform.channels[-1]
            h = Harness(self, platform=platform, config=config)
            channel = h.start()
            channel.inbound.received(dm("9", "question"))
            h.settle()
            h.agent.runs[0].finish("ok", "answer")
            h.settle(1)
            self.assertEqual([t.reply_to for t, _ in channel.sent], expected)

    def test_duplicates_and_own_messages_dropped(self):
        """A redelivered message (same chat and id) is refused; the account's own messages never reach the agent."""
        h = Harness(self)
        channel = h.start()
        self.assertTrue(channel.inbound.received(dm("1")))
        self.assertFalse(channel.inbound.received(dm("1")))
        self.assertTrue(channel.inbound.received(dm("2", sender="bot")))
        h.settle()
        self.assertEqual(len(h.agent.runs), 1)

    def test_restart_reruns_an_interrupted_turn_once(self):
        """A gateway stopping mid-run keeps the message; the next start runs it again and answers once; the redelivery is dropped."""
        h = Harness(self)
        channel = h.start()
        channel.inbound.received(dm("5", "question"), cursor=6)
        h.settle()
        h.service.stopping = True
        h.agent.runs[0].abort()  # the gateway aborts every run as it stops
        h.service.stopService()
        h.settle()
        self.assertEqual(channel.sent, [])

        again = Harness(self, folder=h.folder)
        channel2 = again.start()
        again.settle()
        self.assertEqual(channel2.inbound.cursor(), 6)
        self.assertFalse(channel2.inbound.received(dm("5", "question")))
        (run,) = again.agent.runs
        self.assertEqual(run.message, "question")
        run.finish("ok", "the answer")
        again.settle()
        self.assertEqual(channel2.texts(), ["the answer"])

    def test_restart_resumes_a_half_sent_reply(self):
        """A reply cut off after its first chunk continues with the second at the next start (nothing repeated)."""
        h = Harness(self)
        channel = h.start()
        channel.inbound.received(dm("5"))
        h.settle()
        channel.script = [None, "hang"]
        h.agent.runs[0].finish("ok", "alpha " * 6 + "\n\n" + "omega " * 6)
        h.settle()
        self.assertEqual(len(channel.sent), 1)
        h.service.stopService()
        h.settle(10)

        again = Harness(self, folder=h.folder)
        channel2 = again.start()
        again.settle()
        self.assertEqual(again.agent.runs, [])
        self.assertEqual(channel2.texts(), [("omega " * 6).strip()])
        self.assertEqual(channel2.sent[0][0].reply_to, None)

    def test_agent_errors_and_silence(self):
        """A failed run answers with a short warning; NO_REPLY and empty replies send nothing."""
        h = Harness(self)
        channel = h.start()
        for i in range(3):
            channel.inbound.received(dm(str(i)))
        h.settle()
        h.agent.runs[0].finish("error", error="model overloaded")
        h.agent.runs[1].finish("ok", "NO_REPLY")
        h.agent.runs[2].finish("ok", "")
        h.settle()
        self.assertEqual(channel.texts(), ["⚠️ model overloaded"])

    def test_busy_agent_is_retried(self):
        """A full session queue (AgentBusy) retries the message after the hinted delay instead of dropping it."""
        h = Harness(self)
        channel = h.start()
        h.agent.busy = [2.0]
        channel.inbound.received(dm("1"))
        h.settle()
        self.assertEqual(h.agent.runs, [])
        h.settle(2)
        self.assertEqual(len(h.agent.runs), 1)

    def test_typing_while_the_run_goes(self):
        """Typing is shown at once and every 4 s while the chat has runs going (one indicator for several), and stops with the last."""
        h = Harness(self)
        channel = h.start()
        channel.inbound.received(dm("1"))
        channel.inbound.received(dm("2"))
        h.settle()
        h.clock.pump([4, 4, 1])
        self.assertEqual(len(channel.typings), 3)
        h.agent.runs[0].finish("ok", "done")
        h.clock.pump([4, 4])
        self.assertEqual(len(channel.typings), 5)
        h.agent.runs[1].finish("ok", "done too")
        h.clock.pump([4, 4])
        self.assertEqual(len(channel.typings), 5)

    def test_typing_stop_hook(self):
        """A channel that keeps its indicator up until told (ITypingStop) is told once, when the chat's last run ends; others are not asked."""
        h = Harness(self)
        channel = h.start()
        stops: list[Target] = []
        channel.typing_stop = lambda target: (stops.append(target), succeed(None))[1]  # type: ignore[attr-defined]
        alsoProvides(channel, ITypingStop)
        channel.inbound.received(dm("1"))
        channel.inbound.received(dm("2"))
        h.settle()
        h.agent.runs[0].finish("ok", "done")
        h.settle()
        self.assertEqual(stops, [])
        h.agent.runs[1].finish("ok", "done too")
        h.settle()
        self.assertEqual(stops, [Target("42")])

    def test_pairing_flow(self):
        """Under dmPolicy pairing an unknown sender gets one code message and a `pairing` event; the agent never runs; after approval it does."""
        h = Harness(self, config={})
        channel = h.start()
        channel.inbound.received(dm("1", "hi"))
        h.settle()
        self.assertEqual(h.agent.runs, [])
        ((action, request),) = h.events
        self.assertEqual((action, request.sender_id, request.meta["chatId"]), ("requested", "42", "42"))
        self.assertIn(f"Pairing code: {request.code}", channel.texts()[0])
        self.assertIsNone(channel.sent[0][0].reply_to)
        channel.inbound.received(dm("2", "hi again"))
        h.settle()
        self.assertEqual(len(channel.sent), 1)
        h.pairing.approve(request)
        channel.inbound.received(dm("3", "now?"))
        h.settle()
        self.assertEqual(h.agent.runs[0].message, "now?")


class OutboxTests(TestCase):
    def outbox(self):
        self.clock = Clock()
        self.channel = FakeChannel()
        return Outbox(self.clock, self.channel.send, LIMITS)

    def test_rate_limit_per_chat(self):
        """One chat gets a burst of 3, then one message a second; another chat is not held up."""
        box = self.outbox()
        done = [box.send(Target("1"), Outbound(f"m{i}")) for i in range(5)]
        other = box.send(Target("2"), Outbound("x"))
        self.assertEqual([d.called for d in done], [True, True, True, False, False])
        self.assertTrue(other.called)
        self.clock.advance(1)
        self.assertTrue(done[3].called)
        self.clock.advance(1)
        self.assertTrue(done[4].called)
        self.assertEqual(self.channel.texts(), ["m0", "m1", "m2", "x", "m3", "m4"])

    def test_one_timer_per_waiting_chat(self):
        """Messages queued while a chat waits for its rate limit leave one timer, and stop() leaves none behind."""
        box = self.outbox()
        sends = [box.send(Target("1"), Outbound(f"m{i}")) for i in range(6)]
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        box.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for d in sends[3:]:
            self.failureResultOf(d, ChannelError)

    def test_retry_after_is_honoured(self):
        """RetryAfter holds the chat for the platform's delay, then sends the same message; order is kept."""
        box = self.outbox()
        self.channel.script = [RetryAfter(7)]
        first = box.send(Target("1"), Outbound("a"))
        second = box.send(Target("1"), Outbound("b"))
        self.clock.advance(6.9)
        self.assertFalse(first.called)
        self.clock.advance(0.2)
        self.assertTrue(first.called and second.called)
        self.assertEqual(self.channel.texts(), ["a", "b"])

    def test_moved_unreachable_and_transient(self):
        """Moved re-targets the chat; Unreachable drops without retrying; transient errors retry with backoff, then give up."""
        box = self.outbox()
        self.channel.script = [Moved("-200")]
        moved = box.send(Target("-100"), Outbound("hi"))
        self.assertEqual(self.successResultOf(moved).chat_id, "-200")

        self.channel.script = [Unreachable("blocked")]
        blocked = box.send(Target("5"), Outbound("x"))
        self.failureResultOf(blocked, Unreachable)
        self.assertEqual(self.channel.script, [])

        self.channel.script = [ChannelError("502")] * 2
        flaky = box.send(Target("6"), Outbound("y"))
        self.clock.pump([1.5, 3])
        self.assertEqual(self.successResultOf(flaky).message_id, "2")

        self.channel.script = [ChannelError("down")] * 10
        down = box.send(Target("7"), Outbound("z"))
        self.clock.pump([1] * 60)
        self.assertEqual(str(self.failureResultOf(down, ChannelError).value), "down")
        self.assertEqual(len(self.channel.script), 6)  # 4 attempts, then it gave up

    def test_queue_bounds(self):
        """A chat's queue holds at most 100 messages; more are refused at once."""
        box = self.outbox()
        self.channel.script = ["hang"]
        results = [box.send(Target("1"), Outbound(str(i))) for i in range(101)]
        self.failureResultOf(results[-1], ChannelError)
        self.assertEqual(box.queued(), 100)
        box.stop()
        for d in results[:-1]:
            self.failureResultOf(d, ChannelError)


class FakeConfig:
    def __init__(self, state_dir: Path, config: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.value = config

    def config(self) -> dict[str, Any]:
        return self.value

    def env(self) -> dict[str, str]:
        return {}

    def check(self) -> None:
        pass


class ServiceTests(TestCase):
    def service(self, config: dict[str, Any]):
        from openclaw.channels.ports import Ports
        from openclaw.channels.service import ChannelsService

        self.clock = Clock()
        self.events: list[tuple[str, Any]] = []
        self.platform = FakePlatform()
        ports = Ports(
            agent=FakeAgent(),
            events=type("Events", (), {"emit": lambda _, name, payload: self.events.append((name, payload))})(),
            config=FakeConfig(Path(self.mktemp()), config),
            secrets=type("Secrets", (), {"add": lambda _, *s: None})(),
            routes=None,  # type: ignore[arg-type]
        )
        service = ChannelsService(ports, self.clock, {"fake": self.platform})
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_accounts_from_config(self):
        """channels.<id> is account default, accounts.<name> add more (inheriting keys); each is its own child service."""
        service = self.service({"channels": {"fake": {"dmPolicy": "open", "accounts": {"work": {"enabled": False}}}}})
        self.assertEqual(sorted(service.accounts), [("fake", "default"), ("fake", "work")])
        self.assertEqual(service.accounts[("fake", "work")].account.config, {"dmPolicy": "open", "enabled": False})
        self.assertEqual(service.accounts[("fake", "work")].state, "disabled")
        self.assertEqual(len(self.platform.channels), 1)
        status = self.successResultOf(Deferred.fromCoroutine(service.status()))
        self.assertEqual([r["accountId"] for r in status["channelAccounts"]["fake"]], ["default", "work"])

    def test_runtime_platforms_and_removal(self):
        """An account of a platform registered at runtime (an out-of-process adapter) runs like the others and can be removed; a turn still running then stays journaled."""
        from openclaw.channels.interfaces import AccountConfig as Config

        service = self.service({})
        other = FakePlatform()
        other.id, other.label = "ext", "External"
        account = service.add(Config("ext", "phone", {"dmPolicy": "open"}, {}, Path(self.mktemp())), platform=other)
        self.assertTrue(account.running)
        other.channels[-1].inbound.received(dm("1"))
        self.clock.advance(0)
        self.assertEqual(len(service.ports.agent.runs), 1)
        removed = Deferred.fromCoroutine(service.remove("ext", "phone"))
        self.clock.advance(5)  # the run never ends: the stop waits its grace, no longer
        self.successResultOf(removed)
        self.assertEqual(service.accounts, {})
        self.assertFalse(account.running)
        self.assertEqual([w.key for w in Inbox(account.account.state_dir / "inbox.json").pending()], ["42:1"])  # unanswered: kept

    def test_odd_config_never_breaks_the_start(self):
        """Channel ids and account names that cannot name a folder are refused in status, and the rest still starts."""
        service = self.service({"channels": {"": {}, "../up": {}, "fake": {"accounts": {"../x": {}, "": {}, "ok": {}}}}})
        states = {a: s.state for (c, a), s in service.accounts.items()}
        self.assertEqual(states, {"default": "connecting", "../x": "misconfigured", "": "misconfigured", "ok": "connecting"})
