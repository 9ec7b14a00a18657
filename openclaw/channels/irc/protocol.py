# -*- test-case-name: tests.test_irc -*-
"""
L{IrcConnection}: one IRC connection on twisted.words' C{IRCClient}.

Registration, by hand where IRCClient has nothing: C{CAP LS 302} (registration
waits for C{CAP END}), C{PASS}, C{NICK}, C{USER}; with SASL configured and
offered, C{CAP REQ :sasl}, C{AUTHENTICATE PLAIN} and the base64 credentials
in 400-byte pieces; 903 ends the negotiation, 904/905/902 refuse it
(L{AuthFailed}). Without SASL on the server, NickServ C{IDENTIFY} after 001
stands in. A nick in use (433) registers as C{nick_}, C{nick__}, ... and
takes the nick back later (NickServ C{GHOST} when it has a password).

Keepalive: a line from the server resets an idle timer; when it runs out
we C{PING}, and when nothing comes back in time the connection is dead
and dropped. Outgoing messages are paced (a burst, then one line per
C{lineRate} seconds) and each send learns when its last line was written,
or that the connection closed first.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Callable, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols import irc

from openclaw.channels.interfaces import AuthFailed, ChannelError, ConfigProblem
from openclaw.channels.irc.text import casefold as irc_lower

T = TypeVar("T")

log = Logger(namespace="openclaw.channels.irc")

SASL_CHUNK = 400
MAX_ALTERNATES = 3
QUEUE_LIMIT = 1000  # paced lines waiting
LINE_BURST = 4
REGAIN_DELAY = 2.0
FATAL = {
    "464": "the server password was refused (464): check channels.irc.password",
    "465": "this client is banned from the server (465)",
    "902": "the nick is locked by services (902): check channels.irc.sasl / nickserv",
    "904": "SASL PLAIN authentication failed (904): check channels.irc.sasl.username and password",
    "905": "the SASL credentials are too long (905)",
    "906": "SASL authentication was aborted (906)",
}
JOIN_ERRORS = {"403": "no such channel", "405": "joined too many channels", "471": "the channel is full", "473": "invite only", "474": "banned", "475": "wrong channel key", "477": "needs a registered nick"}


@attrs.frozen
class Settings:
    nick: str
    username: str
    realname: str
    password: str | None = attrs.field(default=None, repr=False)  # server PASS
    sasl_user: str | None = None
    sasl_password: str | None = attrs.field(default=None, repr=False)
    nickserv_service: str = "NickServ"
    nickserv_password: str | None = attrs.field(default=None, repr=False)
    nickserv_register_email: str | None = None
    channels: tuple[str, ...] = ()
    line_rate: float = 1.0
    ping_interval: float = 90.0
    ping_timeout: float = 60.0
    register_timeout: float = 30.0


class IrcConnection(irc.IRCClient):
    # IRCClient's class defaults type these as their literal values.
    performLogin = 0  # registration is ours (CAP first)
    heartbeatInterval = None  # type: ignore[assignment]  # keepalive is ours (it also notices a dead link)
    versionName = "OpenClaw"  # type: ignore[assignment]
    sourceURL = None  # type: ignore[assignment]

    def __init__(
        self,
        settings: Settings,
        clock: IReactorTime,
        on_message: Callable[[IrcConnection, str, str, str], None],
        on_problems: Callable[[dict[str, str]], None] = lambda problems: None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.on_message = on_message
        self.on_problems = on_problems
        self.nickname = settings.nick
        self.username = settings.username
        self.realname = settings.realname  # type: ignore[assignment]  # (None in IRCClient)
        self.registered: Deferred[str] = Deferred()
        self.lost: Deferred[str] = Deferred()
        self.joined_channels: set[str] = set()
        self.problems: dict[str, str] = {}  # what status should show (join failures, nick taken, ...)
        self.sasl = "off" if not settings.sasl_password else "pending"
        self.error_text: str | None = None
        self.failure: Exception | None = None
        self._cap_ls: list[str] = []
        self._cap_open = False
        self._alternates = 0
        self._queue: deque[tuple[str, Deferred[None] | None]] = deque()  # type: ignore[assignment]
        self._tokens = float(LINE_BURST)
        self._tokens_at = 0.0
        self._pump_timer: IDelayedCall | None = None
        self._idle: IDelayedCall | None = None
        self._dead: IDelayedCall | None = None
        self._register_timer: IDelayedCall | None = None
        self._regain: IDelayedCall | None = None
        self.gone = False  # the connection closed
        self._ping_waiters: dict[str, tuple[float, Deferred[float]]] = {}
        self._ping_seq = 0
        self.connected_at: float | None = None

    # -- connection

    def connectionMade(self) -> None:
        super().connectionMade()
        self._queue = deque()
        self._tokens_at = self.clock.seconds()
        self.connected_at = self.clock.seconds()
        self._register_timer = self.clock.callLater(self.settings.register_timeout, self._register_expired)
        self._idle_reset()
        self._cap_open = True
        self.raw("CAP LS 302")
        if self.settings.password:
            self.raw(f"PASS {self.settings.password}")
        self.setNick(self.settings.nick)
        self.raw(f"USER {self.username} 0 * :{self.realname}")

    def raw(self, line: str) -> None:
        """A control line, at once (not paced)."""
        self._reallySendLine(line)

    def sendLine(self, line: str) -> None:  # IRCClient's own commands (PONG, JOIN, NICK, CTCP replies)
        self._reallySendLine(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.gone = True
        for timer in (self._idle, self._dead, self._register_timer, self._pump_timer, self._regain):
            if timer is not None and timer.active():
                timer.cancel()
        why: BaseException = self.failure or (ChannelError(self._why(reason)) if self.error_text or self._registered or reason.value is None else reason.value)
        while self._queue:
            _, done = self._queue.popleft()
            if done is not None and not done.called:
                done.errback(ChannelError("the IRC connection closed before the message was sent"))
        for _, waiter in list(self._ping_waiters.values()):
            if not waiter.called:
                waiter.errback(ChannelError("the IRC connection closed"))
        self._ping_waiters.clear()
        if not self.registered.called:
            self.registered.errback(why)
        if not self.lost.called:
            self.lost.callback(str(self.failure) if self.failure is not None else self._why(reason))

    def _why(self, reason: Failure) -> str:
        if self.error_text:
            return f"the server closed the link: {self.error_text[:300]}"
        return f"the IRC connection was lost: {reason.getErrorMessage() or type(reason.value).__name__}"

    def abort(self, error: Exception) -> None:
        """Give up this connection (registration refused, dead link)."""
        if self.failure is None:
            self.failure = error
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()

    def _register_expired(self) -> None:
        self.abort(ChannelError(f"no welcome from the IRC server within {self.settings.register_timeout:g} s"))

    # -- incoming lines

    def lineReceived(self, line: bytes) -> None:
        self._idle_reset()
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")  # older clients still send Latin-1
        text = text.rstrip("\r")
        if text.startswith("@"):  # IRCv3 tags (not requested, but harmless)
            text = text.partition(" ")[2]
        try:
            prefix, command, params = irc.parsemsg(irc.lowDequote(text))
        except (irc.IRCBadMessage, ValueError, IndexError):
            log.debug("irc: unparsable line ignored: {line!r}", line=text[:200])
            return
        command = irc.numeric_to_symbolic.get(command, command)
        self.handleCommand(command, prefix, params)

    def handleCommand(self, command: str, prefix: str, params: list[str]) -> None:
        method = getattr(self, f"irc_{command}", None)
        try:
            if method is not None:
                method(prefix, params)
            else:
                self.irc_unknown(prefix, command, params)
        except Exception:
            log.failure("irc: handling {command} failed", command=command)

    def irc_unknown(self, prefix: str, command: str, params: list[str]) -> None:
        if command in FATAL:
            self._fatal(AuthFailed(FATAL[command]))
        elif command == "903":
            self.sasl = "ok"
            self._cap_end()
        elif command == "907":  # already authenticated
            self.sasl = "ok"
            self._cap_end()
        elif command in JOIN_ERRORS and len(params) >= 2:
            channel = irc_lower(params[1])
            self.problems[f"join {channel}"] = f"cannot join {params[1]}: {JOIN_ERRORS[command]} ({command})"
            self.on_problems(self.problems)
            log.warn("irc: cannot join {channel}: {why}", channel=params[1], why=params[-1][:200])

    def _fatal(self, error: Exception) -> None:
        log.warn("irc: {error}", error=str(error))
        self.abort(error)

    def irc_ERR_PASSWDMISMATCH(self, prefix: str, params: list[str]) -> None:
        self._fatal(AuthFailed(FATAL["464"]))

    def irc_ERR_YOUREBANNEDCREEP(self, prefix: str, params: list[str]) -> None:
        self._fatal(AuthFailed(FATAL["465"] + (f": {params[-1][:200]}" if params else "")))

    def irc_ERROR(self, prefix: str, params: list[str]) -> None:
        self.error_text = params[-1] if params else "ERROR"
        log.info("irc: server says ERROR {text}", text=self.error_text[:300])

    def irc_PONG(self, prefix: str, params: list[str]) -> None:
        token = params[-1] if params else ""
        found = self._ping_waiters.pop(token, None)
        if found is not None and not found[1].called:
            found[1].callback(self.clock.seconds() - found[0])

    def irc_NOTICE(self, prefix: str, params: list[str]) -> None:
        if len(params) < 2 or not params[-1]:
            return
        nick = prefix.split("!", 1)[0]
        if irc_lower(nick) == irc_lower(self.settings.nickserv_service):
            log.info("irc: {service} says: {text}", service=nick, text=irc.stripFormatting(params[-1])[:300])

    def ctcpQuery(self, user: str, channel: str, messages: list[tuple[str, str | None]]) -> None:
        for tag, data in messages:
            if tag == "ACTION" and data:
                self.on_message(self, user, channel, f"* {data}")
            elif tag in ("VERSION", "PING"):
                super().ctcpQuery(user, channel, [(tag, data)])
            # everything else (DCC included) is ignored

    # -- CAP and SASL

    def irc_CAP(self, prefix: str, params: list[str]) -> None:
        if len(params) < 3:
            return
        sub = params[1].upper()
        if sub == "LS":
            more = len(params) >= 4 and params[2] == "*"
            self._cap_ls.extend(params[-1].split())
            if more:
                return
            caps = {c.partition("=")[0].lower(): c.partition("=")[2] for c in self._cap_ls}
            mechanisms = caps.get("sasl")
            if self.sasl == "pending" and "sasl" in caps and (not mechanisms or "PLAIN" in mechanisms.upper().split(",")):
                self.raw("CAP REQ :sasl")
                return
            if self.sasl == "pending":
                self.sasl = "unavailable"
            self._cap_end()
        elif sub == "ACK":
            if "sasl" in [c.lower().lstrip("-~=") for c in params[-1].split()] and self.sasl == "pending":
                self.raw("AUTHENTICATE PLAIN")
            else:
                self._cap_end()
        elif sub == "NAK":
            if self.sasl == "pending":
                self.sasl = "unavailable"
            self._cap_end()

    def irc_AUTHENTICATE(self, prefix: str, params: list[str]) -> None:
        if not params or params[0] != "+" or self.sasl != "pending":
            return
        for piece in sasl_plain(self.settings.sasl_user or self.settings.nick, self.settings.sasl_password or ""):
            self.raw(f"AUTHENTICATE {piece}")

    def irc_ERR_UNKNOWNCOMMAND(self, prefix: str, params: list[str]) -> None:
        if len(params) >= 2 and params[1].upper() == "CAP":  # a server without capability negotiation
            if self.sasl == "pending":
                self.sasl = "unavailable"
            self._cap_open = False

    def _cap_end(self) -> None:
        if self._cap_open:
            self._cap_open = False
            self.raw("CAP END")

    # -- nick

    def irc_ERR_NICKNAMEINUSE(self, prefix: str, params: list[str]) -> None:
        if self._registered:
            return  # a later attempt to take our nick back; keep the one we have
        self._alternates += 1
        if self._alternates > MAX_ALTERNATES:
            self.abort(ChannelError(f"the nick {self.settings.nick} and {MAX_ALTERNATES} alternates are in use"))
            return
        self.setNick(self.settings.nick + "_" * self._alternates)

    irc_ERR_NICKCOLLISION = irc_ERR_NICKNAMEINUSE
    irc_ERR_UNAVAILRESOURCE = irc_ERR_NICKNAMEINUSE

    def irc_ERR_ERRONEUSNICKNAME(self, prefix: str, params: list[str]) -> None:
        if not self._registered:
            self._fatal(ConfigProblem(f"the server refuses the nick {self._attemptedNick!r} (432): set channels.irc.nick to a valid nick"))

    def nickChanged(self, nick: str) -> None:
        super().nickChanged(nick)
        if irc_lower(nick) == irc_lower(self.settings.nick):
            self.problems.pop("nick", None)
            self.on_problems(self.problems)
            log.info("irc: took the nick {nick} back", nick=nick)

    def _take_nick_back(self) -> None:
        if self._registered and irc_lower(self.nickname) != irc_lower(self.settings.nick):
            self.setNick(self.settings.nick)

    # -- registered

    def signedOn(self) -> None:
        if self._register_timer is not None and self._register_timer.active():
            self._register_timer.cancel()
        self._cap_open = False
        if self.sasl == "pending":
            self.sasl = "unavailable"  # welcomed without SASL (a server that ignored CAP)
        service = self.settings.nickserv_service
        if self.sasl != "ok" and self.settings.nickserv_password:
            self.raw(f"PRIVMSG {service} :IDENTIFY {self.settings.nickserv_password}")
        elif self.sasl == "unavailable" and self.settings.sasl_password:
            log.info("irc: the server offers no SASL PLAIN; identifying with {service} instead", service=service)
            self.raw(f"PRIVMSG {service} :IDENTIFY {self.settings.sasl_user or self.settings.nick} {self.settings.sasl_password}")
        if self.settings.nickserv_register_email and self.settings.nickserv_password:
            self.raw(f"PRIVMSG {service} :REGISTER {self.settings.nickserv_password} {self.settings.nickserv_register_email}")
        if irc_lower(self.nickname) != irc_lower(self.settings.nick):
            self.problems["nick"] = f"the nick {self.settings.nick} is in use; connected as {self.nickname}"
            log.warn("irc: {problem}", problem=self.problems["nick"])
            if self.settings.nickserv_password:
                self.raw(f"PRIVMSG {service} :GHOST {self.settings.nick} {self.settings.nickserv_password}")
                self._regain = self.clock.callLater(REGAIN_DELAY, self._take_nick_back)
        for channel in self.settings.channels:
            self.join(channel)
        if not self.registered.called:
            self.registered.callback(self.nickname)

    def joined(self, channel: str) -> None:
        self.joined_channels.add(irc_lower(channel))
        if self.problems.pop(f"join {irc_lower(channel)}", None) is not None:
            self.on_problems(self.problems)

    def left(self, channel: str) -> None:
        self.joined_channels.discard(irc_lower(channel))

    def kickedFrom(self, channel: str, kicker: str, message: str) -> None:
        self.joined_channels.discard(irc_lower(channel))
        self.problems[f"join {irc_lower(channel)}"] = f"kicked from {channel} by {kicker}: {message[:200]}"
        self.on_problems(self.problems)
        log.warn("irc: kicked from {channel} by {kicker}: {message}", channel=channel, kicker=kicker, message=message[:200])

    def privmsg(self, user: str, channel: str, message: str) -> None:
        self.on_message(self, user, channel, message)

    def irc_ERR_CANNOTSENDTOCHAN(self, prefix: str, params: list[str]) -> None:
        if len(params) >= 2:
            self.problems[f"send {irc_lower(params[1])}"] = f"cannot send to {params[1]}: {params[-1][:200]}"
            self.on_problems(self.problems)
            log.warn("irc: cannot send to {channel}: {why}", channel=params[1], why=params[-1][:200])

    def irc_ERR_NOSUCHNICK(self, prefix: str, params: list[str]) -> None:
        if len(params) >= 2:
            log.info("irc: no such nick/channel {target}", target=params[1])

    # -- keepalive

    def _idle_reset(self) -> None:
        if self._dead is not None and self._dead.active():
            self._dead.cancel()
        self._dead = None
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.settings.ping_interval)
        else:
            self._idle = self.clock.callLater(self.settings.ping_interval, self._quiet)

    def _quiet(self) -> None:
        """Nothing heard for a while: ask, and give the answer C{ping_timeout} seconds."""
        self._take_nick_back()
        self.raw(f"PING :keepalive-{int(self.clock.seconds())}")
        self._dead = self.clock.callLater(self.settings.ping_timeout, self._no_pong)

    def _no_pong(self) -> None:
        silent = self.settings.ping_interval + self.settings.ping_timeout
        self.abort(ChannelError(f"the IRC server did not answer a PING within {self.settings.ping_timeout:g} s (silent for {silent:g} s): the connection is dead"))

    def server_ping(self, timeout: float) -> Deferred[float]:
        """Round-trip seconds of a PING (probes, and the confirmation of each message)."""
        self._ping_seq += 1
        token = f"oc-{self._ping_seq}"
        waiter: Deferred[float] = Deferred()
        self._ping_waiters[token] = (self.clock.seconds(), waiter)
        self.raw(f"PING :{token}")

        def expire() -> None:
            if self._ping_waiters.pop(token, None) is not None and not waiter.called:
                waiter.errback(ChannelError(f"no PONG within {timeout:g} s"))

        timer = self.clock.callLater(timeout, expire)

        def answered(result: T) -> T:
            if timer.active():
                timer.cancel()
            return result

        return waiter.addBoth(answered)

    # -- paced sends

    def send_lines(self, lines: list[str]) -> Deferred[None]:
        """Queue message lines; fires when the server confirmed the last (fails if the link goes first)."""
        done: Deferred[None] = Deferred()
        if self.transport is None or self.gone:
            done.errback(ChannelError("the IRC connection is closed"))
            return done
        if len(self._queue) + len(lines) > QUEUE_LIMIT:
            done.errback(ChannelError("too many IRC lines waiting to be sent; try again later"))
            return done
        if not lines:
            done.callback(None)
            return done
        for i, line in enumerate(lines):
            self._queue.append((line, done if i == len(lines) - 1 else None))
        self._pump()
        return done

    def _pump(self) -> None:
        self._pump_timer = None
        rate = self.settings.line_rate
        while self._queue:
            now = self.clock.seconds()
            if rate > 0:
                self._tokens = min(float(LINE_BURST), self._tokens + (now - self._tokens_at) / rate)
                self._tokens_at = now
                if self._tokens < 1:
                    self._pump_timer = self.clock.callLater((1 - self._tokens) * rate, self._pump)
                    return
                self._tokens -= 1
            line, done = self._queue.popleft()
            self._reallySendLine(line)
            if done is not None and not done.called:
                self._confirm(done)

    def _confirm(self, done: Deferred[None]) -> None:
        """
        IRC acknowledges nothing, but a server handles a client's lines in
        order: the PONG to a PING sent after a message's last line says the
        message was taken. Without it (the link dropped) the send fails and
        goes again on the next connection.
        """
        self.server_ping(self.settings.ping_timeout).addCallbacks(
            lambda _: None if done.called else done.callback(None),
            lambda f: None if done.called else done.errback(ChannelError(f"the IRC server did not confirm the message ({f.getErrorMessage()})")),
        )


def sasl_plain(user: str, password: str) -> list[str]:
    """C{AUTHENTICATE} arguments for PLAIN: base64 in 400-byte pieces, C{+} after an exact multiple."""
    payload = base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode()
    pieces = [payload[i : i + SASL_CHUNK] for i in range(0, len(payload), SASL_CHUNK)]
    if len(payload) % SASL_CHUNK == 0:
        pieces.append("+")
    return pieces

