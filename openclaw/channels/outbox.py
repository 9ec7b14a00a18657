# -*- test-case-name: tests.test_channels -*-
"""
Outbound delivery for one account: a FIFO queue per destination chat, rate
limited per chat and per account (token buckets), honouring the platform's
retry hints.

A message waits for its turn in its chat, then for a token in both buckets.
L{RetryAfter} pauses that chat for as long as the platform said, then sends
the same message again; L{Moved} re-targets the chat's queue; L{Unreachable},
L{Rejected}, L{Unsupported} and auth/config errors fail the message at once;
anything else is transient and retried with backoff a few times. Queues,
destinations and retries are bounded.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, TypeVar

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.backoff import Backoff
from openclaw.channels.interfaces import (
    AuthFailed,
    ChannelError,
    ConfigProblem,
    Limits,
    Moved,
    Outbound,
    Receipt,
    Rejected,
    RetryAfter,
    Target,
    Unreachable,
    Unsupported,
)

T = TypeVar("T")

log = Logger(namespace="openclaw.channels")

QUEUE_LIMIT = 100  # messages waiting for one chat
DESTINATION_LIMIT = 1000  # chats with something waiting
TRANSIENT_ATTEMPTS = 4
RATE_LIMIT_ATTEMPTS = 6
MAX_MOVES = 2
MAX_PAUSE = 300.0  # a retry_after beyond this is capped
SEND_TIMEOUT = 60.0
FINAL = (Unreachable, Rejected, Unsupported, AuthFailed, ConfigProblem)

Sender = Callable[[Target, Outbound], "Deferred[Receipt]"]


class Bucket:
    """A token bucket: C{rate} tokens a second, at most C{burst} saved."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = max(rate, 0.001)
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.at = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


@attrs.define
class _Item:
    target: Target
    message: Outbound
    done: Deferred[Receipt]
    attempts: int = 0
    rate_limited: int = 0
    moves: int = 0


@attrs.define
class _Chat:
    key: str
    queue: deque[_Item] = attrs.field(factory=deque)
    bucket: Bucket | None = None
    paused_until: float = 0.0
    busy: bool = False
    timer: IDelayedCall | None = None
    backoff: Backoff = attrs.field(factory=lambda: Backoff(1.0, 30.0, 2.0, 0.2))


class Outbox:
    def __init__(self, clock: IReactorTime, send: Sender, limits: Limits, on_sent: Callable[[Receipt], None] = lambda r: None) -> None:
        self.clock = clock
        self._send = send
        self.limits = limits
        self.on_sent = on_sent
        self.account = Bucket(limits.account_rate, limits.account_burst, clock.seconds())
        self.chats: dict[str, _Chat] = {}
        self.stopped = False

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        """Queue one message; fires with its receipt or fails with the final error."""
        done: Deferred[Receipt] = Deferred()
        if self.stopped:
            done.errback(ChannelError("the channel is stopped"))
            return done
        chat = self.chats.get(target.chat_id)
        if chat is None:
            if len(self.chats) >= DESTINATION_LIMIT:
                self._forget_idle()
            if len(self.chats) >= DESTINATION_LIMIT:
                done.errback(ChannelError("too many chats with queued messages; try again later"))
                return done
            chat = self.chats[target.chat_id] = _Chat(target.chat_id, bucket=Bucket(self.limits.chat_rate, self.limits.chat_burst, self.clock.seconds()))
        if len(chat.queue) >= QUEUE_LIMIT:
            done.errback(ChannelError(f"the send queue for chat {target.chat_id} is full; try again later"))
            return done
        chat.queue.append(_Item(target, message, done))
        self._pump(chat)
        return done

    def _forget_idle(self) -> None:
        """Drop chats with nothing queued whose rate limits have recovered (their state is the default again)."""
        now = self.clock.seconds()
        for key, chat in list(self.chats.items()):
            assert chat.bucket is not None
            if not chat.queue and not chat.busy and chat.paused_until <= now and chat.bucket.wait(now) == 0 and chat.bucket.tokens >= chat.bucket.burst:
                del self.chats[key]

    def queued(self) -> int:
        return sum(len(c.queue) for c in self.chats.values())

    def stop(self) -> None:
        """Fail everything queued (the journal keeps what must be resent after a restart)."""
        self.stopped = True
        for chat in list(self.chats.values()):
            if chat.timer is not None and chat.timer.active():
                chat.timer.cancel()
            while chat.queue:
                item = chat.queue.popleft()
                if not item.done.called:
                    item.done.errback(ChannelError("the channel stopped"))
        self.chats.clear()

    # -- the per-chat worker

    def _pump(self, chat: _Chat) -> None:
        if chat.timer is not None and chat.timer.active():
            chat.timer.cancel()  # called early (a new message, a send done): one timer per chat
        chat.timer = None
        if chat.busy or self.stopped:
            return
        if not chat.queue:
            return  # the chat (and its rate limit) stays until L{_forget_idle}
        now = self.clock.seconds()
        assert chat.bucket is not None
        wait = max(chat.paused_until - now, chat.bucket.wait(now), self.account.wait(now))
        if wait > 0:
            if chat.timer is None:
                chat.timer = self.clock.callLater(wait, self._pump, chat)
            return
        chat.bucket.take(now)
        self.account.take(now)
        item = chat.queue[0]
        chat.busy = True
        try:
            d = self._send(item.target, item.message)
        except Exception as e:  # a channel bug must not stop the queue
            d = Deferred()
            d.errback(e)
        timer = self.clock.callLater(SEND_TIMEOUT, d.cancel)
        d.addBoth(self._stop_timer, timer)
        d.addCallbacks(self._sent, self._failed, callbackArgs=(chat, item), errbackArgs=(chat, item))

    @staticmethod
    def _stop_timer(result: T, timer: IDelayedCall) -> T:
        if timer.active():
            timer.cancel()
        return result

    def _sent(self, receipt: Receipt, chat: _Chat, item: _Item) -> None:
        chat.busy = False
        chat.backoff.reset()
        if chat.queue and chat.queue[0] is item:
            chat.queue.popleft()
        try:
            self.on_sent(receipt)
        finally:
            if not item.done.called:
                item.done.callback(receipt)
            self._pump(chat)

    def _failed(self, failure: Failure, chat: _Chat, item: _Item) -> None:
        chat.busy = False
        if self.stopped:
            return
        error = failure.value
        now = self.clock.seconds()
        if isinstance(error, CancelledError):
            error = ChannelError(f"the platform did not answer within {SEND_TIMEOUT:g} s")
        retry = False
        if isinstance(error, RetryAfter) and item.rate_limited < RATE_LIMIT_ATTEMPTS:
            item.rate_limited += 1
            chat.paused_until = now + min(error.seconds, MAX_PAUSE)
            retry = True
        elif isinstance(error, Moved) and item.moves < MAX_MOVES:
            item.moves += 1
            for queued in chat.queue:
                queued.target = attrs.evolve(queued.target, chat_id=error.chat_id)
            retry = True
        elif not isinstance(error, FINAL) and not isinstance(error, (RetryAfter, Moved)) and item.attempts + 1 < TRANSIENT_ATTEMPTS:
            item.attempts += 1
            chat.paused_until = now + chat.backoff.next()
            retry = True
        if not retry:
            if chat.queue and chat.queue[0] is item:
                chat.queue.popleft()
            if not isinstance(error, ChannelError):
                log.failure("send to chat {chat} failed", failure, chat=chat.key)
            if not item.done.called:
                item.done.errback(error if isinstance(error, ChannelError) else ChannelError(f"send failed: {type(error).__name__}: {error}"))
        self._pump(chat)
