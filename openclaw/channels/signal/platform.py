# -*- test-case-name: tests.test_signal -*-
"""
Signal accounts from config: C{account} (the bot's number, E.164, or its
UUID for a numberless account) and the daemon at C{httpUrl}, else
C{http://<httpHost>:<httpPort>} (default C{127.0.0.1:8080}). The daemon is
started by the user (C{signal-cli -a +NUM daemon --http 127.0.0.1:8080});
this gateway does not spawn it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IConfigHint, IPlatform
from openclaw.channels.signal.channel import LIMITS, SignalChannel
from openclaw.channels.signal.events import UUID

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_E164 = re.compile(r"^\+[1-9][0-9]{4,17}$")
NEEDS = (
    "set channels.signal.account to the bot's Signal number (E.164, e.g. +15551234567) "
    "and channels.signal.httpUrl to its signal-cli daemon (`signal-cli -a +NUMBER daemon --http 127.0.0.1:8080`)"
)


def account_of(account: AccountConfig) -> str | None:
    value = account.config.get("account")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


def base_url(account: AccountConfig) -> str:
    """The daemon's base URL; L{ConfigProblem} when it is not a plain http(s) URL."""
    config = account.config
    url = config.get("httpUrl")
    if isinstance(url, str) and url.strip():
        url = url.strip()
        if "://" not in url:
            url = f"http://{url}"
    else:
        host = config["httpHost"] if isinstance(config.get("httpHost"), str) and config.get("httpHost") else DEFAULT_HOST
        port = config["httpPort"] if isinstance(config.get("httpPort"), int) and not isinstance(config.get("httpPort"), bool) else DEFAULT_PORT
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigProblem("channels.signal.httpUrl must be an http(s) URL without credentials, such as http://127.0.0.1:8080")
    return url.rstrip("/")


@implementer(IPlatform, IConfigHint)
class SignalPlatform:
    id = "signal"
    label = "Signal"
    limits = LIMITS

    def configured(self, account: AccountConfig) -> bool:
        return account_of(account) is not None

    def unconfigured(self, account: AccountConfig) -> str:
        return NEEDS

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        number = account_of(account)
        if number is None:
            raise ConfigProblem(NEEDS)
        if not (_E164.match(number) or UUID.match(number)):
            raise ConfigProblem(f"channels.signal.account {number!r} is not an E.164 number (+15551234567) or an account UUID")
        channel: IChannel = SignalChannel(account, host, base_url(account), number)
        return channel
