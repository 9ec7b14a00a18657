# -*- test-case-name: tests.test_whatsapp -*-
"""
L{WhatsAppChannel}: one WhatsApp account over a transport (WhatsApp Web
through a helper process, or the Cloud API).

WhatsApp Web is a linked device, so the account has a link state besides
the framework's: C{unlinked} (no session: nothing runs until someone logs
in), C{linking} (a QR code is shown), C{connecting}, C{connected},
C{reconnecting}. An unlinked account waits for C{web.login.start} (the
Control UI) or C{openclaw channels login whatsapp} (the CLI) instead of
looping; the QR both show is the same one, kept here. WhatsApp ending the
link (removed on the phone, expired, code 401/403/411/500) clears the
session and shows the fix in status; code 515 after pairing restarts the
helper at once, once.

Sends go through the live link: when there is none (not linked) they fail
at once, as upstream's do; while the link comes up (start, reconnect) they
wait for it a little.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.interfaces import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IChannel,
    IInbound,
    Limits,
    Outbound,
    Receipt,
    Rejected,
    Target,
    Unsupported,
)
from openclaw.channels.whatsapp import qr as qrcode
from openclaw.channels.whatsapp.messages import Me, WaMessage, self_chat_enabled, target_of, to_inbound, to_jid
from openclaw.channels.whatsapp.transport import ITransportEvents, IWhatsAppTransport
from openclaw.store import read_json, write_json

log = Logger(namespace="openclaw.channels.whatsapp")

WEB_LIMITS = Limits(chunk=4000, max_text=65536, typing_every=8.0, chat_rate=1.0, chat_burst=3, account_rate=5.0, account_burst=10)
CLOUD_LIMITS = Limits(chunk=4000, max_text=4096, typing_every=None, chat_rate=1.0, chat_burst=3, account_rate=20.0, account_burst=40)
CONNECT_WAIT = 15.0  # a send waits this long for a link that is coming up
SENT_MEMORY = 1000  # ids of messages we sent, so their echoes are never taken as input
RESTART_REQUIRED = 515
REPLACED = 440
RELINK_CODES = (401, 403, 411, 500)  # logged out, banned/forbidden, multi-device mismatch, bad session
LOGIN_FIX = "run `openclaw channels login whatsapp` on the gateway host and scan the QR in WhatsApp → Settings → Linked Devices"
NOT_LINKED = f"WhatsApp is not linked. Fix: {LOGIN_FIX}"


class NotLinked(Rejected):
    """No live WhatsApp link to send through (not linked, or the account is stopped): fail at once."""


@implementer(IChannel, ITransportEvents)
class WhatsAppChannel:
    def __init__(self, account: AccountConfig, host: ChannelHost, transport: IWhatsAppTransport) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.transport = transport
        self.limits = WEB_LIMITS if transport.kind == "web" else CLOUD_LIMITS
        self.link_file = account.state_dir / "link.json"
        saved = read_json(self.link_file, None) if self.link_file.exists() else None
        self.me = Me.from_json(saved) if isinstance(saved, dict) else Me()
        self.link = "stopped"
        self.inbound: IInbound | None = None
        self._login = False  # a login (QR) was asked for
        self._needs_login = False  # the helper asked for a QR nobody wanted: the session is not valid
        self._login_error: str | None = None
        self._qr: str | None = None
        self._qr_url: str | None = None
        self._watchers: list[Deferred[bool]] = []
        self._wake: Deferred[None] | None = None
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._restarted = False  # the one immediate restart after pairing (515) is used
        self._reset_session()

    def _reset_session(self) -> None:
        self._closed: tuple[int | None, str | None] | None = None
        self._logged_out: str | None = None
        self._fatal: str | None = None
        self._was_connected = False
        self._relink_now = False

    @property
    def config(self) -> Mapping[str, Any]:
        return self.account.config

    @property
    def self_chat(self) -> bool:
        return self.transport.kind == "web" and self_chat_enabled(self.config, self.me)

    @property
    def self_ids(self) -> frozenset[str]:
        return frozenset() if self.self_chat else self.me.ids()

    @property
    def linked(self) -> bool:
        if not self.transport.needs_link:
            return True
        return self.link == "connected" or (self.link_file.exists() and not self._needs_login and self.link not in ("unlinked", "linking"))

    # -- state

    def _set(self, link: str) -> None:
        if link != self.link:
            log.debug("whatsapp {account}: {old} → {new}", account=self.account.account_id, old=self.link, new=link)
        self.link = link
        self._notify()

    def _notify(self) -> None:
        watchers, self._watchers = self._watchers, []
        for d in watchers:
            if not d.called:
                d.callback(True)

    async def _change(self, timeout: float) -> bool:
        """Wait until something changes (True) or C{timeout} passes (False)."""
        d: Deferred[bool] = Deferred()
        self._watchers.append(d)
        def expire() -> None:
            if not d.called:
                d.callback(False)

        timer = self.reactor.callLater(max(0.0, timeout), expire)
        try:
            return await d
        finally:
            if timer.active():
                timer.cancel()

    def _problem(self, text: str | None) -> None:
        if self.inbound is not None:
            self.inbound.problem(text)

    def _forget(self) -> None:
        """The session is gone: its files, our record of the link."""
        self.transport.clear()
        self.link_file.unlink(missing_ok=True)
        self.me = Me()

    def _fail_login(self, text: str) -> None:
        if self._login:
            self._login = False
            self._login_error = text
            self._qr = self._qr_url = None
            self._notify()

    # -- the receive loop

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _run(self, inbound: IInbound) -> None:
        self.inbound = inbound
        stopped = True
        try:
            while True:
                if self.transport.needs_link and not self._login and (self._needs_login or not self.transport.may_be_linked()):
                    await self._wait_for_login(inbound)
                    continue
                await self._session(inbound)
        except (CancelledError, AuthFailed, ConfigProblem):
            raise  # stopped for good: sends fail at once
        except Exception:
            stopped = False  # the framework reconnects: sends wait for the link a little
            raise
        finally:
            self._set("stopped" if stopped else "reconnecting")

    async def _wait_for_login(self, inbound: IInbound) -> None:
        self._set("unlinked")
        if self._logged_out is None:
            inbound.problem(NOT_LINKED)
        self._wake = Deferred()
        try:
            await self._wake
        finally:
            self._wake = None

    async def _session(self, inbound: IInbound) -> None:
        """One life of the transport; returns to go around again, raises to back off."""
        self._reset_session()
        self._set("linking" if self._login else "connecting")
        result = await self.transport.run(self)
        if self.transport.kind == "cloud":
            raise ChannelError("the Cloud API link ended")
        if self._fatal is not None:
            self._fail_login(self._fatal)
            raise ConfigProblem(self._fatal)
        code, reason = self._closed or (None, None)
        if self._logged_out is None and code in RELINK_CODES:
            self._logged_out = f"{reason or 'session ended'} ({code})"
        if self._logged_out is not None:
            text = f"WhatsApp ended this linked device ({self._logged_out}). Fix: {LOGIN_FIX} again."
            self._forget()
            self._fail_login(text)
            self._needs_login = True
            inbound.problem(text)
            log.warn("whatsapp {account}: {text}", account=self.account.account_id, text=text)
            if self._was_connected:
                raise ChannelError("WhatsApp ended this linked device")
            return
        if self._relink_now:
            self._forget()
            return  # a forced login: start again at once, for the QR
        if self._needs_login:
            self._fail_login(NOT_LINKED)
            return
        if code == RESTART_REQUIRED and not self._restarted:
            self._restarted = True
            log.info("whatsapp {account}: restart required (515) after pairing; starting the helper again", account=self.account.account_id)
            return
        detail = reason or (result.describe() if hasattr(result, "describe") else "the WhatsApp helper exited")
        if self._login and not self._was_connected:
            self._fail_login(f"The login ended before the QR code was scanned ({detail}). Run `openclaw channels login whatsapp` again.")
            self._needs_login = not self.link_file.exists()
            return
        if code == REPLACED:
            detail = "another WhatsApp Web session replaced this one (440): close the other program using this number's session"
            inbound.problem(detail)
        raise ChannelError(detail)

    # -- what the transport reports (ITransportEvents)

    def qr(self, payload: str) -> None:
        if not self._login:
            log.info("whatsapp {account}: the helper asks for a QR code, so the stored session is not valid", account=self.account.account_id)
            self._needs_login = True
            self._problem(NOT_LINKED)
            self.transport.stop()
            return
        if payload != self._qr:
            self._qr, self._qr_url = payload, None
        self._set("linking")
        self._problem(f"waiting for the QR code to be scanned ({LOGIN_FIX})")
        self._notify()

    def connected(self, me: Me) -> None:
        if me.jid or me.lid:
            self.me = me
        self._was_connected = True
        self._restarted = False
        self._login = self._needs_login = False
        self._login_error = None
        self._qr = self._qr_url = None
        self._logged_out = None
        if self.transport.kind == "web":
            write_json(self.link_file, {**self.me.to_json(), "linkedAt": int(self.reactor.seconds() * 1000)})
            secure = getattr(self.transport, "secure", None)
            if secure is not None:
                try:
                    secure()
                except OSError as e:
                    log.warn("whatsapp {account}: could not restrict the session files: {error}", account=self.account.account_id, error=str(e))
        self._set("connected")
        log.info("whatsapp {account}: connected as {who}", account=self.account.account_id, who=self.me.phone or self.me.jid or "?")
        if self.inbound is not None:
            self.inbound.problem(None)
            self.inbound.connected()

    def message(self, message: WaMessage) -> bool:
        inbound = self.inbound
        if inbound is None:
            raise ChannelError("the WhatsApp channel is not running")
        if message.from_me and message.id in self._sent:
            return False
        found = to_inbound(message, self.me, self.account.account_id, self.self_chat, self._sent)
        if found is None:
            return False
        fresh = inbound.received(found)
        if fresh and not found.trusted and self.config.get("sendReadReceipts", True) is not False:
            try:
                self.transport.read(message.chat, message.sender or message.chat, [message.id]).addErrback(lambda f: log.debug("read receipt failed: {e}", e=f.getErrorMessage()))
            except Exception as e:
                log.debug("read receipt failed: {e}", e=str(e))
        return fresh

    def status(self, state: str, reason: str | None, code: int | None) -> None:
        if state == "closed":
            self._closed = (code, reason)
        elif state == "degraded":
            self._problem(f"the WhatsApp link is degraded: {reason or 'keepalives are failing'}")
        elif state == "connected" and self.link == "connected":
            self._problem(None)
        elif state == "connecting" and self.link == "connected":
            self._set("connecting")

    def logged_out(self, reason: str) -> None:
        self._logged_out = reason
        self.transport.stop()

    def error(self, message: str, fatal: bool) -> None:
        log.warn("whatsapp {account}: {message}", account=self.account.account_id, message=message)
        if fatal:
            self._fatal = message
            self.transport.stop()

    # -- login (web.login.start / web.login.wait, `openclaw channels login whatsapp`)

    def _qr_result(self, message: str) -> dict[str, Any]:
        assert self._qr is not None
        if self._qr_url is None:
            self._qr_url = qrcode.data_url(self._qr)
        return {"qrDataUrl": self._qr_url, "qr": self._qr, "message": message, "connected": False}

    def _linked_text(self) -> str:
        who = self.me.phone or self.me.jid
        return f"WhatsApp is linked{f' as {who}' if who else ''}."

    def login_start(self, force: bool, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._login_start(force, timeout))

    async def _login_start(self, force: bool, timeout: float) -> dict[str, Any]:
        if not self.transport.needs_link:
            raise Unsupported("this WhatsApp account uses the Cloud API (channels.whatsapp.transport: cloud); it is not linked by QR")
        if self.inbound is None or self.link == "stopped":
            raise ChannelError("the WhatsApp account is not running; start it with `openclaw channels login whatsapp`")
        if self.link == "connected" and not force:
            return {"connected": True, "message": self._linked_text()}
        if force and self.transport.may_be_linked():
            if self.link == "connected":
                try:
                    await self.transport.logout()
                except ChannelError:
                    pass
            if self.link in ("connecting", "connected", "linking"):
                self._relink_now = True  # the session ends, then its files go
                self.transport.stop()
            else:
                self._forget()
        self._login, self._needs_login, self._login_error = True, False, None
        self._qr = self._qr_url = None
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)
        deadline = self.reactor.seconds() + timeout
        while True:
            if self.link == "connected":
                return {"connected": True, "message": self._linked_text()}
            if self._qr is not None:
                return self._qr_result("Scan this QR code in WhatsApp → Settings → Linked Devices → Link a device.")
            if self._login_error is not None:
                raise ChannelError(self._login_error)
            left = deadline - self.reactor.seconds()
            if left <= 0:
                raise ChannelError(f"no QR code from the WhatsApp helper within {timeout:g} s (see the gateway log)")
            await self._change(left)

    def login_wait(self, timeout: float, current: str | None) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._login_wait(timeout, current))

    async def _login_wait(self, timeout: float, current: str | None) -> dict[str, Any]:
        if not self.transport.needs_link:
            raise Unsupported("this WhatsApp account uses the Cloud API; it is not linked by QR")
        deadline = self.reactor.seconds() + timeout
        while True:
            if self.link == "connected":
                return {"connected": True, "message": self._linked_text()}
            if self._login_error is not None and not self._login:
                return {"connected": False, "message": self._login_error}
            if not self._login:
                return {"connected": False, "message": "No WhatsApp login is in progress: start one with web.login.start (`openclaw channels login whatsapp`)."}
            if current is not None and self._qr is not None:
                result = self._qr_result("QR refreshed. Scan the latest code in WhatsApp → Linked Devices.")
                if result["qrDataUrl"] != current:
                    return result
            left = deadline - self.reactor.seconds()
            if left <= 0:
                out: dict[str, Any] = {"connected": False, "message": "Still waiting for the QR code to be scanned."}
                if self._qr is not None:
                    out.update({k: v for k, v in self._qr_result(out["message"]).items() if k in ("qrDataUrl", "qr")})
                return out
            await self._change(left)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        target = target_of(to, thread_id, reply_to)
        if self.transport.kind == "cloud" and not target.chat_id.startswith("+"):
            raise ValueError("the WhatsApp Cloud API sends to phone numbers (E.164) only")
        return target

    async def _ready(self) -> None:
        """Return when the link is up; fail at once when there is none to wait for."""
        if self.link == "connected":
            return
        if self.link in ("unlinked", "linking") or self._needs_login:
            raise NotLinked(f"not sent: {NOT_LINKED}")
        if self.link == "stopped":
            raise NotLinked("not sent: the WhatsApp account is not running")
        deadline = self.reactor.seconds() + CONNECT_WAIT
        while self.link != "connected":
            left = deadline - self.reactor.seconds()
            if left <= 0 or self.link in ("unlinked", "linking", "stopped"):
                raise ChannelError(f"WhatsApp is not connected ({self.link}); the message waits for the link")
            await self._change(left)

    def _remember(self, message_id: str) -> None:
        self._sent[message_id] = None
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        await self._ready()
        jid = to_jid(target.chat_id)
        if message.media is None:
            if not message.text.strip():
                raise Rejected("empty message")
            ident = await self.transport.send_text(jid, message.text, target.reply_to)
        else:
            ident = await self.transport.send_media(jid, message.media, message.text)
        self._remember(ident)
        return Receipt(ident, target.chat_id)

    def typing(self, target: Target) -> Deferred[None]:
        if self.link != "connected":
            return succeed(None)
        return self.transport.typing(to_jid(target.chat_id))

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        d: Deferred[Receipt] = Deferred()
        d.errback(Unsupported("polls are not supported on WhatsApp yet"))
        return d

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        result = dict(await self.transport.probe(timeout))
        if self.transport.needs_link:
            result["linked"] = self.linked
            if not self.linked:
                result.update(ok=False, error=NOT_LINKED)
            elif self.link != "connected":
                result.update(ok=False, error=f"linked but not connected ({self.link})")
        return result

    def logout(self) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._logout())

    async def _logout(self) -> dict[str, Any]:
        had = self.transport.may_be_linked() or self.link_file.exists()
        try:
            unlinked = await self.transport.logout()
        except ChannelError:
            unlinked = False
        self._forget()
        return {"cleared": bool(had and self.transport.needs_link), "unlinked": unlinked}

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.transport.kind, **self.transport.snapshot()}
        if self.transport.needs_link:
            out["linked"] = self.linked
            out["connected"] = self.link == "connected"
            if self.link in ("unlinked", "linking"):
                out["healthState"] = "not-linked" if self.link == "unlinked" else "linking"
        if self.me.jid or self.me.lid:
            out["self"] = {k: v for k, v in (("e164", self.me.phone), ("jid", self.me.jid), ("name", self.me.name)) if v}
        if self.self_chat:
            out["selfChatMode"] = True
        return out

    def secrets(self) -> tuple[str, ...]:
        return self.transport.secrets()

    def close(self) -> Deferred[None]:
        self._fail_login("the WhatsApp account stopped")
        self._notify()
        return self.transport.close()

