# -*- test-case-name: tests.test_discord_units -*-
"""
Discord's gateway v10 on one WebSocket connection (sans-IO: frames in,
frames and a close out; timers on the clock it is given).

HELLO gives the heartbeat interval: the first beat goes after
C{interval × random()}, then one every interval, each carrying the last
sequence number. A beat due while the previous one is not acknowledged
means the connection is a zombie: it is closed with a non-1000 code (so the
session stays resumable) and the next connection RESUMEs. The server may
ask for a beat at once (op 1). After HELLO comes IDENTIFY, or RESUME when a
session is known; READY (or RESUMED) makes the connection usable.

How a connection ended says what comes next (L{Ending}): resume it (op 7,
op 9 with C{d: true}, drops, most close codes), identify afresh after a
pause (op 9 with C{d: false}: 1-5 s) or after close 4007/4009, or stop for
good (4004 bad token, 4010-4014 configuration: no reconnect; the error names
the fix). Sends are held to Discord's 120 events per 60 s, with room kept
for heartbeats.
"""

from __future__ import annotations

import json
import random
from collections import deque
from typing import Any, Callable, Mapping

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from openclaw.channels.interfaces import AuthFailed, ChannelError, ConfigProblem

log = Logger(namespace="openclaw.channels.discord")

DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
RESUME = 6
RECONNECT = 7
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

GUILDS = 1 << 0
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15  # privileged: also switched on in the Developer Portal

SEND_LIMIT = 120  # events a connection may send per window
SEND_WINDOW = 60.0
SEND_RESERVE = 5  # of those, kept for heartbeats
HELD_LIMIT = 50
HELLO_TIMEOUT = 20.0
READY_TIMEOUT = 30.0
CLIENT_CLOSE = 4000  # what we close with: anything but 1000/1001 keeps the session resumable

# What happens after a connection ends.
AGAIN = "resume"  # reconnect and RESUME (or IDENTIFY when no session is known)
FRESH = "identify"  # forget the session, IDENTIFY on the next connection
STOP = "stop"  # never reconnect: the account needs a fix

TOKEN_FIX = "check channels.discord.token (or tokenFile / DISCORD_BOT_TOKEN)"
CONTENT_FIX = (
    "enable the Message Content Intent in the Discord Developer Portal (your application → Bot → Privileged Gateway Intents) "
    "and restart the account, or set channels.discord.intents.messageContent: false (then guild messages arrive without text unless they mention the bot)"
)
FATAL_CLOSES: dict[int, Callable[[], ChannelError]] = {
    4004: lambda: AuthFailed(f"Discord refused the bot token (gateway close 4004 Authentication failed): {TOKEN_FIX}"),
    4010: lambda: ConfigProblem("Discord refused the shard (gateway close 4010 Invalid shard): this gateway connects as a single shard"),
    4011: lambda: ConfigProblem("Discord requires sharding for this bot (gateway close 4011 Sharding required): it is in too many servers for one connection, which this gateway does not support yet"),
    4012: lambda: ConfigProblem("Discord refused the gateway API version (close 4012 Invalid API version): this gateway speaks v10"),
    4013: lambda: ConfigProblem("Discord refused the gateway intents (close 4013 Invalid intent(s)): check channels.discord.intents"),
    4014: lambda: ConfigProblem(f"Discord refused a privileged intent (gateway close 4014 Disallowed intent(s)): {CONTENT_FIX}"),
}
REIDENTIFY_CLOSES = {4007: "Invalid seq", 4009: "Session timed out"}


def intents_for(message_content: bool) -> int:
    """GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES, plus MESSAGE_CONTENT when asked for."""
    bits = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES
    return bits | MESSAGE_CONTENT if message_content else bits


@attrs.define
class Ending:
    """How a connection ended: what to do next, why, and how long to wait first."""

    action: str  # AGAIN, FRESH or STOP
    error: ChannelError
    delay: float = 0.0


@attrs.define
class SessionState:
    """
    The gateway session, kept across connections (and, through the journal's
    cursor, across restarts). C{seq} is the last sequence number received (for
    heartbeats); C{done} the last one fully handled, which RESUME asks Discord
    to replay after.
    """

    session_id: str | None = None
    resume_url: str | None = None
    seq: int | None = None
    done: int | None = None

    @property
    def resumable(self) -> bool:
        return bool(self.session_id) and self.done is not None

    def forget(self) -> None:
        self.session_id = self.resume_url = None
        self.seq = self.done = None

    def cursor(self) -> dict[str, Any] | None:
        if not self.resumable:
            return None
        return {"sessionId": self.session_id, "seq": self.done, "resumeUrl": self.resume_url}

    @classmethod
    def from_cursor(cls, value: Any) -> SessionState:
        if not isinstance(value, Mapping):
            return cls()
        session, seq, url = value.get("sessionId"), value.get("seq"), value.get("resumeUrl")
        if not isinstance(session, str) or not session or not isinstance(seq, int) or isinstance(seq, bool):
            return cls()
        return cls(session, url if isinstance(url, str) and url else None, seq, seq)


class GatewaySession:
    """One connection's protocol: the adapter feeds it frames and executes its sends and close."""

    def __init__(
        self,
        clock: IReactorTime,
        token: str,
        intents: int,
        state: SessionState,
        send_text: Callable[[str], None],
        close: Callable[[int, str, bool], None],
        dispatch: Callable[[str, Any, int | None], None],
        rng: random.Random | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        self.clock = clock
        self._token = token
        self.intents = intents
        self.state = state
        self._send_text = send_text
        self._close = close
        self._dispatch = dispatch
        self.rng = rng or random.Random()
        self.properties = dict(properties or {"os": "linux", "browser": "openclaw", "device": "openclaw"})
        self.phase = "connecting"  # → hello → identifying | resuming → ready → closed
        self.ending: Ending | None = None
        self.interval: float | None = None
        self.acked = True
        self.beats = 0
        self.last_beat_at: float | None = None
        self.latency: float | None = None
        self.user: dict[str, Any] | None = None
        self.resumed = False
        self.reached_ready = False
        self._beat: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None
        self._flush: IDelayedCall | None = None
        self._sent: deque[float] = deque()
        self._held: deque[dict[str, Any]] = deque()

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    # -- input

    def opened(self) -> None:
        self.phase = "hello"
        self._expect(HELLO_TIMEOUT, "Discord sent no HELLO")

    def received(self, payload: bytes | str) -> None:
        if self.phase == "closed":
            return
        try:
            frame = json.loads(payload)
        except ValueError:
            log.warn("discord: a gateway frame that is not JSON was ignored")
            return
        if not isinstance(frame, dict):
            return
        op, data = frame.get("op"), frame.get("d")
        if op == DISPATCH:
            seq = frame.get("s")
            if isinstance(seq, int) and not isinstance(seq, bool):
                self.state.seq = seq
            name = frame.get("t")
            if isinstance(name, str):
                self._dispatched(name, data, seq if isinstance(seq, int) else None)
        elif op == HEARTBEAT_ACK:
            self.acked = True
            if self.last_beat_at is not None:
                self.latency = self.clock.seconds() - self.last_beat_at
        elif op == HEARTBEAT:
            self._send_beat()  # the server asks for one now
        elif op == HELLO:
            self._hello(data)
        elif op == RECONNECT:
            self.end(Ending(AGAIN, ChannelError("Discord asked for a reconnect (op 7)")))
        elif op == INVALID_SESSION:
            if data is True:
                self.end(Ending(AGAIN, ChannelError("Discord invalidated the session (op 9); resuming")))
            else:
                self.state.forget()
                self.end(Ending(FRESH, ChannelError("Discord invalidated the session (op 9); identifying afresh"), self.rng.uniform(1.0, 5.0)))

    def closed(self, code: int | None, reason: str | None = None) -> Ending:
        """The connection is gone: what to do next."""
        self._stop_timers()
        self.phase = "closed"
        if self.ending is not None:
            return self.ending
        said = f"{code} {reason}".strip() if reason else str(code)
        if code in FATAL_CLOSES:
            self.ending = Ending(STOP, FATAL_CLOSES[code]())
        elif code in REIDENTIFY_CLOSES:
            self.state.forget()
            self.ending = Ending(FRESH, ChannelError(f"Discord closed the gateway ({code} {REIDENTIFY_CLOSES[code]}); identifying afresh"))
        else:
            self.ending = Ending(AGAIN, ChannelError(f"the Discord gateway connection closed ({said})"))
        return self.ending

    def end(self, ending: Ending, abort: bool = False) -> None:
        """Close this connection for C{ending}'s reason (the first reason wins)."""
        if self.ending is not None or self.phase == "closed":
            return
        self.ending = ending
        self._stop_timers()
        self._close(CLIENT_CLOSE, str(ending.error)[:120], abort)

    def stop(self) -> None:
        """The adapter is going away: no more timers."""
        self._stop_timers()

    # -- the protocol

    def _hello(self, data: Any) -> None:
        interval = data.get("heartbeat_interval") if isinstance(data, dict) else None
        if self.phase != "hello" or not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            self.end(Ending(AGAIN, ChannelError("Discord sent an unexpected HELLO")))
            return
        self.interval = interval / 1000.0
        self._beat = self.clock.callLater(self.interval * self.rng.random(), self._heartbeat)
        if self.state.resumable:
            self.phase = "resuming"
            self.state.seq = self.state.done
            self.send({"op": RESUME, "d": {"token": self._token, "session_id": self.state.session_id, "seq": self.state.done}})
        else:
            self.phase = "identifying"
            self.state.seq = None
            self.send({"op": IDENTIFY, "d": {"token": self._token, "intents": self.intents, "properties": self.properties}})
        self._expect(READY_TIMEOUT, "Discord sent no READY")

    def _dispatched(self, name: str, data: Any, seq: int | None) -> None:
        if name == "READY" and isinstance(data, dict):
            self.phase = "ready"
            self.reached_ready = True
            self.user = data["user"] if isinstance(data.get("user"), dict) else None
            session = data.get("session_id")
            self.state.session_id = session if isinstance(session, str) else None
            url = data.get("resume_gateway_url")
            self.state.resume_url = url if isinstance(url, str) and url else None
            self._cancel_deadline()
        elif name == "RESUMED":
            self.phase = "ready"
            self.reached_ready = self.resumed = True
            self._cancel_deadline()
        self._dispatch(name, data, seq)

    def _heartbeat(self) -> None:
        self._beat = None
        if not self.acked:
            self.end(Ending(AGAIN, ChannelError(f"no heartbeat ACK from Discord within {self.interval:g} s (zombie connection); resuming")), abort=True)
            return
        self._send_beat()
        assert self.interval is not None
        self._beat = self.clock.callLater(self.interval, self._heartbeat)

    def _send_beat(self) -> None:
        self.acked = False
        self.beats += 1
        self.last_beat_at = self.clock.seconds()
        self.send({"op": HEARTBEAT, "d": self.state.seq}, urgent=True)

    def _expect(self, seconds: float, what: str) -> None:
        self._cancel_deadline()

        def expired() -> None:
            self._deadline = None
            self.end(Ending(AGAIN, ChannelError(f"{what} within {seconds:g} s")), abort=True)

        self._deadline = self.clock.callLater(seconds, expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _stop_timers(self) -> None:
        self._cancel_deadline()
        for timer in (self._beat, self._flush):
            if timer is not None and timer.active():
                timer.cancel()
        self._beat = self._flush = None
        self._held.clear()

    # -- sending, within 120 events a minute

    def send(self, frame: dict[str, Any], urgent: bool = False) -> None:
        """Send a frame now if the window allows (heartbeats use the reserve), else when it does."""
        if self.phase == "closed" or self.ending is not None:
            return
        now = self.clock.seconds()
        while self._sent and now - self._sent[0] >= SEND_WINDOW:
            self._sent.popleft()
        room = SEND_LIMIT if urgent else SEND_LIMIT - SEND_RESERVE
        if len(self._sent) < room and not (self._held and not urgent):
            self._sent.append(now)
            self._send_text(json.dumps(frame))
            return
        if urgent or len(self._held) >= HELD_LIMIT:
            log.warn("discord: gateway send limit reached; a frame (op {op}) was dropped", op=frame.get("op"))
            return
        self._held.append(frame)
        if self._flush is None:
            self._flush = self.clock.callLater(max(0.0, self._sent[0] + SEND_WINDOW - now), self._release)

    def _release(self) -> None:
        self._flush = None
        held, self._held = self._held, deque()
        for frame in held:
            self.send(frame)
