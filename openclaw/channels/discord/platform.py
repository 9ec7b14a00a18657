# -*- test-case-name: tests.test_discord -*-
"""
Discord accounts from config: the bot token from C{token}, else
C{tokenFile}, else (default account only) C{DISCORD_BOT_TOKEN}; the REST API
at C{apiBase} (default C{https://discord.com/api/v10}; the gateway URL comes
from its C{/gateway/bot}); C{intents.messageContent} (default true) asks for
the privileged Message Content intent.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.discord.channel import DEFAULT_TIMEOUT, LIMITS, DiscordChannel
from openclaw.channels.discord.rest import API_BASE
from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform

MAX_TOKEN_FILE = 4096


def _clean(token: str) -> str:
    token = token.strip()
    return token[4:].strip() if token.lower().startswith("bot ") else token  # pasted with the header's prefix


def resolve_token(account: AccountConfig) -> tuple[str | None, str]:
    """C{(token, source)}; source is C{config}, C{file}, C{env} or C{none}."""
    config = account.config
    token = config.get("token")
    if isinstance(token, str) and _clean(token):
        return _clean(token), "config"
    path = config.get("tokenFile")
    if isinstance(path, str) and path.strip():
        try:
            with open(Path(path).expanduser(), "rb") as f:
                text = _clean(f.read(MAX_TOKEN_FILE).decode("utf-8", "replace"))
        except OSError as e:
            raise ConfigProblem(f"channels.discord.tokenFile cannot be read: {e.strerror or e}") from None
        if text:
            return text, "file"
        raise ConfigProblem("channels.discord.tokenFile is empty")
    env = _clean(account.env.get("DISCORD_BOT_TOKEN", ""))
    if env and account.account_id == "default":
        return env, "env"
    return None, "none"


@implementer(IPlatform)
class DiscordPlatform:
    id = "discord"
    label = "Discord"
    limits = LIMITS

    def configured(self, account: AccountConfig) -> bool:
        try:
            return resolve_token(account)[0] is not None
        except ConfigProblem:
            return False

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        token, source = resolve_token(account)
        if token is None:
            raise ConfigProblem("no bot token: set channels.discord.token (or tokenFile, or DISCORD_BOT_TOKEN)")
        if any(c.isspace() for c in token) or not token.isprintable():
            raise ConfigProblem("channels.discord.token holds spaces or control characters: paste the bot token alone")
        config = account.config
        base = config.get("apiBase") or API_BASE
        parts = urlsplit(str(base))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigProblem("channels.discord.apiBase must be an http(s) URL such as https://discord.com/api/v10")
        intents = config["intents"] if isinstance(config.get("intents"), dict) else {}
        assert isinstance(intents, dict)
        timeout = config.get("timeoutSeconds")
        channel: IChannel = DiscordChannel(
            account,
            host,
            token,
            source,
            str(base).rstrip("/"),
            message_content=intents.get("messageContent", True) is not False,
            allow_bots=config.get("allowBots") is True,
            timeout=float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 1 <= timeout <= 600 else DEFAULT_TIMEOUT,
        )
        return channel
