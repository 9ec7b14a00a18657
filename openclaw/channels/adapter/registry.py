# -*- test-case-name: tests.test_channel_adapter -*-
"""
L{Adapters}: which adapter connection serves which channel account, and who
may connect as an adapter at all; L{AdapterPlatform}, the platform of every
channel configured with C{adapter: true}.

A channel id is served by an adapter when its section says so
(C{channels.<id>.adapter: true}) and no built-in platform has that id.
Accounts are the framework's (C{channels.<id>.accounts.<name>}); each runs
an L{AdapterChannel}. An adapter connects with role C{channel} and either
the gateway's token (or password), which lets it serve any adapter
channel, or one channel's C{adapterToken}, which lets it serve that channel
only; then it registers for one account (C{channel.register}). A newer
connection registering the same account replaces the older one, which is
closed.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, Collection, Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.account import ACCOUNT_ID
from openclaw.channels.adapter import frames
from openclaw.channels.adapter.channel import DEFAULT_MAX_TEXT, DEFAULT_WAIT, TYPING_EVERY, AdapterChannel, AdapterLink, Declared
from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform, Limits
from openclaw.channels.service import CHANNEL_ID
from openclaw.protocol.errors import FORBIDDEN, INVALID_REQUEST, UNAVAILABLE, GatewayError, InvalidInput
from openclaw.protocol.versions import Version

log = Logger(namespace="openclaw.channels")

MIN_TOKEN = 16
MAX_WAIT = 300.0
SCOPE_PREFIX = "channel:"
ANY_SCOPE = "channel:*"

Key = tuple[str, str]


def adapter_token(config: Mapping[str, Any]) -> str | None:
    token = config.get("adapterToken")
    return token if isinstance(token, str) and len(token) >= MIN_TOKEN else None


@attrs.frozen
class _Served:
    link: AdapterLink
    declared: Declared
    info: Mapping[str, Any]


class Adapters:
    """See the module docstring. It is the handshake's C{ChannelAccess} and the deps of the adapter methods."""

    def __init__(self, config: Callable[[], Mapping[str, Any]], builtin: Collection[str], clock: IReactorTime) -> None:
        self._config = config
        self.builtin = frozenset(builtin)
        self.clock = clock
        self.served: dict[Key, _Served] = {}  # account → the connection serving it
        self.serving: dict[str, Key] = {}  # connection id → the account it serves
        self.channels: dict[Key, AdapterChannel] = {}  # accounts running

    def sections(self) -> dict[str, Mapping[str, Any]]:
        """The channel sections an adapter serves."""
        channels = self._config().get("channels")
        if not isinstance(channels, dict):
            return {}
        return {
            cid: section
            for cid, section in channels.items()
            if isinstance(section, dict) and section.get("adapter") is True and cid not in self.builtin and CHANNEL_ID.match(cid)
        }

    # -- ChannelAccess (the handshake asks)

    def adapter_channels(self) -> frozenset[str]:
        return frozenset(self.sections())

    def token_grants(self, token: str) -> frozenset[str]:
        if not token:
            return frozenset()
        granted = set()
        given = token.encode()
        for cid, section in self.sections().items():
            accounts = section.get("accounts")
            configs = [section, *(a for a in accounts.values() if isinstance(a, dict))] if isinstance(accounts, dict) else [section]
            for config in configs:
                expected = adapter_token(config)
                if expected is not None and hmac.compare_digest(expected.encode(), given):
                    granted.add(cid)
        return frozenset(granted)

    # -- the platform (the channels service asks)

    def platform_for(self, channel: str, section: Any) -> IPlatform | None:
        if channel in self.builtin or not isinstance(section, Mapping) or section.get("adapter") is not True:
            return None
        label = section.get("label")
        return AdapterPlatform(channel, self, label if isinstance(label, str) and label.strip() else channel)

    def adopt(self, channel: AdapterChannel) -> None:
        self.channels[channel.key] = channel
        served = self.served.get(channel.key)
        if served is not None:
            channel.attach(served.link, served.declared, served.info)

    def forget(self, channel: AdapterChannel) -> None:
        if self.channels.get(channel.key) is channel:
            del self.channels[channel.key]

    # -- the adapter's methods

    def register(self, link: AdapterLink, version: Version, scopes: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
        channel_id = params["channel"]
        account_id = params.get("accountId") or "default"
        if not ACCOUNT_ID.match(account_id):
            raise InvalidInput(f"invalid accountId {account_id!r}: letters, digits, '_' and '-'")
        scope = SCOPE_PREFIX + channel_id
        if scope not in scopes and ANY_SCOPE not in scopes:
            details = {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}
            raise GatewayError(FORBIDDEN if version.forbidden_code else INVALID_REQUEST, f"missing scope: {scope}", details if version.forbidden_code else None)
        section = self.sections().get(channel_id)
        if section is None:
            if channel_id in self.builtin:
                raise GatewayError(INVALID_REQUEST, f"{channel_id} is a built-in channel; adapters serve channels configured with adapter: true")
            raise GatewayError(INVALID_REQUEST, f"channels.{channel_id} is not served by an adapter (set channels.{channel_id}.adapter: true)")
        accounts = section.get("accounts")
        if account_id != "default" and not (isinstance(accounts, dict) and account_id in accounts):
            raise GatewayError(INVALID_REQUEST, f"channels.{channel_id} has no account {account_id!r}")
        key = (channel_id, account_id)
        current = self.serving.get(link.conn_id)
        if current is not None and current != key:
            raise GatewayError(INVALID_REQUEST, f"this connection serves {current[0]}:{current[1]} already; open another connection for {channel_id}:{account_id}")
        declared = Declared(params.get("maxText") or DEFAULT_MAX_TEXT, params.get("typing", True) is not False, frames.self_ids(params))
        client = link.client
        info = {"connId": link.conn_id, "connectedAt": int(self.clock.seconds() * 1000), "client": f"{client.get('displayName') or client.get('id')} {client.get('version')}"}
        old = self.served.get(key)
        self.served[key] = _Served(link, declared, info)
        self.serving[link.conn_id] = key
        channel = self.channels.get(key)
        if old is not None and old.link is not link:
            self.serving.pop(old.link.conn_id, None)
            if channel is not None:
                channel.detach(old.link, "replaced by a newer connection")
            log.info("{channel}:{account}: a newer adapter connection replaces {old}", channel=channel_id, account=account_id, old=old.link.conn_id)
            old.link.close(1000, f"replaced by a newer adapter connection for {channel_id}:{account_id}")
        if channel is not None:
            channel.attach(link, declared, info)
        chunk = section.get("textChunkLimit")
        return {
            "channel": channel_id,
            "accountId": account_id,
            "running": channel is not None and channel.sink is not None,
            "cursor": channel.cursor() if channel is not None else None,
            "limits": {"maxText": declared.max_text, "textChunkLimit": min(chunk, declared.max_text) if isinstance(chunk, int) and chunk > 0 else min(DEFAULT_MAX_TEXT, declared.max_text)},
            "dmPolicy": section.get("dmPolicy", "pairing"),
        }

    def _channel(self, link: AdapterLink) -> AdapterChannel:
        key = self.serving.get(link.conn_id)
        if key is None:
            raise GatewayError(INVALID_REQUEST, "register first: channel.register {channel, accountId?}")
        channel = self.channels.get(key)
        if channel is None:
            raise GatewayError(UNAVAILABLE, f"{key[0]}:{key[1]} is not running (see `openclaw channels status`)", retryable=True, retry_after_ms=2000)
        return channel

    def inbound(self, link: AdapterLink, params: Mapping[str, Any]) -> dict[str, Any]:
        accepted = self._channel(link).receive(params)
        return {"ok": True, "duplicate": not accepted}

    def sent(self, link: AdapterLink, params: Mapping[str, Any]) -> dict[str, Any]:
        self._channel(link).answered(params)
        return {"ok": True}

    def left(self, conn: object) -> None:
        """A connection closed: if it served an account, that account waits for its adapter again."""
        conn_id = getattr(conn, "conn_id", None)
        key = self.serving.pop(conn_id, None) if isinstance(conn_id, str) else None
        if key is None:
            return
        served = self.served.get(key)
        if served is None or served.link is not conn:
            return
        del self.served[key]
        channel = self.channels.get(key)
        if channel is not None:
            channel.detach(served.link, "connection closed")


@implementer(IPlatform)
class AdapterPlatform:
    """A channel configured with C{adapter: true}: its accounts run L{AdapterChannel}s."""

    def __init__(self, channel_id: str, adapters: Adapters, label: str) -> None:
        self.id = channel_id
        self.label = label
        self.limits = Limits(chunk=DEFAULT_MAX_TEXT, max_text=DEFAULT_MAX_TEXT, typing_every=TYPING_EVERY)
        self._adapters = adapters

    def configured(self, account: AccountConfig) -> bool:
        return account.config.get("adapter") is True

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        config = account.config
        token = config.get("adapterToken")
        if token is not None and adapter_token(config) is None:
            raise ConfigProblem(f"adapterToken must be a string of at least {MIN_TOKEN} characters")
        wait = config.get("adapterWaitSeconds", DEFAULT_WAIT)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
            raise ConfigProblem(f"adapterWaitSeconds must be a number from 0 to {MAX_WAIT:g}")
        channel = AdapterChannel(account, host.reactor, float(wait), (token,) if isinstance(token, str) else (), self._adapters.forget)
        self._adapters.adopt(channel)
        return channel
