# -*- test-case-name: tests.test_slack -*-
"""
Slack accounts from config. Tokens: C{botToken} (the Bot User OAuth Token,
C{xoxb-…}) and, for Socket Mode, C{appToken} (an app-level token,
C{xapp-…}, scope C{connections:write}); the default account may take them
from C{SLACK_BOT_TOKEN} and C{SLACK_APP_TOKEN}. C{mode}: C{socket}
(default) or C{http} (the Events API on the gateway port, with
C{signingSecret}). The Web API at C{apiBase} (default
C{https://slack.com/api}; a test's fake elsewhere).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform
from openclaw.channels.slack.channel import API_BASE, LIMITS, SlackChannel

MODES = ("socket", "http")
ENV = {"botToken": "SLACK_BOT_TOKEN", "appToken": "SLACK_APP_TOKEN"}
# Prefixes that say a token was put in the wrong key, and what the key wants instead.
WRONG = {
    "botToken": {"xapp-": "an app-level token (xapp-…)", "xoxp-": "a user token (xoxp-…)"},
    "appToken": {"xoxb-": "a bot token (xoxb-…)", "xoxp-": "a user token (xoxp-…)"},
}
WANTED = {"botToken": "the Bot User OAuth Token (xoxb-…)", "appToken": "an app-level token (xapp-…) with connections:write"}


def resolve_token(account: AccountConfig, key: str) -> tuple[str | None, str]:
    """C{(token, source)}; source is C{config}, C{env} or C{none}."""
    value = account.config.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip(), "config"
    env = account.env.get(ENV[key], "").strip()
    if env and account.account_id == "default":
        return env, "env"
    return None, "none"


def mode_of(account: AccountConfig) -> str:
    mode = account.config.get("mode", "socket")
    if mode not in MODES:
        raise ConfigProblem(f"channels.slack.mode must be \"socket\" or \"http\", not {mode!r}")
    return str(mode)


@implementer(IPlatform)
class SlackPlatform:
    id = "slack"
    label = "Slack"
    limits = LIMITS

    def configured(self, account: AccountConfig) -> bool:
        # The bot token is what every mode needs; build() names anything else missing.
        return resolve_token(account, "botToken")[0] is not None

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        mode = mode_of(account)
        keys = ("botToken", "appToken") if mode == "socket" else ("botToken",)
        tokens: dict[str, tuple[str | None, str]] = {}
        for key in keys:
            token, source = resolve_token(account, key)
            if token is None:
                raise ConfigProblem(f"no {key}: set channels.slack.{key} (or {ENV[key]}) to {WANTED[key]}")
            for prefix, what in WRONG[key].items():
                if token.startswith(prefix):
                    raise ConfigProblem(f"channels.slack.{key} holds {what}; it needs {WANTED[key]}")
            tokens[key] = (token, source)
        base = account.config.get("apiBase") or API_BASE
        parts = urlsplit(str(base))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigProblem("channels.slack.apiBase must be an http(s) URL such as https://slack.com/api")
        channel: IChannel = SlackChannel(account, host, tokens, str(base).rstrip("/"), mode)
        return channel
