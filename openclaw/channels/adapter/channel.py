# -*- test-case-name: tests.test_channel_adapter -*-
"""
L{AdapterChannel}: a channel account whose transport is an out-of-process
adapter's WebSocket connection (role C{channel}). It is an L{IChannel} like
the built-in platforms, so the framework gives it the same access policy,
DM pairing, session routing, journal, chunking and send queues; only the
link differs: what the adapter pushes (C{channel.inbound}) is received
here, and sends and typing go out to it as C{channel.send} and
C{channel.typing} events, each send answered by its C{channel.sent}.

The adapter connects to us, so losing it is not a failure to back off
from: the account stays up, shows C{disconnected}, and waits. A send made
while no adapter is connected waits for one up to C{adapterWaitSeconds}
(default 30 s; at most L{AWAY_LIMIT} sends wait per account), then fails
with L{Unreachable} and a message that says why; a send the adapter got but
did not confirm before it went away is retried (with its C{key}, so the
adapter can drop a repeat). Inbound messages are refused with a retryable
error while L{INBOUND_BACKLOG} of the account's messages are unanswered:
the adapter keeps them and sends them again.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.adapter import frames
from openclaw.channels.interfaces import (
    AccountConfig,
    ChannelError,
    IChannel,
    IInbound,
    Limits,
    Outbound,
    Receipt,
    Target,
    Unreachable,
    Unsupported,
)
from openclaw.protocol.errors import UNAVAILABLE, GatewayError, InvalidInput

log = Logger(namespace="openclaw.channels")

DEFAULT_MAX_TEXT = 4000
DEFAULT_WAIT = 30.0  # seconds a send waits for an absent adapter
TYPING_EVERY = 5.0
AWAY_LIMIT = 100  # sends waiting for the adapter to come back, per account
IN_FLIGHT_LIMIT = 1000  # sends out to the adapter, waiting for its channel.sent
INBOUND_BACKLOG = 100  # unanswered messages past which channel.inbound says "later"
RETRY_MS = 2000


@runtime_checkable
class AdapterLink(Protocol):
    """The adapter's connection, as its channel uses it (a L{openclaw.gateway.connection.Connection})."""

    conn_id: str
    client: dict[str, Any]

    def send_direct(self, name: str, payload: Any) -> None:
        """An event for this connection only (never raises)."""

    def close(self, code: int, reason: str = "") -> None: ...


@attrs.frozen
class Declared:
    """What the adapter said about its platform when it registered."""

    max_text: int = DEFAULT_MAX_TEXT
    typing: bool = True
    self_ids: frozenset[str] = frozenset()


@attrs.define(eq=False)
class _Send:
    id: str
    target: Target
    message: Outbound
    done: Deferred[Receipt]
    timer: IDelayedCall | None = None
    out: bool = False  # on the link, waiting for channel.sent


@implementer(IChannel)
class AdapterChannel:
    def __init__(
        self,
        account: AccountConfig,
        clock: IReactorTime,
        wait: float = DEFAULT_WAIT,
        secrets: tuple[str, ...] = (),
        on_close: Callable[[AdapterChannel], None] = lambda channel: None,
    ) -> None:
        self.account = account
        self.key = (account.channel, account.account_id)
        self.name = f"{account.channel}:{account.account_id}"
        self.clock = clock
        self.wait = wait
        self._secrets = secrets
        self._on_close = on_close
        self.limits = Limits(chunk=DEFAULT_MAX_TEXT, max_text=DEFAULT_MAX_TEXT, typing_every=TYPING_EVERY)
        self.self_ids: frozenset[str] = frozenset()
        self.link: AdapterLink | None = None
        self.link_info: dict[str, Any] = {}
        self.sink: IInbound | None = None
        self.closed = False
        self._sends: OrderedDict[str, _Send] = OrderedDict()

    # -- the adapter's connection

    def attach(self, link: AdapterLink, declared: Declared, info: Mapping[str, Any]) -> None:
        """An adapter serves this account now: sends that waited for it go out, in order."""
        self.link = link
        self.link_info = dict(info)
        chunk = min(DEFAULT_MAX_TEXT, declared.max_text)
        self.limits = attrs.evolve(self.limits, chunk=chunk, max_text=declared.max_text, typing_every=TYPING_EVERY if declared.typing else None)
        self.self_ids = declared.self_ids
        if self.sink is not None:
            self.sink.problem(None)
            self.sink.connected()
        for send in list(self._sends.values()):
            if not send.out:
                self._transmit(send)

    def detach(self, link: AdapterLink, reason: str) -> None:
        """The adapter's connection went away (or was replaced)."""
        if self.link is not link:
            return
        self.link = None
        for send in [s for s in self._sends.values() if s.out]:
            # Transient: the outbox tries again, and the retry waits for the adapter to come back.
            self._finish(send).errback(ChannelError(f"the adapter went away before it confirmed the send ({reason})"))
        if self.sink is not None:
            self.sink.disconnected(f"the adapter disconnected ({reason}); sends wait {self.wait:g} s for it to reconnect")

    # -- inbound

    def receive(self, params: Mapping[str, Any]) -> bool:
        """A C{channel.inbound}: journaled before this returns; False for a duplicate."""
        sink = self.sink
        if sink is None:
            raise GatewayError(UNAVAILABLE, f"{self.name} is not running; send the message again later", retryable=True, retry_after_ms=RETRY_MS)
        waiting = sink.backlog()
        if waiting >= INBOUND_BACKLOG:
            raise GatewayError(UNAVAILABLE, f"{self.name} has {waiting} messages not answered yet; send this one again later", retryable=True, retry_after_ms=RETRY_MS)
        message = frames.inbound_message(self.account.channel, self.account.account_id, params)
        cursor = frames.cursor_of(params)
        try:
            return bool(sink.received(message, cursor))
        except ChannelError as e:
            raise GatewayError(UNAVAILABLE, str(e), retryable=True, retry_after_ms=RETRY_MS) from None

    def cursor(self) -> Any:
        return self.sink.cursor() if self.sink is not None else None

    # -- sends

    def answered(self, params: Mapping[str, Any]) -> None:
        """The adapter's C{channel.sent} for one of our C{channel.send}s."""
        send = self._sends.get(params["id"])
        if send is None or not send.out:
            raise InvalidInput(f"no send {params['id']!r} waits for an answer (answered already, or it timed out)")
        error = params.get("error")
        if error is None and not params.get("messageId"):
            raise InvalidInput("give messageId (sent) or error (not sent)")
        done = self._finish(send)
        if error is not None:
            done.errback(frames.send_error(error))
        else:
            done.callback(Receipt(params["messageId"], params.get("chatId") or send.target.chat_id))

    def _finish(self, send: _Send) -> Deferred[Receipt]:
        self._sends.pop(send.id, None)
        if send.timer is not None and send.timer.active():
            send.timer.cancel()
        return send.done

    def _away_error(self, why: str) -> Unreachable:
        return Unreachable(f"the {self.name} adapter is not connected ({why})")

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        if self.closed:
            return fail(ChannelError("the channel stopped"))
        if self.link is None:
            if self.wait <= 0:
                return fail(self._away_error("adapterWaitSeconds is 0"))
            if sum(not s.out for s in self._sends.values()) >= AWAY_LIMIT:
                return fail(self._away_error(f"{AWAY_LIMIT} sends already wait for it"))
        elif sum(s.out for s in self._sends.values()) >= IN_FLIGHT_LIMIT:
            return fail(ChannelError(f"{IN_FLIGHT_LIMIT} sends already wait for the adapter's answer"))
        send_id = uuid.uuid4().hex
        send = _Send(send_id, target, message, Deferred(lambda d: self._cancelled(send_id)))
        self._sends[send_id] = send
        if self.link is not None:
            self._transmit(send)
        else:
            send.timer = self.clock.callLater(self.wait, self._expired, send)
        return send.done

    def _transmit(self, send: _Send) -> None:
        assert self.link is not None
        if send.timer is not None and send.timer.active():
            send.timer.cancel()
        send.timer = None
        send.out = True
        self.link.send_direct("channel.send", frames.send_event(send.id, send.target, send.message))

    def _expired(self, send: _Send) -> None:
        send.timer = None
        if self._sends.get(send.id) is send:
            self._finish(send).errback(self._away_error(f"waited {self.wait:g} s for it"))

    def _cancelled(self, send_id: str) -> None:
        # The outbox gave up waiting (its send timeout): forget it; a late channel.sent is refused.
        send = self._sends.pop(send_id, None)
        if send is not None and send.timer is not None and send.timer.active():
            send.timer.cancel()

    def typing(self, target: Target) -> Deferred[None]:
        if self.link is not None:
            self.link.send_direct("channel.typing", frames.typing_event(target))
        return succeed(None)

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        return fail(Unsupported("polls are not part of the channel adapter protocol"))

    # -- IChannel

    def run(self, inbound: IInbound) -> Deferred[None]:
        """Never ends by itself: the adapter connects (and reconnects) to us. Cancelled to stop."""
        self.sink = inbound
        if self.link is not None:
            inbound.connected()
        else:
            inbound.problem(f"waiting for an adapter (role channel) to register {self.account.channel}" + (f" account {self.account.account_id}" if self.account.account_id != "default" else ""))

        def stopped(d: Deferred[None]) -> None:
            if self.sink is inbound:
                self.sink = None

        return Deferred(stopped)

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        chat = to.strip()
        if not chat or len(chat) > frames.MAX_ID:
            raise ValueError(f"a chat id the adapter knows (1 to {frames.MAX_ID} characters)")
        return Target(chat, thread_id or None, reply_to or None)

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        if self.link is None:
            return succeed({"ok": False, "error": "no adapter is connected"})
        return succeed({"ok": True, "adapter": dict(self.link_info)})

    def logout(self) -> Deferred[dict[str, Any]]:
        return fail(Unsupported("an adapter's platform session is the adapter's own"))

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": "adapter",
            "adapterConnected": self.link is not None,
            "sendsWaiting": sum(not s.out for s in self._sends.values()),
            "sendsUnconfirmed": sum(s.out for s in self._sends.values()),
        }
        if self.link is not None:
            out["adapter"] = dict(self.link_info)
        return out

    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def close(self) -> Deferred[None]:
        self.closed = True
        self.sink = None
        for send in list(self._sends.values()):
            self._finish(send).errback(ChannelError("the channel stopped"))
        self._on_close(self)
        return succeed(None)
