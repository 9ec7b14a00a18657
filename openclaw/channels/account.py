# -*- test-case-name: tests.test_channels -*-
"""
L{AccountService}: one configured channel account, supervised.

It builds the platform's L{IChannel}, runs its receive loop, and starts it
again after a failure with exponential backoff and jitter (2 s × 1.8, at
most 30 s, ±25 %; reset after a minute connected). L{AuthFailed} and
L{ConfigProblem} stop it with the reason in status instead of looping. No
exception from the channel reaches the gateway or another account.

What arrives goes through the journal (L{Inbox}) and then: own messages
dropped, access policy, DM pairing, session routing, the agent run with a
typing indicator, and the reply, chunked and queued per chat (L{Outbox}).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Coroutine, Mapping

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from openclaw.backoff import Backoff
from openclaw.channels.chunking import chunk_text
from openclaw.channels.inbox import RECEIVED, Inbox, Work
from openclaw.channels.interfaces import (
    DM,
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
    Outbound,
    Receipt,
    Rejected,
    Target,
    Unreachable,
)
from openclaw.channels.outbox import Outbox
from openclaw.channels.pairing import PairingRequest, PairingSettings, PairingStore
from openclaw.channels.policy import ALLOW, PAIR, agent_for, decide, mention_patterns, session_key
from openclaw.channels.ports import AgentBusy, AgentPort, RunOutcome, Sender

log = Logger(namespace="openclaw.channels")

STABLE_AFTER = 60.0  # connected this long: the next failure starts the backoff afresh
STOP_GRACE = 5.0
TYPING_CAP = 3600.0  # never show typing longer than the longest run
ERROR_REPLY_LIMIT = 300
SILENT = "NO_REPLY"
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def now_ms(clock: IReactorTime) -> int:
    return int(clock.seconds() * 1000)


@attrs.frozen
class AccountDeps:
    """What an account needs from its channels service (and, through it, the gateway)."""

    agent: AgentPort
    config: Callable[[], Mapping[str, Any]]  # the whole current config
    pairing: PairingStore
    pairing_settings: Callable[[], PairingSettings]
    pairing_event: Callable[[str, PairingRequest], None]
    redact: Callable[..., None]
    host: ChannelHost
    on_route: Callable[[str, str, str, Target], None] = lambda key, channel, account, target: None


def pairing_text(label: str, channel: str, message: InboundMessage, code: str, ttl_ms: int) -> str:
    minutes = max(1, ttl_ms // 60_000)
    return (
        f"Pairing code: {code} (your {label} id: {message.sender_id})\n"
        f"This assistant answers approved senders only: ask its owner to run "
        f"`openclaw pairing approve {channel} {code}` within {minutes} min, then send your message again."
    )


def envelope(label: str, message: InboundMessage) -> str:
    """The message as the agent sees it: who wrote in a group, what it replies to, attachments."""
    parts = []
    if message.reply_to is not None and message.reply_to.text:
        who = "you" if message.reply_to.from_me else (message.reply_to.sender_name or "someone")
        parts.append(f"[Replying to {who}: {message.reply_to.text[:500]}]")
    body = message.text.strip()
    media = " ".join(f"<media:{m}>" for m in message.media)
    body = f"{body}\n{media}".strip() if media else body
    if message.chat_type != DM:
        where = message.chat_title or message.chat_id
        if message.thread_id:
            where += f" {message.thread_kind or 'thread'} {message.thread_id}"
        body = f"[{label} {message.chat_type} {where}] {message.sender_label}: {body}"
    parts.append(body)
    return "\n".join(parts)


@implementer(IInbound)
class _Sink:
    """The L{IInbound} one run of a channel gets; stale once a newer run started."""

    def __init__(self, account: AccountService, generation: int) -> None:
        self.account = account
        self.generation = generation

    def _live(self) -> bool:
        return self.account.generation == self.generation and bool(self.account.running)

    def cursor(self) -> Any:
        inbox = self.account.inbox
        return inbox.cursor if inbox is not None else None

    def received(self, message: InboundMessage, cursor: Any = None) -> bool:
        if not self._live():
            raise ChannelError("this receive loop was replaced; not accepting messages")
        return self.account.accept(message, cursor)

    def advance(self, cursor: Any) -> None:
        if self._live() and self.account.inbox is not None:
            self.account.inbox.advance(cursor)

    def connected(self) -> None:
        if self._live():
            self.account.link_up()

    def disconnected(self, reason: str) -> None:
        if self._live():
            self.account.link_down(reason)

    def backlog(self) -> int:
        inbox = self.account.inbox
        return len(inbox) if inbox is not None and self._live() else 0

    def problem(self, text: str | None) -> None:
        if self._live():
            self.account.problem = text


class AccountService(Service):
    """One channel account: supervision, inbound processing, delivery."""

    def __init__(self, platform: IPlatform, account: AccountConfig, deps: AccountDeps, clock: IReactorTime) -> None:
        self.platform = platform
        self.account = account
        self.deps = deps
        self.clock = clock
        self.setName(f"{account.channel}:{account.account_id}")
        self.channel: IChannel | None = None
        self.inbox: Inbox | None = None
        self.outbox: Outbox | None = None
        self.state = "stopped"
        self.generation = 0
        self.connected = False
        self.problem: str | None = None
        self.last_error: str | None = None
        self.reconnect_attempts = 0
        self.last_connected_at: int | None = None
        self.last_start_at: int | None = None
        self.last_stop_at: int | None = None
        self.last_inbound_at: int | None = None
        self.last_outbound_at: int | None = None
        self.last_probe_at: int | None = None
        self.probe_result: dict[str, Any] | None = None
        self.active_runs = 0
        self.stopping = False  # the gateway is going down: keep interrupted work for the next start
        self._loop: Deferred[None] | None = None
        self._link: Deferred[None] | None = None
        self._sleep: Deferred[None] | None = None
        self._timers: set[IDelayedCall] = set()
        self._tasks: set[Deferred[Any]] = set()
        self._connected_since: float | None = None
        self._typing_loops: dict[tuple[str, str | None], tuple[LoopingCall, int]] = {}
        self.backoff = Backoff(2.0, 30.0, 1.8, 0.25)

    @property
    def channel_id(self) -> str:
        return self.account.channel

    @property
    def account_id(self) -> str:
        return self.account.account_id

    @property
    def enabled(self) -> bool:
        return self.account.config.get("enabled", True) is not False

    @property
    def limits(self) -> Limits:
        limits: Limits = self.channel.limits if self.channel is not None else self.platform.limits
        chunk = self.account.config.get("textChunkLimit")
        if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0:
            limits = attrs.evolve(limits, chunk=max(64, min(chunk, limits.max_text)))
        return limits

    @property
    def reply_mode(self) -> str:
        """C{replyToMode}, else the platform's default (Slack answers in the channel, not in a new thread)."""
        mode = self.account.config.get("replyToMode")
        return mode if mode in ("off", "first", "all") else self.limits.reply_mode

    @property
    def logged_out_marker(self) -> Path:
        return self.account.state_dir / "logged-out"

    # -- lifecycle

    def startService(self) -> None:
        super().startService()
        self.stopping = False
        try:
            self._start()
        except Exception as e:
            log.failure("{account} failed to start", account=self.name)
            self._halt("error", f"failed to start: {type(e).__name__}: {e}")

    def _halt(self, state: str, error: str | None) -> None:
        self.state = state
        self.connected = False
        self.last_error = error
        if error:
            log.warn("{account}: {error}", account=self.name, error=error)

    def _start(self) -> None:
        self.last_start_at = now_ms(self.clock)
        self.last_error = self.problem = None
        self.reconnect_attempts = 0
        self.backoff.reset()
        if not ACCOUNT_ID.match(self.account_id):
            return self._halt("misconfigured", f"invalid account id {self.account_id!r}: use letters, digits, '_' and '-'")
        if not self.enabled:
            self.state = "disabled"
            return
        if self.logged_out_marker.exists():
            return self._halt("logged-out", f"logged out; run `openclaw channels login {self.channel_id}` to start it again")
        if not self.platform.configured(self.account):
            reason = f"{self.platform.label} is not configured for account {self.account_id}"
            if IConfigHint.providedBy(self.platform):
                reason = self.platform.unconfigured(self.account) or reason
            return self._halt("not-configured", reason)
        try:
            channel = self.platform.build(self.account, self.deps.host)
        except ConfigProblem as e:
            return self._halt("misconfigured", str(e))
        self.deps.redact(*channel.secrets())
        self.channel = channel
        self.inbox = Inbox(self.account.state_dir / "inbox.json")
        self.outbox = Outbox(self.clock, channel.send, self.limits, self._sent)
        self.state = "starting"
        self._loop = Deferred.fromCoroutine(self._supervise())
        self._loop.addErrback(self._loop_crashed)
        for work in self.inbox.pending():
            self._spawn(self._process(work))

    def _loop_crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        log.failure("{account} supervisor crashed", failure, account=self.name)
        self._halt("error", f"internal error: {failure.getErrorMessage()}")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.last_stop_at = now_ms(self.clock)
        self.generation += 1
        for d in (self._sleep, self._link):
            if d is not None and not d.called:
                d.cancel()
        for timer in list(self._timers):
            if timer.active():
                timer.cancel()
        self._timers.clear()
        for typing, _ in list(self._typing_loops.values()):
            if typing.running:
                typing.stop()
        self._typing_loops.clear()
        if self.outbox is not None:
            self.outbox.stop()
        channel, loop, self._loop = self.channel, self._loop, None
        if self.state not in ("disabled", "logged-out"):
            self.state = "stopped"
        self.connected = False
        if loop is not None and not loop.called:
            loop.addErrback(lambda f: None)
        else:
            loop = None
        return Deferred.fromCoroutine(self._drain(loop, channel))

    async def _drain(self, loop: Deferred[None] | None, channel: IChannel | None) -> None:
        waiting = [loop] if loop is not None else []
        waiting += [t for t in self._tasks if not t.called]
        if waiting:
            # Wait a little for work to finish, never cancelling it (its journal entries must stay).
            gate: Deferred[None] = Deferred()
            def open_gate(_: object = None) -> None:
                if not gate.called:
                    gate.callback(None)

            DeferredList(waiting, consumeErrors=True).addBoth(open_gate)
            timer = self.clock.callLater(STOP_GRACE, open_gate)
            await gate
            if timer.active():
                timer.cancel()
            elif any(not t.called for t in waiting):
                log.warn("{account} stopped with work still running (kept for the next start)", account=self.name)
        if channel is not None:
            try:
                await channel.close()
            except Exception:
                log.failure("{account}: closing the channel failed", account=self.name)

    async def _supervise(self) -> None:
        while self.running and self.channel is not None:
            self.generation += 1
            sink = _Sink(self, self.generation)
            self._connected_since = None
            self.state = "connecting"
            try:
                self._link = self.channel.run(sink)
                await self._link
                error: Exception = ChannelError("the connection ended")
            except CancelledError:
                if not self.running:
                    return
                error = ChannelError("the receive loop was cancelled")
            except AuthFailed as e:
                return self._halt("auth-failed", str(e))
            except ConfigProblem as e:
                return self._halt("misconfigured", str(e))
            except ChannelError as e:
                error = e
            except Exception as e:
                log.failure("{account} receive loop crashed", account=self.name)
                error = ChannelError(f"internal error: {type(e).__name__}: {e}")
            finally:
                self._link = None
            if not self.running:
                return
            self.connected = False
            self.last_error = str(error)
            if self._connected_since is not None and self.clock.seconds() - self._connected_since >= STABLE_AFTER:
                self.backoff.reset()
            delay = self.backoff.next()
            self.reconnect_attempts += 1
            self.state = "backoff"
            log.warn("{account}: {error}; reconnecting in {delay:.1f} s", account=self.name, error=str(error), delay=delay)
            self._sleep = deferLater(self.clock, delay, lambda: None)
            try:
                await self._sleep
            except CancelledError:
                return
            finally:
                self._sleep = None

    def link_up(self) -> None:
        if not self.connected:
            log.info("{account} connected", account=self.name)
        self.connected = True
        self.state = "running"
        self.last_error = None
        self._connected_since = self.clock.seconds()
        self.last_connected_at = now_ms(self.clock)

    def link_down(self, reason: str) -> None:
        """The channel lost its link and waits for it to come back (no backoff: the peer reconnects)."""
        if self.connected:
            log.info("{account} disconnected: {reason}", account=self.name, reason=reason)
        self.connected = False
        self.state = "disconnected"
        self.last_error = reason
        self._connected_since = None

    # -- inbound

    def accept(self, message: InboundMessage, cursor: Any) -> bool:
        """Journal a message (the channel acknowledges it after this returns), then process it."""
        assert self.inbox is not None
        message = attrs.evolve(message, channel=self.channel_id, account_id=self.account_id)
        work = self.inbox.accept(message, cursor)
        if work is None:
            return False
        self.last_inbound_at = now_ms(self.clock)
        timer = self.clock.callLater(0, lambda: self._spawn(self._process(work)))
        self._timers.add(timer)
        return True

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = Deferred.fromCoroutine(coroutine)
        self._tasks.add(task)
        task.addErrback(self._task_failed)
        task.addBoth(lambda _: self._tasks.discard(task))

    def _task_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            log.failure("{account} message handling crashed", failure, account=self.name)

    def _prune_timers(self) -> None:
        self._timers = {t for t in self._timers if t.active()}

    async def _process(self, work: Work) -> None:
        self._prune_timers()
        if not self.running or self.inbox is None or self.channel is None:
            return
        try:
            if work.stage == RECEIVED:
                await self._handle(work)
            else:
                await self._deliver(work)
        except CancelledError:
            return  # stopped: the journal keeps it
        except Exception:
            log.failure("{account}: handling message {key} failed; dropping it", account=self.name, key=work.key)
            if self.running and self.inbox is not None:
                self.inbox.done(work)

    async def _handle(self, work: Work) -> None:
        assert self.inbox is not None and self.channel is not None
        message = work.message
        if message.sender_id in self.channel.self_ids:
            self.inbox.done(work)
            return
        config = self.deps.config()
        agent = agent_for(config, message)
        settings = self.deps.pairing_settings()
        decision = decide(message, self.account.config, self.deps.pairing.allowed(), settings.enabled, mention_patterns(config, agent))
        if decision.action == PAIR:
            await self._pair(work, settings)
        elif decision.action == ALLOW:
            await self._run(work, config, agent, decision.commands)
        else:
            log.info("{account}: dropped message {key} from {sender}: {reason}", account=self.name, key=work.key, sender=message.sender_id, reason=decision.reason)
            self.inbox.done(work)

    async def _pair(self, work: Work, settings: PairingSettings) -> None:
        assert self.inbox is not None
        message = work.message
        meta = {"accountId": self.account_id, "chatId": message.chat_id, "senderLabel": message.sender_label}
        if message.sender_username:
            meta["username"] = message.sender_username
        request, created = self.deps.pairing.request(message.sender_id, now_ms(self.clock), meta)
        if request is None:
            log.warn("{account}: pairing request from {sender} ignored: {limit} requests already wait", account=self.name, sender=message.sender_id, limit=settings.max_pending)
            self.inbox.done(work)
            return
        if not created:
            self.inbox.done(work)
            return
        log.info("{account}: pairing requested by {sender}", account=self.name, sender=message.sender_id)
        self.deps.pairing_event("requested", request)
        self.inbox.replying(work, [pairing_text(self.platform.label, self.channel_id, message, request.code, settings.ttl_ms)], reply=False)
        await self._deliver(work)

    async def _run(self, work: Work, config: Mapping[str, Any], agent: str, commands: bool = False) -> None:
        assert self.inbox is not None
        message = work.message
        key = session_key(config, message, agent)
        target = Target(message.chat_id, message.thread_id)
        self.deps.on_route(key, self.channel_id, self.account_id, target)
        try:
            sender = Sender(self.channel_id, message.sender_id, message.sender_label, commands)
            handle = self.deps.agent.start(key, envelope(self.platform.label, message), f"{self.channel_id}:{self.account_id}:{work.key}", agent, sender)
        except AgentBusy as e:
            timer = self.clock.callLater(e.retry_after, lambda: self._spawn(self._process(work)))
            self._timers.add(timer)
            return
        except ValueError as e:
            log.warn("{account}: cannot run message {key}: {error}", account=self.name, key=work.key, error=str(e))
            self.inbox.done(work)
            return
        self.active_runs += 1
        self._typing(target, +1)
        try:
            outcome: RunOutcome = await handle.outcome()
        finally:
            self.active_runs -= 1
            self._typing(target, -1)
        if outcome.status == "aborted" and (self.stopping or not self.running):
            return  # the gateway is stopping: the journal runs it again at the next start
        if outcome.status == "ok":
            text = outcome.text.strip()
            if not text or text == SILENT:
                self.inbox.done(work)
                return
        elif outcome.status == "aborted":
            self.inbox.done(work)
            return
        else:
            text = f"⚠️ {(outcome.error or outcome.status)[:ERROR_REPLY_LIMIT]}"
        self.inbox.replying(work, chunk_text(text, self.limits.chunk), reply=self.reply_mode != "off")
        if self.running:
            await self._deliver(work)  # else the journal delivers it at the next start

    def _typing(self, target: Target, change: int) -> None:
        """One typing loop per chat (and thread) while any of its runs goes (queued runs included)."""
        every = self.limits.typing_every
        channel = self.channel
        if not every or channel is None:
            return
        key = (target.chat_id, target.thread_id)
        loop, count = self._typing_loops.get(key, (None, 0))
        count += change
        if count <= 0:
            self._typing_loops.pop(key, None)
            if loop is not None and loop.running:
                loop.stop()
            if loop is not None:
                _typing_stop(channel, target)
            return
        if loop is None:
            started = self.clock.seconds()

            def tick() -> None:
                if self.clock.seconds() - started > TYPING_CAP or not self.running:
                    self._typing_loops.pop(key, None)
                    if loop is not None and loop.running:
                        loop.stop()
                    _typing_stop(channel, target)
                    return
                try:
                    channel.typing(target).addErrback(lambda f: log.debug("typing failed: {e}", e=f.getErrorMessage()))
                except Exception as e:
                    log.debug("typing failed: {e}", e=str(e))

            loop = LoopingCall(tick)
            loop.clock = self.clock
            self._typing_loops[key] = (loop, count)
            loop.start(every, now=True)
            return
        self._typing_loops[key] = (loop, count)

    # -- delivery

    async def _deliver(self, work: Work) -> None:
        """Queue the chunks not yet sent (all at once, so replies never interleave in a chat)."""
        assert self.inbox is not None and self.outbox is not None
        inbox, outbox = self.inbox, self.outbox
        message = work.message
        chat = work.chat_id or message.chat_id
        pending = []
        for i in range(work.sent, len(work.chunks)):
            reply_to = message.message_id if work.reply and (i == 0 or self.reply_mode == "all") else None
            pending.append(outbox.send(Target(chat, message.thread_id, reply_to), Outbound(work.chunks[i], key=f"{self.name}:{work.key}:{i}")))
        for i, d in enumerate(pending, start=work.sent):
            try:
                receipt: Receipt = await d
            except ChannelError as e:
                if not self.running:
                    return  # stopped: the journal resends the rest at the next start
                for rest in pending:
                    rest.addErrback(lambda f: None)
                level = "info" if isinstance(e, (Unreachable, Rejected)) else "warn"
                getattr(log, level)("{account}: reply to {key} not delivered: {error}", account=self.name, key=work.key, error=str(e))
                self.last_error = f"send failed: {e}"
                inbox.done(work)
                return
            inbox.progress(work, i + 1, receipt.chat_id if receipt.chat_id != chat else None)
        inbox.done(work)

    def _sent(self, receipt: Receipt) -> None:
        self.last_outbound_at = now_ms(self.clock)

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        """Send outside a conversation (`send`, the message tool, pairing notices)."""
        if self.outbox is None or not self.running or self.channel is None:
            d: Deferred[Receipt] = Deferred()
            d.errback(ChannelError(f"{self.name} is not running ({self.state}{': ' + self.last_error if self.last_error else ''})"))
            return d
        return self.outbox.send(target, message)

    def send_text(self, target: Target, text: str, silent: bool = False) -> Deferred[list[Receipt]]:
        """Chunked text: one receipt per message."""
        chunks = chunk_text(text, self.limits.chunk)
        if not chunks:
            d: Deferred[list[Receipt]] = Deferred()
            d.errback(Rejected("the message is empty"))
            return d
        sends = [self.send(attrs.evolve(target, reply_to=target.reply_to if i == 0 else None), Outbound(c, None, silent)) for i, c in enumerate(chunks)]
        return _all(sends)

    # -- status

    async def probe(self, timeout: float) -> dict[str, Any]:
        if self.channel is None:
            result: dict[str, Any] = {"ok": False, "error": self.last_error or self.state}
        else:
            try:
                result = await self.channel.probe(timeout)
            except Exception as e:
                result = {"ok": False, "error": str(e) if isinstance(e, ChannelError) else f"{type(e).__name__}: {e}"}
        self.last_probe_at = now_ms(self.clock)
        self.probe_result = result
        return result

    def snapshot(self) -> dict[str, Any]:
        """This account in C{channels.status} (absent values omitted: v3 wants strings, not null)."""
        config = self.account.config
        out: dict[str, Any] = {
            "accountId": self.account_id,
            "enabled": self.enabled,
            "configured": self.platform.configured(self.account),
            "running": self.running and self.channel is not None and self.state not in ("auth-failed", "misconfigured", "error"),
            "connected": self.connected,
            "reconnectAttempts": self.reconnect_attempts,
            "healthState": self.state,
            "dmPolicy": config.get("dmPolicy", "pairing"),
            "activeRuns": self.active_runs,
            "busy": self.active_runs > 0,
        }
        if isinstance(config.get("name"), str):
            out["name"] = config["name"]
        allow = config.get("allowFrom")
        if isinstance(allow, list):
            out["allowFrom"] = [str(a) for a in allow][:50]
        error = self.last_error or self.problem
        if self.problem and self.last_error and self.problem != self.last_error:
            error = f"{self.last_error}; {self.problem}"
        for name, value in (
            ("lastError", error),
            ("lastConnectedAt", self.last_connected_at),
            ("lastStartAt", self.last_start_at),
            ("lastStopAt", self.last_stop_at),
            ("lastInboundAt", self.last_inbound_at),
            ("lastOutboundAt", self.last_outbound_at),
            ("lastProbeAt", self.last_probe_at),
            ("probe", self.probe_result),
        ):
            if value is not None:
                out[name] = value
        if self.channel is not None:
            try:
                out.update({k: v for k, v in self.channel.snapshot().items() if v is not None})
            except Exception:
                log.failure("{account} snapshot failed", account=self.name)
        return out


def _typing_stop(channel: IChannel, target: Target) -> None:
    """Take the indicator down where the platform keeps it up until told."""
    if not ITypingStop.providedBy(channel):
        return
    try:
        channel.typing_stop(target).addErrback(lambda f: log.debug("typing stop failed: {e}", e=f.getErrorMessage()))
    except Exception as e:
        log.debug("typing stop failed: {e}", e=str(e))


def _all(sends: list[Deferred[Receipt]]) -> Deferred[list[Receipt]]:
    """All receipts in order, or the first failure (the others' failures consumed)."""
    result: Deferred[list[Receipt]] = Deferred()
    receipts: list[Receipt | None] = [None] * len(sends)
    left = [len(sends)]

    def ok(receipt: Receipt, i: int) -> None:
        receipts[i] = receipt
        left[0] -= 1
        if left[0] == 0 and not result.called:
            result.callback([r for r in receipts if r is not None])

    def bad(failure: Failure) -> None:
        if not result.called:
            result.errback(failure)

    for i, d in enumerate(sends):
        d.addCallbacks(ok, bad, callbackArgs=(i,))
    return result
