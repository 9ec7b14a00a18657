# -*- test-case-name: tests.test_irc -*-
"""
L{IrcChannel}: one IRC identity on one network.

Each run of the receive loop is one connection: a C{ClientService} dials
the endpoint (TLS verified by default with C{optionsForClientTLS}),
L{IrcConnection} registers (CAP/SASL, NickServ, nick fallbacks) and joins
the configured channels, and the run ends when the link does; the
framework's supervisor then backs off and runs it again, so status sees
every disconnect. (The service's own retry is not used: two backoff loops
would fight, and a disconnect would stay invisible to status.)

IRC has no history and no message ids: what is said while the gateway is
away is gone, and each connection numbers its messages itself
(C{<connection>.<n>}), so dedupe holds within a connection only. Queries
(private messages to our nick) are DMs, channels are groups where a
message mentions us when it holds our current nick as a word.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, TypeVar, cast

import attrs
from OpenSSL import SSL
from twisted.application.internet import ClientService
from twisted.internet._sslverify import IOpenSSLTrustRoot  # the trust root interface Twisted documents (not re-exported)
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import LogPublisher, Logger
from zope.interface import implementer

from openclaw.channels.interfaces import (
    DM,
    GROUP,
    AccountConfig,
    ChannelError,
    ChannelHost,
    IChannel,
    IInbound,
    InboundMessage,
    Limits,
    Outbound,
    Receipt,
    Rejected,
    Target,
    Unsupported,
)
from openclaw.channels.irc.protocol import IrcConnection, Settings
from openclaw.channels.irc.text import CHANNEL_PREFIXES, casefold, is_channel, line_budget, mentions, parse_prefix, split_message, strip_formatting

T = TypeVar("T")

log = Logger(namespace="openclaw.channels.irc")

LIMITS = Limits(chunk=350, max_text=4000, typing_every=None, chat_rate=1.0, chat_burst=3, account_rate=2.0, account_burst=6)
READY_WAIT = 45.0  # a send waits this long for the next connection (under the outbox's 60 s)
QUIT_MESSAGE = "OpenClaw gateway stopping"
_NICK = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,31}$")
_CHANNEL = re.compile(r"^[#&+!][^\s,\x07]{1,49}$")


class _OneConnection(ClientService):
    """A ClientService for one connection: it is stopped when that ends, so its retry never runs (nor is logged)."""

    _log = Logger(observer=LogPublisher())  # no observers: its events go nowhere


@attrs.frozen
class Network:
    host: str
    port: int
    tls: bool
    trust: IOpenSSLTrustRoot | None = None  # a trust root (channels.irc.tlsCaFile), or None for the system's
    connect_timeout: float = 30.0


@implementer(IChannel)
class IrcChannel:
    limits = LIMITS

    def __init__(self, account: AccountConfig, host: ChannelHost, network: Network, settings: Settings, patterns: list[re.Pattern[str]], name_matching: bool) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.network = network
        self.settings = settings
        self.patterns = patterns
        self.name_matching = name_matching
        self.conn: IrcConnection | None = None
        self.conn_id: str | None = None
        self.self_ids: frozenset[str] = frozenset()
        self._inbound: IInbound | None = None
        self._waiting: list[Deferred[IrcConnection]] = []
        self._seq = 0
        self._closed = False

    # -- connecting

    def endpoint(self) -> IStreamClientEndpoint:
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self.reactor, self.network.host, self.network.port, timeout=self.network.connect_timeout)
        if self.network.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(self.network.host, trustRoot=self.network.trust), endpoint)
        return endpoint

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _run(self, inbound: IInbound) -> None:
        self._inbound = inbound
        factory = Factory.forProtocol(lambda: IrcConnection(self.settings, self.reactor, self._message, self._problems))
        service = _OneConnection(self.endpoint(), factory, retryPolicy=lambda attempt: 3600.0, clock=self.reactor)
        service.startService()
        conn: IrcConnection | None = None
        failed_to_connect = False
        try:
            try:
                conn = cast(IrcConnection, await service.whenConnected(failAfterFailures=1))
            except CancelledError:
                raise
            except Exception as e:
                failed_to_connect = True
                raise ChannelError(f"cannot connect to {self.network.host}:{self.network.port}: {_describe(e)}") from None
            try:
                await conn.registered
            except ChannelError:
                raise
            except Exception as e:
                raise ChannelError(self._link_error(e)) from None
            self.conn, self.conn_id, self._seq = conn, f"{int(time.time()):x}{secrets.token_hex(2)}", 0
            self.self_ids = frozenset({conn.nickname})
            log.info("irc {account}: registered on {host} as {nick}", account=self.account.account_id, host=self.network.host, nick=conn.nickname)
            inbound.connected()
            self._problems(conn.problems)
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                if not d.called:
                    d.callback(conn)
            reason = await conn.lost
            raise ChannelError(self._link_error(conn.failure) if conn.failure is not None else reason)
        finally:
            if conn is not None:
                conn.registered.addErrback(lambda f: None)
                if self.conn is conn:
                    self.conn = None
                if not conn.gone and conn.transport is not None:
                    conn.raw(f"QUIT :{QUIT_MESSAGE}")
            if failed_to_connect:
                # We are inside the service's own transition (its failure callback): stopping now is refused as reentrant.
                self.reactor.callLater(0, service.stopService)
            else:
                service.stopService()

    def _link_error(self, e: BaseException) -> str:
        if isinstance(e, ChannelError):
            return str(e)
        if isinstance(e, SSL.Error) or "certificate" in str(e).lower() or type(e).__name__ == "VerificationError":
            return (
                f"TLS with {self.network.host}:{self.network.port} failed ({_describe(e)}): the server's certificate is not trusted or does not name the host; "
                "check channels.irc.host, or trust a private CA with channels.irc.tlsCaFile"
            )
        return f"the IRC connection failed: {_describe(e)}"

    def _problems(self, problems: dict[str, str]) -> None:
        if self._inbound is not None:
            self._inbound.problem("; ".join(problems.values()) or None)

    # -- receiving

    def _message(self, conn: IrcConnection, user: str, target: str, text: str) -> None:
        if conn is not self.conn or self._inbound is None:
            return  # a connection we are done with
        nick, ident, host = parse_prefix(user)
        if not nick or casefold(nick) == casefold(conn.nickname) or not text.strip():
            return
        chantypes = conn.supported.getFeature("CHANTYPES") if conn.supported is not None else None
        group = is_channel(target, chantypes if isinstance(chantypes, str) and chantypes else CHANNEL_PREFIXES)
        self._seq += 1
        plain = strip_formatting(text)
        message = InboundMessage(
            channel=self.account.channel,
            account_id=self.account.account_id,
            chat_id=casefold(target) if group else nick,
            chat_type=GROUP if group else DM,
            sender_id=f"{nick}!{ident}@{host}" if ident and host else nick,
            message_id=f"{self.conn_id}.{self._seq}",
            text=plain,
            sender_name=nick,
            sender_username=nick if self.name_matching else None,
            chat_title=target if group else None,
            mentions_me=group and (mentions(plain, conn.nickname) or any(p.search(plain) for p in self.patterns)),
            ts_ms=int(self.reactor.seconds() * 1000),
        )
        try:
            self._inbound.received(message)
        except ChannelError as e:
            log.info("irc: message from {nick} not taken: {e}", nick=nick, e=str(e))
        except Exception:
            log.failure("irc: could not journal a message from {nick}", nick=nick)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        if raw.lower().startswith("irc:"):
            raw = raw[4:].strip()
        for prefix in ("channel:", "user:"):
            if raw.lower().startswith(prefix):
                raw = raw[len(prefix) :].strip()
        if _CHANNEL.match(raw):
            return Target(casefold(raw))
        if _NICK.match(raw):
            return Target(raw)
        raise ValueError(f"{to!r} is not an IRC channel (#name) or nick")

    def _ready(self) -> Deferred[IrcConnection]:
        conn = self.conn
        if conn is not None and conn.registered.called and not conn.gone:
            return succeed(conn)
        if self._closed:
            d: Deferred[IrcConnection] = Deferred()
            d.errback(ChannelError("the IRC channel is stopped"))
            return d
        waiter: Deferred[IrcConnection] = Deferred()
        self._waiting.append(waiter)

        def expire() -> None:
            if not waiter.called:
                waiter.errback(ChannelError(f"not connected to {self.network.host} (waited {READY_WAIT:g} s)"))

        def done(result: T) -> T:
            if timer.active():
                timer.cancel()
            if waiter in self._waiting:
                self._waiting.remove(waiter)  # answered, expired or cancelled: no longer waiting
            return result

        timer = self.reactor.callLater(READY_WAIT, expire)
        waiter.addBoth(done)
        return waiter

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        text = message.text
        if message.media is not None:
            if not message.media.url or message.media.url.startswith("data:"):
                raise Rejected("IRC cannot carry uploads; give the attachment as a URL")
            text = f"{text}\n{message.media.url}".strip()
        conn = await self._ready()
        lines = split_message(text, line_budget(conn.nickname, conn.username or conn.nickname, target.chat_id))
        if not lines:
            raise Rejected("empty message")
        await conn.send_lines([f"PRIVMSG {target.chat_id} :{line}" for line in lines])
        self._seq += 1
        return Receipt(f"{self.conn_id}.out{self._seq}", target.chat_id)

    def typing(self, target: Target) -> Deferred[None]:
        return succeed(None)  # IRC has no typing indicator

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        d: Deferred[Receipt] = Deferred()
        d.errback(Unsupported("IRC has no polls"))
        return d

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        conn = self.conn
        if conn is None or not conn.registered.called or conn.gone:
            return {"ok": False, "error": f"not connected to {self.network.host}:{self.network.port}"}
        try:
            lag = await conn.server_ping(timeout)
        except ChannelError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, "nick": conn.nickname, "server": conn.hostname, "channels": sorted(conn.joined_channels), "lagMs": int(lag * 1000)}

    def logout(self) -> Deferred[dict[str, Any]]:
        return succeed({"cleared": False})  # nothing is kept on the server side

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": "tls" if self.network.tls else "plaintext",
            "server": f"{self.network.host}:{self.network.port}",
            "wantedNick": self.settings.nick,
            "sasl": "configured" if self.settings.sasl_password else "off",
            "nickserv": bool(self.settings.nickserv_password),
            "dedupe": "per-connection",
        }
        conn = self.conn
        if conn is not None:
            out.update({"nick": conn.nickname, "sasl": conn.sasl, "channels": sorted(conn.joined_channels), "connectionId": self.conn_id})
        return out

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.settings.password, self.settings.sasl_password, self.settings.nickserv_password) if s)

    def close(self) -> Deferred[None]:
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:
                d.errback(ChannelError("the IRC channel is stopped"))
        return succeed(None)


def _describe(e: BaseException) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(_describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
