# -*- test-case-name: tests.test_channels -*-
"""
L{ChannelsService}: the gateway's channels, one child L{AccountService} per
configured account (C{channels.<id>} is account C{default};
C{channels.<id>.accounts.<name>} adds more, inheriting the channel's keys).
Each account starts, stops and fails on its own.

It also holds what the accounts share and what the methods ask for: the
per-channel pairing stores and C{pairing} events, status (with probes),
sends, and account start/stop/logout.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.channels.account import ACCOUNT_ID, AccountDeps, AccountService, now_ms
from openclaw.channels.interfaces import AccountConfig, ChannelError, ChannelHost, IChannelReactor, IPlatform, Media, Outbound, Receipt, Target, Unsupported
from openclaw.channels.pairing import PairingRequest, PairingSettings, PairingStore, iso, safe_channel
from openclaw.channels.ports import Ports
from openclaw.store import ensure_dir

log = Logger(namespace="openclaw.channels")

EXPIRE_EVERY = 30.0
SEND_DEDUPE_TTL = 300.0
SEND_DEDUPE_MAX = 1000
PROBE_TIMEOUT = 10.0
CHANNEL_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
CAPTION_LIMIT = 1024  # captions are shorter than messages on every platform we know
APPROVED_TEXT = "✅ OpenClaw access approved. Send a message to start chatting."


class NotFound(ChannelError):
    """No such channel or account (a caller's mistake, not a channel failure)."""


def account_configs(channel: str, section: Any, env: Mapping[str, str], state_dir: Path, platform: IPlatform | None) -> list[AccountConfig]:
    """
    The accounts a channel section describes: C{default} from the section itself
    (unless it only holds C{accounts} without credentials), plus each of
    C{accounts}, merged over the section's keys.
    """
    if not isinstance(section, dict):
        return []
    base = {k: v for k, v in section.items() if k != "accounts"}
    named = section["accounts"] if isinstance(section.get("accounts"), dict) else {}
    assert isinstance(named, dict)

    def make(account_id: str, config: Mapping[str, Any]) -> AccountConfig:
        # An invalid id still gets an account (status says what is wrong), with a harmless folder.
        name = safe_channel(account_id) if ACCOUNT_ID.match(account_id) else "_invalid"
        normalize = getattr(platform, "normalize", None)
        if normalize is not None:
            config = normalize(config)
        return AccountConfig(channel, account_id, config, env, state_dir / "channels" / safe_channel(channel) / name, state_dir / "credentials")

    out = []
    default = make("default", base)
    if "default" not in named and (not named or platform is None or platform.configured(default)):
        out.append(default)
    for name, extra in named.items():
        out.append(make(str(name), {**base, **(extra if isinstance(extra, dict) else {})}))
    return out


class ChannelsService(MultiService):
    name = "channels"

    def __init__(
        self,
        ports: Ports,
        reactor: IChannelReactor,
        platforms: Mapping[str, IPlatform],
        platform_for: Callable[[str, Any], IPlatform | None] | None = None,
    ) -> None:
        super().__init__()
        self.ports = ports
        self.reactor = reactor
        self.platforms = dict(platforms)
        # A platform for a configured channel id none of the above has (adapters: `adapter: true`).
        self.platform_for = platform_for
        self.host = ChannelHost(reactor, ports.routes)
        self.accounts: dict[tuple[str, str], AccountService] = {}
        self.unknown: dict[str, list[str]] = {}  # configured channels this gateway has no platform for
        self._stores: dict[str, PairingStore] = {}
        self._sends: OrderedDict[str, tuple[float, _Shared]] = OrderedDict()
        self.routes: dict[str, tuple[str, str, Target]] = {}  # session key → last (channel, account, target)
        self._expiry = LoopingCall(self.expire_pairing)
        self._expiry.clock = reactor

    # -- accounts

    def config(self) -> Mapping[str, Any]:
        return self.ports.config.config()

    def pairing_settings(self) -> PairingSettings:
        return PairingSettings.from_config(self.config())

    def store(self, channel: str) -> PairingStore:
        store = self._stores.get(channel)
        if store is None:
            store = self._stores[channel] = PairingStore(self.ports.config.state_dir / "credentials", channel, self.pairing_settings())
        store.settings = self.pairing_settings()  # config reloads count
        return store

    def _deps(self, channel: str) -> AccountDeps:
        return AccountDeps(
            agent=self.ports.agent,
            config=self.config,
            pairing=self.store(channel),
            pairing_settings=self.pairing_settings,
            pairing_event=self.pairing_event,
            redact=self.ports.secrets.add,
            host=self.host,
            on_route=self._remember_route,
        )

    def _account_config(self, channel: str, account_id: str) -> AccountConfig | None:
        section = (self.config().get("channels") or {}).get(channel)
        for account in account_configs(channel, section, self.ports.config.env(), self.ports.config.state_dir, self.platforms.get(channel)):
            if account.account_id == account_id:
                return account
        return None

    def _configured(self) -> list[AccountConfig]:
        channels = self.config().get("channels")
        out: list[AccountConfig] = []
        self.unknown = {}
        for channel, section in (channels or {}).items() if isinstance(channels, dict) else ():
            if channel == "defaults" or not isinstance(section, dict):
                continue
            if not CHANNEL_ID.match(channel):
                log.warn("channels.{channel}: not a channel id (lowercase letters, digits, '_', '-'); ignored", channel=channel)
                continue
            self._adopt_platform(channel, section)
            accounts = account_configs(channel, section, self.ports.config.env(), self.ports.config.state_dir, self.platforms.get(channel))
            if channel not in self.platforms:
                self.unknown[channel] = [a.account_id for a in accounts]
                continue
            out.extend(accounts)
        return out

    def _adopt_platform(self, channel: str, section: Any) -> None:
        if channel not in self.platforms and self.platform_for is not None:
            made = self.platform_for(channel, section)
            if made is not None:
                self.platforms[channel] = made

    def add(self, account: AccountConfig, platform: IPlatform | None = None) -> AccountService:
        """
        Run an account (started at once when this service runs). C{platform}
        registers a platform at runtime: an out-of-process adapter's, say.
        """
        if platform is not None:
            self.platforms[platform.id] = platform
        platform = self.platforms[account.channel]
        ensure_dir(account.state_dir)
        service = AccountService(platform, account, self._deps(account.channel), self.reactor)
        self.accounts[(account.channel, account.account_id)] = service
        service.setServiceParent(self)
        return service

    def startService(self) -> None:
        for account in self._configured():
            if (account.channel, account.account_id) not in self.accounts:
                try:
                    self.add(account)
                except Exception:
                    log.failure("channel account {channel}:{account} could not be set up", channel=account.channel, account=account.account_id)
        for channel, ids in self.unknown.items():
            log.warn("channels.{channel} is configured but this gateway has no {channel} channel yet; accounts {ids} stay off", channel=channel, ids=", ".join(ids))
        super().startService()
        self._expiry.start(EXPIRE_EVERY, now=False)

    def stopService(self) -> Deferred[None]:
        if self._expiry.running:
            self._expiry.stop()
        return super().stopService()

    def shutting_down(self) -> None:
        """The gateway is about to abort every run: interrupted turns stay journaled for the next start."""
        for account in self.accounts.values():
            account.stopping = True

    def find(self, channel: str | None, account_id: str | None = None) -> AccountService:
        """An account; without a channel, the only configured one."""
        if not channel:
            channels = sorted({c for c, _ in self.accounts})
            if len(channels) != 1:
                raise NotFound("channel is required" + (f" (configured: {', '.join(channels)})" if channels else ": no channels are configured"))
            channel = channels[0]
        if channel not in self.platforms:
            raise NotFound(f"unknown channel {channel!r}" + (f" (configured: {', '.join(sorted({c for c, _ in self.accounts}))})" if self.accounts else ""))
        if account_id:
            found = self.accounts.get((channel, account_id))
            if found is None:
                raise NotFound(f"{channel} has no account {account_id!r}")
            return found
        ids = [a for c, a in self.accounts if c == channel]
        if not ids:
            raise NotFound(f"channel {channel!r} is not configured (set channels.{channel})")
        return self.accounts[(channel, "default" if "default" in ids else sorted(ids)[0])]

    async def remove(self, channel: str, account_id: str) -> None:
        """Stop an account and forget it (its journal and pairing files stay)."""
        account = self.accounts.pop((channel, account_id), None)
        if account is not None:
            await account.disownServiceParent()

    async def start_account(self, channel: str, account_id: str | None = None) -> AccountService:
        """(Re)start an account with its current config, clearing a logout."""
        account_id = account_id or "default"
        self.ports.config.check()  # an edit made just now counts
        self._adopt_platform(channel, (self.config().get("channels") or {}).get(channel))
        if channel not in self.platforms:
            raise NotFound(f"unknown channel {channel!r}")
        config = self._account_config(channel, account_id)
        if config is None:
            raise NotFound(f"channels.{channel}" + (f".accounts.{account_id}" if account_id != "default" else "") + " is not configured")
        existing = self.accounts.pop((channel, account_id), None)
        if existing is not None:
            await existing.disownServiceParent()
        marker = config.state_dir / "logged-out"
        if marker.exists():
            marker.unlink()
        return self.add(config)

    async def stop_account(self, channel: str, account_id: str | None = None) -> AccountService:
        account = self.find(channel, account_id)
        if account.running:
            await account.stopService()
        return account

    async def logout(self, channel: str, account_id: str | None = None) -> dict[str, Any]:
        account = self.find(channel, account_id)
        if account.running:
            await account.stopService()
        result: dict[str, Any] = {"channel": account.channel_id, "accountId": account.account_id, "cleared": False}
        if account.channel is not None:
            try:
                result.update(await account.channel.logout())
            except Unsupported:
                pass
        ensure_dir(account.account.state_dir)
        (account.account.state_dir / "logged-out").write_text(f"{int(time.time())}\n")
        account.state = "logged-out"
        account.last_error = f"logged out; run `openclaw channels login {account.channel_id}` to start it again"
        result["loggedOut"] = True
        return result

    # -- status

    async def status(self, probe: bool = False, timeout: float = PROBE_TIMEOUT, channel: str | None = None) -> dict[str, Any]:
        accounts = [a for a in self.accounts.values() if channel in (None, a.channel_id)]
        if probe:
            await DeferredList([Deferred.fromCoroutine(a.probe(timeout)) for a in accounts if a.channel is not None], consumeErrors=True)
        result: dict[str, Any] = {"ts": now_ms(self.reactor), "channelOrder": [], "channelLabels": {}, "channels": {}, "channelAccounts": {}, "channelDefaultAccountId": {}}
        for cid, label, rows in self._rows(channel):
            result["channelOrder"].append(cid)
            result["channelLabels"][cid] = label
            result["channelAccounts"][cid] = rows
            default = _default_row(rows)
            result["channelDefaultAccountId"][cid] = default["accountId"] if default else "default"
            if default is not None:
                result["channels"][cid] = {k: default[k] for k in ("configured", "running", "connected", "lastError", "probe") if k in default}
        return result

    def _rows(self, channel: str | None = None) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """Per configured channel (sorted): its label and its accounts' status rows."""
        order = sorted({a.channel_id for a in self.accounts.values() if channel in (None, a.channel_id)} | {c for c in self.unknown if channel in (None, c)})
        out = []
        for cid in order:
            platform = self.platforms.get(cid)
            if platform is None:
                rows = [{"accountId": a, "configured": True, "running": False, "connected": False, "lastError": f"this gateway has no {cid} channel yet"} for a in self.unknown[cid]]
            else:
                rows = [a.snapshot() for a in self.accounts.values() if a.channel_id == cid]
            out.append((cid, platform.label if platform is not None else cid, rows))
        return out

    def health_summary(self) -> dict[str, Any]:
        """
        C{health}'s channel part, in upstream's shape: per channel the default
        account's row with every account under C{accounts} (no probe here: the
        last one's result, if any). Health goes to every operator, so allow
        lists stay out.
        """
        channels: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for cid, label, rows in self._rows():
            labels[cid] = label
            accounts = {r["accountId"]: {k: v for k, v in r.items() if k != "allowFrom"} for r in rows}
            default = _default_row(rows)
            if default is not None:
                channels[cid] = {**accounts[default["accountId"]], "accounts": accounts}
        return {"channels": channels, "channelOrder": list(labels), "channelLabels": labels}

    def summary_lines(self) -> list[str]:
        """
        C{status}'s C{channelSummary}, as upstream words it (C{Telegram:
        configured}, then C{  - default (dm:pairing, token:config)} per
        configured account), with what this gateway knows live: connected,
        the account's state, its last error.
        """
        lines = []
        for cid, label, rows in self._rows():
            if cid not in self.platforms:
                lines.append(f"{cid}: configured, not running (this gateway has no {cid} channel yet)")
                continue
            default = _default_row(rows) or {}
            if not any(r.get("enabled", True) for r in rows):
                state = "disabled"
            elif isinstance(default.get("linked"), bool):
                state = "linked" if default["linked"] else "not linked"
            else:
                state = "configured" if any(r.get("configured") for r in rows) else "not configured"
            line = f"{label}: {state}"
            phone = (default.get("self") or {}).get("e164") if isinstance(default.get("self"), dict) else None
            if phone:
                line += f" {phone}"
            lines.append(line)
            for row in rows:
                if row.get("configured"):
                    name = f"{row['accountId']} ({row['name']})" if isinstance(row.get("name"), str) and row["name"].strip() else row["accountId"]
                    details = _details(row)
                    lines.append(f"  - {name}" + (f" ({', '.join(details)})" if details else ""))
        return lines

    # -- sending

    def _remember_route(self, key: str, channel: str, account: str, target: Target) -> None:
        self.routes.pop(key, None)
        self.routes[key] = (channel, account, target)
        while len(self.routes) > 1000:
            self.routes.pop(next(iter(self.routes)))

    def resolve(self, channel: str | None, account_id: str | None, to: str | None, thread_id: str | None = None, reply_to: str | None = None, session: str = "agent:main:main") -> tuple[AccountService, Target]:
        """
        An account and a parsed target; channel C{last} is where C{session}
        last heard from. Without C{to}, the chat C{session} last heard from
        on that account (scheduled work delivering to "its" chat).
        """
        last = self.routes.get(session)
        if channel == "last":
            if last is None:
                raise NotFound("no channel has delivered a message to this session yet, so there is no 'last' channel")
            channel, account_id = last[0], account_id or last[1]
        account = self.find(channel, account_id)
        if account.channel is None:
            raise ChannelError(f"{account.name} is not running ({account.state}{': ' + account.last_error if account.last_error else ''})")
        if to is None:
            if last is None or last[:2] != (account.channel_id, account.account_id):
                raise NotFound(f"no recipient: name one (to), since {session} has not heard from {account.name} yet")
            return account, Target(last[2].chat_id, thread_id or last[2].thread_id, reply_to)
        try:
            target = account.channel.parse_target(to, thread_id, reply_to)
        except ValueError as e:
            raise NotFound(f"invalid target for {account.channel_id}: {e}") from None
        return account, target

    def send(self, key: str | None, account: AccountService, target: Target, text: str, media: Sequence[Media] = (), silent: bool = False) -> Deferred[dict[str, Any]]:
        """
        Send text (chunked) and attachments; the result names the last
        message. A repeated C{key} within 5 minutes gets the first result.
        """
        self._expire_sends()
        known = self._sends.get(key) if key is not None else None
        if known is not None and not known[1].failed:
            return known[1].wait()
        shared = _Shared(Deferred.fromCoroutine(self._send(account, target, text, list(media), silent)))
        if key is not None:
            self._sends[key] = (self.reactor.seconds(), shared)
        return shared.wait()

    async def _send(self, account: AccountService, target: Target, text: str, media: list[Media], silent: bool) -> dict[str, Any]:
        receipts: list[Receipt] = []
        caption = text if media and len(text) <= CAPTION_LIMIT else ""
        for i, item in enumerate(media):
            receipts.append(await account.send(target if i == 0 else attrs.evolve(target, reply_to=None), Outbound(caption if i == 0 else "", item, silent)))
        rest = "" if caption else text
        if rest.strip():
            receipts += await account.send_text(target if not receipts else attrs.evolve(target, reply_to=None), rest, silent)
        if not receipts:
            raise ChannelError("nothing to send: give a message or media")
        last = receipts[-1]
        return {"messageId": last.message_id, "channel": account.channel_id, "accountId": account.account_id, "chatId": last.chat_id, "messageIds": [r.message_id for r in receipts]}

    async def poll(self, account: AccountService, target: Target, question: str, options: list[str], multi: bool, duration: int | None) -> dict[str, Any]:
        if account.channel is None:
            raise ChannelError(f"{account.name} is not running")
        receipt = await account.channel.poll(target, question, options, multi, duration)
        return {"messageId": receipt.message_id, "channel": account.channel_id, "accountId": account.account_id, "chatId": receipt.chat_id}

    def _expire_sends(self) -> None:
        now = self.reactor.seconds()
        while self._sends:
            key, (at, _) = next(iter(self._sends.items()))
            if now - at <= SEND_DEDUPE_TTL and len(self._sends) <= SEND_DEDUPE_MAX:
                break
            self._sends.pop(key)

    # -- pairing

    def pairing_event(self, action: str, request: PairingRequest) -> None:
        ttl = self.pairing_settings().ttl_ms
        payload: dict[str, Any] = {
            "action": action,
            "channel": request.channel,
            "accountId": request.account_id,
            "requestId": request.request_id,
            "senderId": request.sender_id,
            "senderLabel": request.meta.get("senderLabel") or request.sender_id,
            "createdAt": iso(request.created_ms),
            "expiresAt": iso(request.expires_ms(ttl)),
            "ts": now_ms(self.reactor),
        }
        if action == "requested":
            payload["code"] = request.code
        try:
            self.ports.events.emit("pairing", payload)
        except Exception:
            log.failure("pairing event failed")

    def expire_pairing(self) -> None:
        for channel in {c for c, _ in self.accounts}:
            try:
                for request in self.store(channel).expire(now_ms(self.reactor)):
                    self.pairing_event("expired", request)
            except Exception:
                log.failure("expiring {channel} pairing requests failed", channel=channel)

    def pairing_channels(self, channel: str | None) -> list[str]:
        if channel is not None:
            if channel not in self.platforms:
                raise NotFound(f"unknown channel {channel!r}")
            return [channel]
        return sorted({c for c, _ in self.accounts})

    def pairing_list(self, channel: str | None = None, account_id: str | None = None) -> dict[str, Any]:
        settings = self.pairing_settings()
        now = now_ms(self.reactor)
        accounts, requests = [], []
        for cid in self.pairing_channels(channel):
            label = self.platforms[cid].label
            store = self.store(cid)
            for request in store.expire(now):
                self.pairing_event("expired", request)
            for (c, a), _ in sorted(self.accounts.items()):
                if c == cid and account_id in (None, a):
                    accounts.append({"channel": cid, "channelLabel": label, "accountId": a, "notifySupported": True})
            for r in store.pending(now):
                if account_id not in (None, r.account_id):
                    continue
                requests.append(
                    {
                        "requestId": r.request_id,
                        "channel": cid,
                        "channelLabel": label,
                        "accountId": r.account_id,
                        "senderId": r.sender_id,
                        "senderLabel": r.meta.get("senderLabel") or r.sender_id,
                        "metadata": {"code": r.code, **{k: v for k, v in r.meta.items() if k not in ("accountId",)}},
                        "createdAt": iso(r.created_ms),
                        "lastSeenAt": iso(r.last_seen_ms),
                        "expiresAt": iso(r.expires_ms(settings.ttl_ms)),
                        "notifySupported": True,
                    }
                )
        owner = (self.config().get("commands") or {}).get("ownerAllowFrom")
        return {"accounts": accounts, "requests": requests, "commandOwnerConfigured": bool(owner), "limits": {"pendingPerAccount": settings.max_pending, "ttlMs": settings.ttl_ms}}

    def _pending(self, channel: str, account_id: str | None, request_id: str | None = None, code: str | None = None) -> PairingRequest:
        if channel not in self.platforms:
            raise NotFound(f"unknown channel {channel!r}")
        request = self.store(channel).find(now_ms(self.reactor), code=code, request_id=request_id)
        if request is None or (account_id not in (None, "", request.account_id)):
            raise NotFound("no pending pairing request " + (f"with code {code}" if code else f"{request_id!r}") + f" on {channel} (it may have expired)")
        return request

    async def pairing_approve(self, channel: str, account_id: str | None, request_id: str | None = None, code: str | None = None, notify: bool = False) -> dict[str, Any]:
        request = self._pending(channel, account_id, request_id, code)
        if not self.store(channel).approve(request):
            raise NotFound(f"pairing request {request.request_id!r} is no longer pending")
        log.info("{channel}: sender {sender} approved", channel=channel, sender=request.sender_id)
        self.pairing_event("approved", request)
        notification = "not-requested"
        if notify:
            notification = "sent"
            try:
                account = self.find(channel, request.account_id)
                target = Target(request.meta.get("chatId") or request.sender_id)
                await account.send_text(target, APPROVED_TEXT)
            except ChannelError as e:
                log.warn("{channel}: could not notify {sender}: {error}", channel=channel, sender=request.sender_id, error=str(e))
                notification = "failed"
        return {"requestId": request.request_id, "senderId": request.sender_id, "notification": notification, "commandOwnerBootstrap": "not-requested", "code": request.code, "accountId": request.account_id}

    def pairing_dismiss(self, channel: str, account_id: str | None, request_id: str | None = None, code: str | None = None) -> dict[str, Any]:
        request = self._pending(channel, account_id, request_id, code)
        self.store(channel).remove(request)
        log.info("{channel}: pairing request from {sender} dismissed", channel=channel, sender=request.sender_id)
        self.pairing_event("dismissed", request)
        return {"requestId": request.request_id, "senderId": request.sender_id}


def _default_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["accountId"] == "default"), rows[0] if rows else None)


def _details(row: Mapping[str, Any]) -> list[str]:
    """An account's summary details: upstream's (policy, credential sources, where it connects), then its live state."""
    details = []
    if row.get("enabled") is False:
        details.append("disabled")
    if row.get("dmPolicy"):
        details.append(f"dm:{row['dmPolicy']}")
    for key, prefix in (("tokenSource", "token"), ("botTokenSource", "bot"), ("appTokenSource", "app")):
        if row.get(key) and row[key] != "none":
            details.append(f"{prefix}:{row[key]}")
    if row.get("baseUrl"):
        details.append(str(row["baseUrl"]))
    if row.get("port") is not None:
        details.append(f"port:{row['port']}")
    if row.get("cliPath"):
        details.append(f"cli:{row['cliPath']}")
    if row.get("dbPath"):
        details.append(f"db:{row['dbPath']}")
    allow = row.get("allowFrom")
    if isinstance(allow, list) and allow:
        details.append("allow:" + ",".join(str(a) for a in allow[:2]))
    if row.get("enabled") is not False:
        if row.get("connected"):
            details.append("connected")
        elif row.get("running"):
            details.append(str(row.get("healthState") or "running"))
        else:
            details.append("not running" + (f": {row['healthState']}" if row.get("healthState") not in (None, "stopped") else ""))
    error = row.get("lastError")
    if isinstance(error, str) and error:
        details.append("error: " + (error if len(error) <= 120 else error[:119] + "…"))
    return details


class _Shared:
    """One send's result, which a repeated idempotency key waits for too."""

    def __init__(self, d: Deferred[dict[str, Any]]) -> None:
        self.done = False
        self.result: dict[str, Any] | Failure | None = None
        self._waiters: list[Deferred[dict[str, Any]]] = []
        d.addBoth(self._fire)

    def _fire(self, result: dict[str, Any] | Failure) -> None:
        self.done, self.result = True, result
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            self._deliver(w)

    def _deliver(self, d: Deferred[dict[str, Any]]) -> None:
        if isinstance(self.result, Failure):
            d.errback(self.result)
        elif self.result is not None:
            d.callback(self.result)

    @property
    def failed(self) -> bool:
        return self.done and isinstance(self.result, Failure)

    def wait(self) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        if self.done:
            self._deliver(d)
        else:
            self._waiters.append(d)
        return d
