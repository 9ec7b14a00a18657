# -*- test-case-name: tests.test_imessage -*-
"""
L{IMessageChannel}: one iMessage account, served by a C{imsg rpc} child.

Start: spawn C{<cliPath> rpc [--db <dbPath>]}, then C{watch.subscribe}
(with C{since_rowid} from the journaled cursor, so messages that arrived
while the gateway was down are replayed; see L{messages} for the backlog
fence). Each C{message} notification is journaled with the cursor past it.
The child ending (a crash, a wrapper whose SSH connection dropped) ends the
receive loop: the framework starts a new child after its backoff, and the
watch resumes after the last row journaled. A child that does not answer
C{watch.subscribe} in time is stopped the same way.

Sends go through the running child (C{send} with C{chat_id}, C{chat_guid},
C{chat_identifier} or C{to} + C{service}); while it restarts a send waits
for it a little. Typing (C{typing}) needs imsg's private-API mode: the first
refusal turns it off until the next child.
"""

from __future__ import annotations

import re
import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.imessage.messages import ACCEPT, BACKLOG, MALFORMED, SEEN, STALE, Cursor, judge, normalize
from openclaw.channels.imessage.process import RpcFailed, RpcProcess, spawn
from openclaw.channels.imessage.rpc import Notification
from openclaw.channels.interfaces import (
    AccountConfig,
    ChannelError,
    ChannelHost,
    IChannel,
    IInbound,
    ITypingStop,
    Limits,
    Outbound,
    Receipt,
    Rejected,
    Target,
    Unsupported,
)

log = Logger(namespace="openclaw.channels.imessage")

LIMITS = Limits(chunk=4000, max_text=20000, typing_every=10.0, chat_rate=1.0, chat_burst=3, account_rate=5.0, account_burst=10)
DEFAULT_TIMEOUT = 30.0
SEND_WAIT = 15.0  # a send waits this long for a restarting child
SERVICES = ("imessage", "sms", "auto")
_CHAT_ID = re.compile(r"^\d{1,18}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{2,30}$")
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s:]+\.[^@\s:]+$")
_PREFIXED = ("chat_guid:", "chat_identifier:")
_REFUSALS = (-32600, -32601, -32602)
_AUTOMATION = ("not authorized", "not allowed to send", "-1743", "automation")
AUTOMATION_FIX = (
    "macOS refused to let imsg drive Messages: allow Automation for the process that runs imsg "
    "(System Settings → Privacy & Security → Automation → Messages), or run `imsg send` once in that user's GUI session"
)


@implementer(IChannel, ITypingStop)
class IMessageChannel:
    limits = LIMITS
    self_ids: frozenset[str] = frozenset()  # own messages are marked is_from_me and dropped before the framework

    def __init__(self, account: AccountConfig, host: ChannelHost, argv: list[str], env: dict[str, str]) -> None:
        self.account = account
        self.reactor = host.reactor
        self.argv = argv
        self.env = env
        config = account.config
        self.timeout = float(_number(config.get("timeoutSeconds"), DEFAULT_TIMEOUT, 1, 600))
        service = config.get("service")
        self.service = service if service in SERVICES else "auto"
        region = config.get("region")
        self.region = region if isinstance(region, str) and region.strip() else None
        self.attachments = config.get("includeAttachments") is True
        groups = config.get("groups")
        self.groups: dict[str, Any] = groups if isinstance(groups, dict) else {}
        self.process: RpcProcess | None = None  # the current child
        self.live: RpcProcess | None = None  # the current child once its watch is up (sends go there)
        self.subscription: Any = None
        self._sink: IInbound | None = None
        self._waiters: list[Deferred[RpcProcess]] = []
        self._typing_ok = True
        self._children: set[RpcProcess] = set()
        self._closed = False
        self.suppressed = 0

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _run(self, inbound: IInbound) -> None:
        if self._closed:
            raise ChannelError("the iMessage channel is closed")
        self._sink = inbound
        failed: Deferred[None] = Deferred()
        try:
            process = spawn(self.reactor, self.argv, self.env, lambda n: self._notified(n, inbound, failed), f"imsg {self.account.account_id}")
        except OSError as e:
            raise ChannelError(f"cannot start {self.argv[0]}: {e.strerror or e}") from None
        self.process = process
        self._children.add(process)

        def ended(error: ChannelError | None) -> None:
            self._children.discard(process)
            if not failed.called:
                failed.errback(error or ChannelError("imsg rpc exited"))

        process.ended.addCallback(ended)
        self._typing_ok = True
        try:
            params: dict[str, Any] = {"attachments": self.attachments}
            cursor = Cursor.from_json(inbound.cursor())
            if cursor is not None and cursor.rowid > 0:
                params["since_rowid"] = cursor.rowid
            answer = await process.request("watch.subscribe", params, timeout=self.timeout)
            self.subscription = answer.get("subscription") if isinstance(answer, dict) else None
            self.live = process
            inbound.problem(None)
            inbound.connected()
            self._ready(process)
            await failed
        except ChannelError:
            if process.problem:
                inbound.problem(process.problem)
            raise
        finally:
            if self.process is process:
                self.process = self.live = None
                self.subscription = None
            if not failed.called:
                failed.callback(None)
            failed.addErrback(lambda f: None)
            process.stop()

    def _notified(self, note: Notification, inbound: IInbound, failed: Deferred[None]) -> None:
        if failed.called:
            return
        if note.method == "error":
            params = note.params if isinstance(note.params, dict) else {}
            error = params["error"] if isinstance(params.get("error"), dict) else {}
            text = str(error.get("message") or params.get("message") or "unknown error")[:300]
            if "full disk access" in text.lower() or "chat.db" in text.lower():
                inbound.problem(f"{text} — grant Full Disk Access to the process that runs imsg")
            failed.errback(ChannelError(f"imsg watch failed: {text}"))
            return
        if note.method != "message":
            return
        params = note.params if isinstance(note.params, dict) else {}
        message = params.get("message")
        cursor = Cursor.from_json(inbound.cursor())
        verdict = judge(message, cursor, int(self.reactor.seconds() * 1000))
        if verdict.action == MALFORMED:
            log.warn("imsg {account}: a message notification without id or chat_id was skipped", account=self.account.account_id)
            return
        if verdict.action == SEEN:
            return
        assert isinstance(message, dict) and verdict.cursor is not None
        try:
            if verdict.action == ACCEPT:
                inbound.received(normalize(message, verdict.ts_ms, self.groups, account_id=self.account.account_id), verdict.cursor.to_json())
                return
            if verdict.action in (BACKLOG, STALE):
                self.suppressed += 1
                log.info(
                    "imsg {account}: suppressed a {kind} message (row {rowid}, sent {age:.0f} min ago; {count} since start)",
                    account=self.account.account_id,
                    kind="stale backlog" if verdict.action == BACKLOG else "too old",
                    rowid=verdict.cursor.rowid,
                    age=(self.reactor.seconds() * 1000 - verdict.ts_ms) / 60000 if verdict.ts_ms else 0,
                    count=self.suppressed,
                )
            inbound.advance(verdict.cursor.to_json())
        except Exception as e:
            # Not journaled: end this child so the next one replays from the last cursor kept.
            if not isinstance(e, ChannelError):
                log.failure("imsg {account}: could not keep a message", account=self.account.account_id)
            failed.errback(e if isinstance(e, ChannelError) else ChannelError(f"could not keep a message: {type(e).__name__}: {e}"))

    # -- the live child, for sends

    def _ready(self, process: RpcProcess) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if not d.called:
                d.callback(process)

    async def _live(self, wait: float) -> RpcProcess:
        process = self.live
        if process is not None and not process.exited:
            return process
        if self._closed:
            raise ChannelError("the iMessage channel is closed")
        d: Deferred[RpcProcess] = Deferred()
        self._waiters.append(d)
        def expire() -> None:
            if not d.called:
                d.errback(ChannelError(f"imsg rpc is not running (waited {wait:g} s for it)"))

        timer = self.reactor.callLater(wait, expire)
        try:
            return await d
        finally:
            if timer.active():
                timer.cancel()
            if d in self._waiters:
                self._waiters.remove(d)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        lowered = raw.lower()
        if lowered.startswith("imessage:") and not lowered.startswith("imessage:+") and not _EMAIL.match(raw[9:]):
            raw = raw[9:].strip()  # the channel prefix, as in `imessage:chat_id:42`
            lowered = raw.lower()
        if lowered.startswith("chat_id:"):
            raw = raw[8:].strip()
            if not _CHAT_ID.match(raw):
                raise ValueError(f"{to!r}: chat_id must be a number")
            return Target(raw)
        if _CHAT_ID.match(raw):
            return Target(raw)
        for prefix in _PREFIXED:
            if lowered.startswith(prefix):
                value = raw[len(prefix) :].strip()
                if not value or len(value) > 300:
                    raise ValueError(f"{to!r}: {prefix[:-1]} is empty or too long")
                return Target(prefix + value)
        service = None
        for name in SERVICES:
            if lowered.startswith(name + ":"):
                service, raw = name, raw[len(name) + 1 :].strip()
                break
        if not (_EMAIL.match(raw) or (_PHONE.match(raw) and sum(c.isdigit() for c in raw) >= 3)):
            raise ValueError(f"{to!r} is not an iMessage chat_id:<n>, chat_guid:, chat_identifier:, phone number or email")
        return Target(f"{service}:{raw}" if service else raw)

    def _address(self, target: Target) -> dict[str, Any]:
        chat = target.chat_id
        if _CHAT_ID.match(chat):
            return {"chat_id": int(chat)}
        for prefix in _PREFIXED:
            if chat.startswith(prefix):
                return {prefix[:-1]: chat[len(prefix) :]}
        service = self.service
        for name in SERVICES:
            if chat.startswith(name + ":"):
                service, chat = name, chat[len(name) + 1 :]
                break
        params: dict[str, Any] = {"to": chat, "service": service}
        if self.region:
            params["region"] = self.region
        return params

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        if message.media is not None:
            raise Unsupported("iMessage attachments are not sent by this gateway (imsg needs a file on the Mac that runs Messages)")
        if not message.text.strip():
            raise Rejected("empty message")
        process = await self._live(SEND_WAIT)
        params = {**self._address(target), "text": message.text}
        try:
            result = await process.request("send", params, timeout=self.timeout)
        except RpcFailed as e:
            text = e.error.text().lower()
            if any(word in text for word in _AUTOMATION):
                if self._sink is not None:
                    self._sink.problem(AUTOMATION_FIX)
                raise Rejected(f"{e} — {AUTOMATION_FIX}") from None
            if e.error.code in _REFUSALS:
                raise Rejected(str(e)) from None
            raise ChannelError(str(e)) from None
        if not isinstance(result, dict) or result.get("ok") is False:
            raise ChannelError("imsg send: the helper did not confirm the message")
        mid = result.get("guid") or result.get("id") or ""
        return Receipt(str(mid), target.chat_id)

    def typing(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target, True))

    def typing_stop(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target, False))

    async def _typing(self, target: Target, on: bool) -> None:
        process = self.live
        if not self._typing_ok or process is None:
            return
        try:
            await process.request("typing", {**self._address(target), "typing": on}, timeout=min(self.timeout, 10.0))
        except RpcFailed as e:
            if self.live is process:
                self._typing_ok = False  # basic mode (no private API): do not ask again for this child
            log.info("imsg {account}: typing indicators are off ({error})", account=self.account.account_id, error=str(e))

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        d: Deferred[Receipt] = Deferred()
        d.errback(Unsupported("iMessage has no polls here"))
        return d

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        process = self.live
        temporary = None
        try:
            if process is None:
                temporary = process = spawn(self.reactor, self.argv, self.env, lambda n: None, f"imsg probe {self.account.account_id}")
            answer = await process.request("chats.list", {"limit": 1}, timeout=timeout)
        except ChannelError as e:
            out: dict[str, Any] = {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
            if process is not None and process.problem:
                out["error"] = process.problem
            return out
        finally:
            if temporary is not None:
                self._children.add(temporary)
                temporary.stop(0.5).addCallback(lambda _: self._children.discard(temporary))
        chats = answer.get("chats") if isinstance(answer, dict) else None
        return {"ok": isinstance(chats, list), "chats": len(chats) if isinstance(chats, list) else None, "elapsedMs": int((time.monotonic() - started) * 1000)}

    def logout(self) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        d.callback({"cleared": False})  # Messages stays signed in; the gateway just stops reading it
        return d

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": "rpc", "cliPath": self.argv[0], "service": self.service}
        if "--db" in self.argv:
            out["dbPath"] = self.argv[self.argv.index("--db") + 1]
        if self.process is not None and self.process.pid is not None:
            out["pid"] = self.process.pid
        if self.suppressed:
            out["suppressedBacklog"] = self.suppressed
        if self.process is not None and self.process.garbage:
            out["skippedLines"] = self.process.garbage
        return out

    def secrets(self) -> tuple[str, ...]:
        return ()

    def close(self) -> Deferred[None]:
        self._closed = True
        for d in self._waiters:
            if not d.called:
                d.errback(ChannelError("the iMessage channel is closed"))
        self._waiters = []
        self.process = self.live = None
        stopping = [p.stop() for p in list(self._children)]
        return DeferredList(stopping, consumeErrors=True).addCallback(lambda _: None)


def _number(value: Any, default: float, low: float, high: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default

