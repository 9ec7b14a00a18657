# -*- test-case-name: tests.test_whatsapp -*-
"""
WhatsApp Web through a helper process speaking JSON lines over stdio.

The gateway never runs a WhatsApp Web library itself: it spawns the helper
(C{channels.whatsapp.bridgeCommand}; by default the neonize script shipped
with this package, or any Baileys script speaking the same lines) and talks
to it with a L{ProcessProtocol}. One JSON object per line, UTF-8, in both
directions.

Helper → gateway (events):

  - C{{"type": "qr", "qr": "<link code>"}}: show it; a new one replaces it.
  - C{{"type": "connected", "jid": "...@s.whatsapp.net", "lid": "...@lid", "name": "..."}}
  - C{{"type": "message", "id", "chat", "sender", "senderPhone"?, "fromMe",
    "pushName", "text", "timestamp", "chatName"?, "mentions": [jid],
    "quoted": {"id", "sender", "text"}?, "media"?}}: messages this helper
    sent itself are not reported.
  - C{{"type": "status", "state": "connecting|connected|degraded|closed", "code"?, "reason"?}}:
    after C{closed} the helper exits; the gateway starts a new one (code 515,
    "restart required" after pairing, at once; others after a backoff).
  - C{{"type": "logged_out", "reason"}}: the device was unlinked; the
    helper exits and the gateway clears the session.
  - C{{"type": "error", "message", "fatal"?}}: C{fatal} means it cannot run
    as installed (the gateway stops the account with that message).
  - Replies to commands carry the command's C{id}: C{{"type": "sent", "id",
    "messageId"}}, C{{"type": "ok", "id"}} / C{{"type": "pong", "id"}}, or
    C{{"type": "error", "id", "message", "code"?, "retryAfter"?}} with
    C{code} one of C{not_connected}, C{rate_limited}, C{not_on_whatsapp},
    C{invalid}, C{too_large}, C{unsupported}.

Gateway → helper (commands, each with a unique C{id}): C{send {to, text,
quote?}}, C{send_media {to, caption, mimetype, filename, ptt, data (base64)
| url}}, C{typing {to}}, C{read {chat, sender, ids}}, C{logout}, C{ping}.
A helper may answer any command it does not know with C{code:
"unsupported"}. End of stdin means: disconnect and exit.

The helper gets C{OPENCLAW_WHATSAPP_AUTH_DIR} (its session folder, 0700;
it runs with umask 077) and C{OPENCLAW_WHATSAPP_ACCOUNT} in its
environment, which otherwise holds only what a program needs to run (no
gateway secrets). Its stderr goes to the gateway log.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from openclaw.channels.interfaces import ChannelError, ConfigProblem, IChannelReactor, Media, Rejected, RetryAfter, Unreachable, Unsupported
from openclaw.channels.whatsapp.messages import Me, WaMessage
from openclaw.channels.whatsapp.transport import ITransportEvents, IWhatsAppTransport

log = Logger(namespace="openclaw.channels.whatsapp")

Spawn = Callable[..., IProcessTransport]  # reactor.spawnProcess, or a stand-in

MAX_LINE = 4 * 1024 * 1024  # one event from the helper
MAX_PENDING = 256  # commands waiting for their reply
MAX_BAD_LINES = 20  # in a row, before the helper is taken for broken
MAX_STDERR_LINES = 1000  # logged per helper process
COMMAND_TIMEOUT = 30.0
MEDIA_TIMEOUT = 120.0
STOP_GRACE = 3.0  # after stdin closes, before SIGTERM (and as long again before SIGKILL)
PASSED_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT",
    "NODE_PATH", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "PYTHONPATH", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
HELPER = Path(__file__).with_name("neonize_helper.py")


def default_command(python: str) -> list[str]:
    """The shipped neonize helper, run by C{python} (the gateway's own interpreter)."""
    return [python, str(HELPER)]


class LineDecoder:
    """Bytes in, complete lines out (sans-IO); a line over C{limit} is reported once as None."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.limit:
                    if not self._skipping:
                        out.append(None)
                    self._skipping = True
                    self._buffer.clear()
                return out
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False  # the tail of an overlong line
                continue
            if len(line) > self.limit:
                out.append(None)
                continue
            out.append(line.rstrip(b"\r"))


def command_error(kind: str, event: Mapping[str, Any]) -> ChannelError:
    """The framework error for a helper's C{error} reply (the outbox retries only transient ones)."""
    message = str(event.get("message") or "failed")[:300]
    code = event.get("code")
    text = f"WhatsApp {kind}: {message}"
    if code == "rate_limited":
        retry = event.get("retryAfter")
        return RetryAfter(float(retry) if isinstance(retry, (int, float)) and not isinstance(retry, bool) else 5.0, text)
    if code == "not_on_whatsapp":
        return Unreachable(text)
    if code in ("invalid", "too_large"):
        return Rejected(text)
    if code == "unsupported":
        return Unsupported(text)
    return ChannelError(text)


@attrs.frozen
class Exit:
    """How a helper process ended."""

    code: int | None
    signal: int | None
    detail: str  # the last thing it said on stderr, for the error text

    def describe(self) -> str:
        how = f"signal {self.signal}" if self.signal else f"code {self.code}"
        return f"the WhatsApp helper exited ({how})" + (f": {self.detail}" if self.detail else "")


class _Helper(ProcessProtocol):
    """The process adapter: lines out of stdout and stderr, and the end."""

    def __init__(self, bridge: BridgeTransport) -> None:
        self.bridge = bridge
        self.lines = LineDecoder()
        self.errors = LineDecoder(8192)
        self.ended: Deferred[Exit] = Deferred()
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self.stderr_count = 0

    def outReceived(self, data: bytes) -> None:
        for line in self.lines.feed(data):
            self.bridge.line(self, line)

    def errReceived(self, data: bytes) -> None:
        for line in self.errors.feed(data):
            text = "(an overlong line)" if line is None else line.decode("utf-8", "replace").strip()
            if not text:
                continue
            self.stderr_tail.append(text[:300])
            self.stderr_count += 1
            if self.stderr_count <= MAX_STDERR_LINES:
                log.info("whatsapp helper: {line}", line=text[:300])
            elif self.stderr_count == MAX_STDERR_LINES + 1:
                log.warn("whatsapp helper: further stderr is not logged")

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        if isinstance(value, ProcessDone):
            code = 0
        exit = Exit(code if isinstance(value, (ProcessDone, ProcessTerminated)) else None, sig, self.stderr_tail[-1] if self.stderr_tail else "")
        self.bridge.ended(self, exit)
        if not self.ended.called:
            self.ended.callback(exit)


def _helper_env(env: Mapping[str, str], auth_dir: Path, account_id: str) -> dict[str, str]:
    out = {k: env[k] for k in PASSED_ENV if k in env}
    out.setdefault("PATH", os.defpath)
    out["OPENCLAW_WHATSAPP_AUTH_DIR"] = str(auth_dir)
    out["OPENCLAW_WHATSAPP_ACCOUNT"] = account_id
    out["PYTHONUNBUFFERED"] = "1"
    return out


def resolve_command(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The argv with its program found on PATH; L{ConfigProblem} when it is not there."""
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise ConfigProblem("channels.whatsapp.bridgeCommand must be a non-empty command (a list of strings)")
    program = argv[0]
    found = program if os.sep in program else shutil.which(program, path=env.get("PATH") or os.defpath)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise ConfigProblem(f"the WhatsApp helper program {program!r} was not found or is not executable: install it, or set channels.whatsapp.bridgeCommand")
    return [found, *argv[1:]]


@implementer(IWhatsAppTransport)
class BridgeTransport:
    kind = "web"
    needs_link = True

    def __init__(
        self,
        reactor: IChannelReactor,
        argv: Sequence[str],
        auth_dir: Path,
        account_id: str,
        env: Mapping[str, str],
        ping_every: float = 60.0,
        ping_timeout: float = 30.0,
        spawn: Spawn | None = None,
    ) -> None:
        self.reactor = reactor
        self.argv = list(argv)
        self.auth_dir = Path(auth_dir)
        self.account_id = account_id
        self.env = env
        self.ping_every = ping_every
        self.ping_timeout = ping_timeout
        self._spawn = spawn or reactor.spawnProcess
        self.helper: _Helper | None = None
        self.events: ITransportEvents | None = None
        self.last_activity_ms: int | None = None
        self.starts = 0
        self._pending: dict[str, tuple[Deferred[dict[str, Any]], IDelayedCall, str]] = {}
        self._next_id = 0
        self._bad_lines = 0
        self._timers: list[IDelayedCall] = []
        self._pinger: LoopingCall | None = None

    # -- the session folder

    def may_be_linked(self) -> bool:
        try:
            return any(not p.name.startswith(".") for p in self.auth_dir.iterdir())
        except OSError:
            return False

    def clear(self) -> None:
        """Delete the session (a new link starts from nothing)."""
        if self.auth_dir.is_dir():
            for child in self.auth_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def secure(self) -> None:
        """Keep the session private (0700 folders, 0600 files) whatever the helper's umask was."""
        if not self.auth_dir.is_dir():
            return
        for root, dirs, files in os.walk(self.auth_dir):
            for names, mode in ((dirs, 0o700), (files, 0o600)):
                for name in names:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        os.chmod(path, mode)
        os.chmod(self.auth_dir, 0o700)

    # -- the process

    @property
    def running(self) -> bool:
        return self.helper is not None

    def run(self, events: ITransportEvents) -> Deferred[Exit]:
        """Start the helper; fires with its L{Exit} when it ends. Cancelling kills it."""
        if self.helper is not None:
            raise ChannelError("the WhatsApp helper is already running")
        argv = resolve_command(self.argv, self.env)
        self.auth_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.auth_dir, 0o700)
        helper = _Helper(self)
        self.events = events
        self._bad_lines = 0
        old = os.umask(0o077)  # the helper's files are the session's secrets
        try:
            self._spawn(helper, argv[0], argv, env=_helper_env(self.env, self.auth_dir, self.account_id), path=str(self.auth_dir))
        except OSError as e:
            raise ConfigProblem(f"the WhatsApp helper could not be started: {e.strerror or e}") from None
        finally:
            os.umask(old)
        self.helper = helper
        self.starts += 1
        self.last_activity_ms = int(self.reactor.seconds() * 1000)
        if self.ping_every > 0:
            self._pinger = LoopingCall(self._ping)
            self._pinger.clock = self.reactor
            self._pinger.start(self.ping_every, now=False)

        def cancel(d: Deferred[Exit]) -> None:
            self.kill()

        out: Deferred[Exit] = Deferred(cancel)
        def relay(exit: Exit) -> None:
            if not out.called:
                out.callback(exit)

        helper.ended.addCallback(relay)
        return out

    def _write(self, value: dict[str, Any]) -> None:
        helper = self.helper
        if helper is None or helper.transport is None:
            raise ChannelError("the WhatsApp helper is not running")
        helper.transport.write(json.dumps(value, separators=(",", ":")).encode() + b"\n")

    def stop(self) -> None:
        """Close the helper's stdin (it disconnects and exits); TERM, then KILL, if it lingers."""
        helper = self.helper
        if helper is None or helper.transport is None:
            return
        try:
            helper.transport.closeStdin()
        except Exception:
            pass
        self._timers.append(self.reactor.callLater(STOP_GRACE, self._signal, helper, "TERM"))
        self._timers.append(self.reactor.callLater(2 * STOP_GRACE, self._signal, helper, "KILL"))

    def kill(self) -> None:
        if self.helper is not None:
            self._signal(self.helper, "KILL")

    def _signal(self, helper: _Helper, name: str) -> None:
        if helper is not self.helper or helper.transport is None:
            return
        try:
            helper.transport.signalProcess(name)
        except (ProcessExitedAlready, OSError):
            pass

    def ended(self, helper: _Helper, exit: Exit) -> None:
        if helper is not self.helper:
            return
        self.helper = None
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None
        pending, self._pending = self._pending, {}
        for d, timer, kind in pending.values():
            if timer.active():
                timer.cancel()
            if not d.called:
                d.errback(ChannelError(f"WhatsApp {kind}: the helper exited before answering"))
        try:
            self.secure()
        except OSError:
            pass

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        helper = self.helper
        if helper is None:
            return
        self.stop()
        def give_up() -> None:
            if not helper.ended.called:
                helper.ended.cancel()

        timer = self.reactor.callLater(3 * STOP_GRACE, give_up)
        try:
            await helper.ended
        except CancelledError:
            log.warn("the WhatsApp helper did not exit")
        finally:
            if timer.active():
                timer.cancel()

    # -- what it says

    def line(self, helper: _Helper, raw: bytes | None) -> None:
        if helper is not self.helper:
            return
        self.last_activity_ms = int(self.reactor.seconds() * 1000)
        try:
            if raw is None:
                raise ValueError("a line over the size limit")
            if not raw.strip():
                return
            event = json.loads(raw)
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise ValueError("not an object with a type")
        except ValueError as e:
            self._bad_lines += 1
            log.warn("whatsapp helper wrote a line that is not a JSON event ({error})", error=str(e)[:100])
            if self._bad_lines >= MAX_BAD_LINES:
                log.error("whatsapp helper: {n} bad lines in a row; stopping it", n=self._bad_lines)
                self.kill()
            return
        self._bad_lines = 0
        try:
            self._dispatch(event)
        except Exception:
            log.failure("whatsapp helper event {type} could not be handled", type=event.get("type"))

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        ident = event.get("id")
        if isinstance(ident, str) and ident in self._pending and kind in ("sent", "ok", "pong", "error"):
            d, timer, command = self._pending.pop(ident)
            if timer.active():
                timer.cancel()
            if kind == "error":
                d.errback(command_error(command, event))
            else:
                d.callback(event)
            return
        events = self.events
        if events is None:
            return
        if kind == "qr" and isinstance(event.get("qr"), str) and event["qr"]:
            events.qr(event["qr"][:2048])
        elif kind == "connected":
            events.connected(Me.from_json(event))
        elif kind == "message":
            message = WaMessage.from_event(event)
            if message is not None:
                events.message(message)
        elif kind == "status":
            code = event.get("code")
            events.status(str(event.get("state") or ""), str(event["reason"])[:300] if event.get("reason") else None, code if isinstance(code, int) and not isinstance(code, bool) else None)
        elif kind == "logged_out":
            events.logged_out(str(event.get("reason") or "logged out")[:300])
        elif kind == "error":
            events.error(str(event.get("message") or "unknown error")[:500], event.get("fatal") is True)
        elif kind in ("sent", "ok", "pong"):
            log.debug("whatsapp helper: late reply {id}", id=str(ident))
        else:
            log.debug("whatsapp helper: unknown event {type}", type=kind[:40])

    # -- commands

    def request(self, kind: str, fields: dict[str, Any] | None = None, timeout: float = COMMAND_TIMEOUT) -> Deferred[dict[str, Any]]:
        """Send a command; fires with its reply, or fails (timeout, helper gone, its error)."""
        d: Deferred[dict[str, Any]] = Deferred()
        if self.helper is None:
            d.errback(ChannelError(f"WhatsApp {kind}: the helper is not running"))
            return d
        if len(self._pending) >= MAX_PENDING:
            d.errback(ChannelError(f"WhatsApp {kind}: too many commands waiting for the helper"))
            return d
        self._next_id += 1
        ident = f"c{self._next_id}"

        def expire() -> None:
            entry = self._pending.pop(ident, None)
            if entry is not None and not entry[0].called:
                entry[0].errback(ChannelError(f"WhatsApp {kind}: no answer from the helper within {timeout:g} s"))

        timer = self.reactor.callLater(timeout, expire)
        self._pending[ident] = (d, timer, kind)
        try:
            self._write({"type": kind, "id": ident, **(fields or {})})
        except ChannelError as e:
            self._pending.pop(ident, None)
            timer.cancel()
            d.errback(e)
        return d

    def _ping(self) -> None:
        d = self.request("ping", timeout=self.ping_timeout)

        def silent(failure: Failure) -> None:
            if self.helper is not None and "no answer" in failure.getErrorMessage():
                log.warn("the WhatsApp helper stopped answering; restarting it")
                if self.events is not None:
                    self.events.error("the WhatsApp helper stopped answering (no reply to a ping)", False)
                self.kill()

        d.addErrback(silent)

    def send_text(self, to: str, text: str, quote: str | None) -> Deferred[str]:
        fields: dict[str, Any] = {"to": to, "text": text}
        if quote:
            fields["quote"] = quote
        return self.request("send", fields).addCallback(_message_id)

    def send_media(self, to: str, media: Media, caption: str) -> Deferred[str]:
        fields: dict[str, Any] = {"to": to, "caption": caption, "ptt": media.as_voice}
        if media.content_type:
            fields["mimetype"] = media.content_type
        if media.filename:
            fields["filename"] = media.filename
        if media.data is not None:
            fields["data"] = base64.b64encode(media.data).decode("ascii")
        elif media.url:
            fields["url"] = media.url
        else:
            d: Deferred[str] = Deferred()
            d.errback(Rejected("the attachment has neither data nor a URL"))
            return d
        return self.request("send_media", fields, timeout=MEDIA_TIMEOUT).addCallback(_message_id)

    def typing(self, to: str) -> Deferred[None]:
        return self.request("typing", {"to": to}).addCallback(lambda _: None)

    def read(self, chat: str, sender: str, message_ids: list[str]) -> Deferred[None]:
        return self.request("read", {"chat": chat, "sender": sender, "ids": message_ids}).addCallback(lambda _: None)

    def logout(self) -> Deferred[bool]:
        return Deferred.fromCoroutine(self._logout())

    async def _logout(self) -> bool:
        """Tell WhatsApp to unlink: through the running helper, or a short-lived one."""
        if self.helper is not None:
            try:
                await self.request("logout", timeout=10.0)
                return True
            except ChannelError:
                return False
        if not self.may_be_linked():
            return False
        up: Deferred[None] = Deferred()
        sink = _LogoutSink(up)
        try:
            ended = self.run(sink)
        except ChannelError:
            return False
        def late() -> None:
            if not up.called:
                up.errback(ChannelError("not connected in time"))

        timer = self.reactor.callLater(20.0, late)
        try:
            await up
            await self.request("logout", timeout=10.0)
            return True
        except ChannelError as e:
            log.info("whatsapp logout on the phone's side failed: {error}", error=str(e))
            return False
        finally:
            if timer.active():
                timer.cancel()
            await self._close()
            ended.addErrback(lambda f: None)

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        if self.helper is None:
            return {"ok": False, "helper": "not running"}
        started = self.reactor.seconds()
        try:
            await self.request("ping", timeout=timeout)
        except ChannelError as e:
            return {"ok": False, "helper": "not answering", "error": str(e)}
        return {"ok": True, "helper": "answering", "elapsedMs": int((self.reactor.seconds() - started) * 1000)}

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.last_activity_ms is not None:
            out["lastTransportActivityAt"] = self.last_activity_ms
        return out

    def secrets(self) -> tuple[str, ...]:
        return ()


def _message_id(reply: dict[str, Any]) -> str:
    ident = reply.get("messageId")
    if not isinstance(ident, str) or not ident:
        raise ChannelError("the WhatsApp helper answered a send without the message id")
    return ident


@implementer(ITransportEvents)
class _LogoutSink:
    """The events of a helper started only to log out: wait for the link, ignore the rest."""

    def __init__(self, up: Deferred[None]) -> None:
        self.up = up

    def qr(self, payload: str) -> None:
        if not self.up.called:
            self.up.errback(ChannelError("not linked"))

    def connected(self, me: Me) -> None:
        if not self.up.called:
            self.up.callback(None)

    def message(self, message: WaMessage) -> bool:
        return False

    def status(self, state: str, reason: str | None, code: int | None) -> None:
        if state == "closed" and not self.up.called:
            self.up.errback(ChannelError(reason or "closed"))

    def logged_out(self, reason: str) -> None:
        if not self.up.called:
            self.up.errback(ChannelError("already logged out"))

    def error(self, message: str, fatal: bool) -> None:
        if fatal and not self.up.called:
            self.up.errback(ChannelError(message))

