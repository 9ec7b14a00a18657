# -*- test-case-name: tests.test_matrix -*-
"""
Matrix accounts from config: C{homeserver} (or C{MATRIX_HOMESERVER}), then
C{accessToken} (or C{MATRIX_ACCESS_TOKEN}), else C{userId} + C{password}
(or C{MATRIX_USER_ID} + C{MATRIX_PASSWORD}) for a password login whose
token is stored under C{credentials/matrix/}. The environment fills only
the default account, and config wins over it.

Upstream spells DM access C{dm.policy} / C{dm.allowFrom} and rooms
C{rooms.<id>.users}; L{MatrixPlatform.normalize} maps those onto the
framework's C{dmPolicy} / C{allowFrom} / C{groups.<id>.allowFrom}.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform
from openclaw.channels.matrix import credentials
from openclaw.channels.matrix.channel import LIMITS, MatrixChannel


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def resolve(account: AccountConfig) -> dict[str, Any]:
    """The account's homeserver and credentials (values may be None), and where the token comes from."""
    config = account.config
    env = account.env if account.account_id == "default" else {}
    token = _text(config.get("accessToken"))
    source = "config" if token else "none"
    if token is None and _text(env.get("MATRIX_ACCESS_TOKEN")):
        token, source = _text(env.get("MATRIX_ACCESS_TOKEN")), "env"
    return {
        "homeserver": _text(config.get("homeserver")) or _text(env.get("MATRIX_HOMESERVER")),
        "access_token": token,
        "token_source": source,
        "user_id": _text(config.get("userId")) or _text(env.get("MATRIX_USER_ID")),
        "password": _text(config.get("password")) or _text(env.get("MATRIX_PASSWORD")),
        "device_name": _text(config.get("deviceName")),
    }


@implementer(IPlatform)
class MatrixPlatform:
    id = "matrix"
    label = "Matrix"
    limits = LIMITS

    def normalize(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        out = dict(config)
        dm = config["dm"] if isinstance(config.get("dm"), dict) else {}
        assert isinstance(dm, dict)
        if "dmPolicy" not in out and isinstance(dm.get("policy"), str):
            out["dmPolicy"] = dm["policy"]
        if "allowFrom" not in out and isinstance(dm.get("allowFrom"), list):
            out["allowFrom"] = dm["allowFrom"]
        if dm.get("enabled") is False:
            out["dmPolicy"] = "disabled"
        groups = config["groups"] if isinstance(config.get("groups"), dict) else config.get("rooms")
        if isinstance(groups, dict):
            mapped = {}
            for key, value in groups.items():
                entry = dict(value) if isinstance(value, dict) else {}
                if "allowFrom" not in entry and isinstance(entry.get("users"), list):
                    entry["allowFrom"] = entry["users"]
                if entry.get("allow") is False:
                    entry["enabled"] = False
                mapped[key] = entry
            out["groups"] = mapped
        out.setdefault("replyToMode", "off")  # upstream's Matrix default: no reply metadata outside threads
        return out

    def configured(self, account: AccountConfig) -> bool:
        found = resolve(account)
        if not found["homeserver"]:
            return False
        if found["access_token"] or (found["user_id"] and found["password"]):
            return True
        return credentials.load(credentials.credentials_path(account.credentials_dir, account.account_id), found["homeserver"], found["user_id"]) is not None

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        found = resolve(account)
        homeserver = found["homeserver"]
        if not homeserver:
            raise ConfigProblem("no homeserver: set channels.matrix.homeserver (e.g. https://matrix.example.org)")
        parts = urlsplit(homeserver)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigProblem("channels.matrix.homeserver must be an http(s) URL such as https://matrix.example.org")
        found["homeserver"] = homeserver.rstrip("/")
        user = found["user_id"]
        if user and not (user.startswith("@") and ":" in user):
            raise ConfigProblem(f"channels.matrix.userId must be a full Matrix id such as @bot:example.org, not {user!r}")
        if not found["access_token"] and not (user and found["password"]) and not self.configured(account):
            raise ConfigProblem("no Matrix credentials: set channels.matrix.accessToken, or userId and password")
        channel: IChannel = MatrixChannel(account, host, found)
        return channel
