# -*- test-case-name: tests.test_irc -*-
"""
IRC accounts from config, with upstream's keys: C{host}, C{port} (6697
with TLS, 6667 without), C{tls} (default true), C{nick}, C{username},
C{realname}, C{password}/C{passwordFile} (server password), C{channels},
C{nickserv.{enabled, service, password, passwordFile, register,
registerEmail}}, C{mentionPatterns}, C{dangerouslyAllowNameMatching}; the
C{IRC_*} variables fill the default account. Ours: C{sasl.{username,
password, passwordFile}} (SASL PLAIN), C{tlsCaFile} (trust a private CA
instead of the system's), C{lineRate}, C{pingIntervalSeconds},
C{pingTimeoutSeconds}, C{connectTimeoutSeconds}.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Mapping

from twisted.internet._sslverify import IOpenSSLTrustRoot  # the trust root interface Twisted documents (not re-exported)
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform
from openclaw.channels.irc.channel import _CHANNEL, _NICK, LIMITS, IrcChannel, Network
from openclaw.channels.irc.protocol import Settings
from openclaw.channels.irc.text import casefold, is_channel

log = Logger(namespace="openclaw.channels.irc")

MAX_SECRET_FILE = 4096
MAX_CA_FILE = 1024 * 1024
MAX_PATTERNS = 32
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _secret_file(key: str, path: str) -> str:
    """A password kept in a file: a regular file, read up to 4 KiB, stripped."""
    target = Path(path).expanduser()
    try:
        info = os.stat(target)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigProblem(f"channels.irc.{key} must name a regular file")
        with open(target, "rb") as f:
            value = f.read(MAX_SECRET_FILE).decode("utf-8", "replace").strip()
    except OSError as e:
        raise ConfigProblem(f"channels.irc.{key} cannot be read: {e.strerror or e}") from None
    if not value:
        raise ConfigProblem(f"channels.irc.{key} is empty")
    return value


def _number(value: Any, default: float, low: float, high: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    return default


def _trust(path: str) -> IOpenSSLTrustRoot:
    try:
        data = Path(path).expanduser().read_bytes()[:MAX_CA_FILE]
    except OSError as e:
        raise ConfigProblem(f"channels.irc.tlsCaFile cannot be read: {e.strerror or e}") from None
    blocks = _PEM.findall(data)
    if not blocks:
        raise ConfigProblem("channels.irc.tlsCaFile holds no PEM certificate")
    try:
        return trustRootFromCertificates([Certificate.loadPEM(b) for b in blocks])
    except Exception as e:
        raise ConfigProblem(f"channels.irc.tlsCaFile: a certificate could not be read ({type(e).__name__})") from None


def resolve(account: AccountConfig) -> dict[str, Any]:
    """The account's settings (values may be None where nothing is configured)."""
    config = account.config
    env = account.env if account.account_id == "default" else {}
    tls = config.get("tls")
    if not isinstance(tls, bool):
        tls = (env.get("IRC_TLS") or "true").strip().lower() not in ("0", "false", "no", "off")
    port = config.get("port")
    if not (isinstance(port, int) and not isinstance(port, bool)):
        port = int(env["IRC_PORT"]) if (env.get("IRC_PORT") or "").strip().isdigit() else (6697 if tls else 6667)
    channels = config.get("channels")
    if not isinstance(channels, list):
        channels = [c for c in (env.get("IRC_CHANNELS") or "").split(",")]
    nick = _text(config.get("nick")) or _text(env.get("IRC_NICK"))
    return {
        "host": _text(config.get("host")) or _text(env.get("IRC_HOST")),
        "port": port,
        "tls": tls,
        "nick": nick,
        "username": _text(config.get("username")) or _text(env.get("IRC_USERNAME")) or nick or "openclaw",
        "realname": _text(config.get("realname")) or _text(env.get("IRC_REALNAME")) or "OpenClaw",
        "channels": [c.strip() for c in channels if isinstance(c, str) and c.strip()],
    }


@implementer(IPlatform)
class IrcPlatform:
    id = "irc"
    label = "IRC"
    limits = LIMITS

    def normalize(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        groups = config.get("groups")
        if not isinstance(groups, dict):
            return config
        # Channel names are case-insensitive; messages carry them folded.
        return {**config, "groups": {casefold(k) if is_channel(k) else k: v for k, v in groups.items()}}

    def configured(self, account: AccountConfig) -> bool:
        found = resolve(account)
        return bool(found["host"] and found["nick"])

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        config = account.config
        env = account.env if account.account_id == "default" else {}
        found = resolve(account)
        if not found["host"] or not found["nick"]:
            raise ConfigProblem("set channels.irc.host and channels.irc.nick")
        if re.search(r"[\s/@]", found["host"]):
            raise ConfigProblem(f"channels.irc.host must be a host name, not {found['host']!r}")
        if not 1 <= found["port"] <= 65535:
            raise ConfigProblem("channels.irc.port must be 1-65535")
        if not _NICK.match(found["nick"]):
            raise ConfigProblem(f"channels.irc.nick {found['nick']!r} is not a valid IRC nick")
        if re.search(r"[\s@!:]", found["username"]):
            raise ConfigProblem("channels.irc.username must be one word")
        bad = [c for c in found["channels"] if not _CHANNEL.match(c)]
        if bad:
            raise ConfigProblem(f"channels.irc.channels: {', '.join(bad[:3])} are not channel names (#name)")

        password = _text(config.get("password")) or (_secret_file("passwordFile", config["passwordFile"]) if _text(config.get("passwordFile")) else None) or _text(env.get("IRC_PASSWORD"))
        nickserv = config["nickserv"] if isinstance(config.get("nickserv"), dict) else {}
        assert isinstance(nickserv, dict)
        ns_password = None
        if nickserv.get("enabled", True) is not False:
            ns_password = _text(nickserv.get("password")) or (_secret_file("nickserv.passwordFile", nickserv["passwordFile"]) if _text(nickserv.get("passwordFile")) else None) or _text(env.get("IRC_NICKSERV_PASSWORD"))
        register_email = _text(nickserv.get("registerEmail")) or _text(env.get("IRC_NICKSERV_REGISTER_EMAIL"))
        if nickserv.get("register") is True and not register_email:
            raise ConfigProblem("channels.irc.nickserv.register needs channels.irc.nickserv.registerEmail")
        sasl = config["sasl"] if isinstance(config.get("sasl"), dict) else {}
        assert isinstance(sasl, dict)
        sasl_password = _text(sasl.get("password")) or (_secret_file("sasl.passwordFile", sasl["passwordFile"]) if _text(sasl.get("passwordFile")) else None)
        if not found["tls"] and (sasl_password or ns_password or password):
            log.warn("irc {account}: TLS is off (channels.irc.tls: false), so passwords cross the network in the clear", account=account.account_id)
        service = _text(nickserv.get("service")) or "NickServ"
        if not _NICK.match(service):
            raise ConfigProblem(f"channels.irc.nickserv.service {service!r} is not a nick")

        patterns = []
        for p in (config.get("mentionPatterns") or [])[:MAX_PATTERNS] if isinstance(config.get("mentionPatterns"), list) else []:
            try:
                patterns.append(re.compile(p, re.IGNORECASE))
            except (re.error, TypeError):
                raise ConfigProblem(f"channels.irc.mentionPatterns: {p!r} is not a valid regular expression") from None

        trust = _trust(config["tlsCaFile"]) if _text(config.get("tlsCaFile")) else None
        network = Network(found["host"], found["port"], found["tls"], trust, _number(config.get("connectTimeoutSeconds"), 30.0, 1, 300))
        settings = Settings(
            nick=found["nick"],
            username=found["username"],
            realname=found["realname"],
            password=password,
            sasl_user=_text(sasl.get("username")),
            sasl_password=sasl_password,
            nickserv_service=service,
            nickserv_password=ns_password,
            nickserv_register_email=register_email if nickserv.get("register") is True else None,
            channels=tuple(found["channels"]),
            line_rate=_number(config.get("lineRate"), 1.0, 0, 30),
            ping_interval=_number(config.get("pingIntervalSeconds"), 90.0, 1, 3600),
            ping_timeout=_number(config.get("pingTimeoutSeconds"), 60.0, 1, 600),
            register_timeout=_number(config.get("connectTimeoutSeconds"), 30.0, 1, 300),
        )
        channel: IChannel = IrcChannel(account, host, network, settings, patterns, config.get("dangerouslyAllowNameMatching") is True)
        return channel
