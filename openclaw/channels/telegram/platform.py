# -*- test-case-name: tests.test_telegram -*-
"""
Telegram accounts from config: the token from C{botToken}, else
C{tokenFile}, else (default account only) C{TELEGRAM_BOT_TOKEN}; the API at
C{apiRoot} (default C{https://api.telegram.org}; a self-hosted Bot API
server, or a test's fake, elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform
from openclaw.channels.telegram.channel import LIMITS, TelegramChannel

API_ROOT = "https://api.telegram.org"
MAX_TOKEN_FILE = 4096


def resolve_token(account: AccountConfig) -> tuple[str | None, str]:
    """C{(token, source)}; source is C{config}, C{file}, C{env} or C{none}."""
    config = account.config
    token = config.get("botToken")
    if isinstance(token, str) and token.strip():
        return token.strip(), "config"
    path = config.get("tokenFile")
    if isinstance(path, str) and path.strip():
        try:
            with open(Path(path).expanduser(), "rb") as f:
                text = f.read(MAX_TOKEN_FILE).decode("utf-8", "replace").strip()
        except OSError as e:
            raise ConfigProblem(f"channels.telegram.tokenFile cannot be read: {e.strerror or e}") from None
        if text:
            return text, "file"
        raise ConfigProblem("channels.telegram.tokenFile is empty")
    env = account.env.get("TELEGRAM_BOT_TOKEN", "").strip()
    if env and account.account_id == "default":
        return env, "env"
    return None, "none"


@implementer(IPlatform)
class TelegramPlatform:
    id = "telegram"
    label = "Telegram"
    limits = LIMITS

    def configured(self, account: AccountConfig) -> bool:
        try:
            return resolve_token(account)[0] is not None
        except ConfigProblem:
            return False

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        token, source = resolve_token(account)
        if token is None:
            raise ConfigProblem("no bot token: set channels.telegram.botToken (or tokenFile, or TELEGRAM_BOT_TOKEN)")
        root = account.config.get("apiRoot") or API_ROOT
        parts = urlsplit(str(root))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigProblem("channels.telegram.apiRoot must be an http(s) URL such as https://api.telegram.org")
        channel: IChannel = TelegramChannel(account, host, token, source, str(root).rstrip("/"))
        return channel
