# -*- test-case-name: tests.test_whatsapp -*-
"""
WhatsApp accounts from config, by C{channels.whatsapp.transport}:

  - C{web} (default): a linked device through the helper process
    (C{bridgeCommand}, default the neonize helper shipped here; its session
    in C{authDir}, default C{<state>/credentials/whatsapp/<account>/}).
  - C{cloud}: the Cloud API with C{accessToken} (or C{accessTokenFile}, or
    C{WHATSAPP_ACCESS_TOKEN} for the default account), C{phoneNumberId},
    C{appSecret} (or C{WHATSAPP_APP_SECRET}) and C{verifyToken}; the webhook
    at C{webhookPath} on the gateway port; the API at C{graphBase}.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zope.interface import implementer

from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IPlatform
from openclaw.channels.whatsapp.bridge import BridgeTransport, default_command
from openclaw.channels.whatsapp.channel import WEB_LIMITS, WhatsAppChannel
from openclaw.channels.whatsapp.cloud import GRAPH_BASE, GRAPH_VERSION, WEBHOOK_PATH, CloudTransport
from openclaw.store import ensure_dir

MAX_SECRET_FILE = 8192
_VERSION = re.compile(r"^v\d{1,3}\.\d{1,2}$")
_PHONE_ID = re.compile(r"^\d{5,30}$")


def state_root(account: AccountConfig) -> Path:
    """The gateway's state dir (an account's own folder is C{<state>/channels/<channel>/<account>})."""
    return account.state_dir.parent.parent.parent


def auth_dir(account: AccountConfig) -> Path:
    """Where the linked device's session lives (0700): C{authDir}, else C{credentials/whatsapp/<account>/}."""
    configured = account.config.get("authDir")
    if isinstance(configured, str) and configured.strip():
        return Path(configured).expanduser()
    return state_root(account) / "credentials" / "whatsapp" / account.account_id


def bridge_command(account: AccountConfig) -> list[str]:
    value = account.config.get("bridgeCommand")
    if value is None:
        if importlib.util.find_spec("neonize") is None:
            raise ConfigProblem(
                "the WhatsApp Web helper needs neonize: pip install 'openclaw-twisted[whatsapp]' "
                "(or point channels.whatsapp.bridgeCommand at a Baileys helper)"
            )
        return default_command(sys.executable)
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as e:
            raise ConfigProblem(f"channels.whatsapp.bridgeCommand cannot be parsed: {e}") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = list(value)
    else:
        raise ConfigProblem("channels.whatsapp.bridgeCommand must be a command line or a list of strings")
    if not argv or not argv[0]:
        raise ConfigProblem("channels.whatsapp.bridgeCommand is empty")
    return argv


def _secret(account: AccountConfig, key: str, file_key: str | None, env: str | None) -> str:
    value = account.config.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    path = account.config.get(file_key) if file_key else None
    if isinstance(path, str) and path.strip():
        try:
            with open(Path(path).expanduser(), "rb") as f:
                text = f.read(MAX_SECRET_FILE).decode("utf-8", "replace").strip()
        except OSError as e:
            raise ConfigProblem(f"channels.whatsapp.{file_key} cannot be read: {e.strerror or e}") from None
        if not text:
            raise ConfigProblem(f"channels.whatsapp.{file_key} is empty")
        return text
    if env and account.account_id == "default":
        return account.env.get(env, "").strip()
    return ""


def _number(value: Any, default: float, low: float, high: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    return default


@implementer(IPlatform)
class WhatsAppPlatform:
    id = "whatsapp"
    label = "WhatsApp"
    limits = WEB_LIMITS

    def configured(self, account: AccountConfig) -> bool:
        if account.config.get("transport", "web") != "cloud":
            return True  # linking is a state of the running account (status: linked)
        try:
            return bool(_secret(account, "accessToken", "accessTokenFile", "WHATSAPP_ACCESS_TOKEN")) and bool(account.config.get("phoneNumberId"))
        except ConfigProblem:
            return False

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        transport = account.config.get("transport", "web")
        if transport == "web":
            folder = auth_dir(account)
            ensure_dir(folder)
            channel: IChannel = WhatsAppChannel(
                account,
                host,
                BridgeTransport(
                    host.reactor,
                    bridge_command(account),
                    folder,
                    account.account_id,
                    account.env,
                    ping_every=_number(account.config.get("pingSeconds"), 60.0, 1, 3600),
                    ping_timeout=_number(account.config.get("pingTimeoutSeconds"), 30.0, 1, 600),
                ),
            )
            return channel
        if transport != "cloud":
            raise ConfigProblem(f"channels.whatsapp.transport must be 'web' or 'cloud', not {transport!r}")
        return WhatsAppChannel(account, host, self._cloud(account, host))

    def _cloud(self, account: AccountConfig, host: ChannelHost) -> CloudTransport:
        token = _secret(account, "accessToken", "accessTokenFile", "WHATSAPP_ACCESS_TOKEN")
        if not token:
            raise ConfigProblem("no access token: set channels.whatsapp.accessToken (or accessTokenFile, or WHATSAPP_ACCESS_TOKEN)")
        phone_id = str(account.config.get("phoneNumberId") or "").strip()
        if not _PHONE_ID.match(phone_id):
            raise ConfigProblem("channels.whatsapp.phoneNumberId must be the phone number's id from Meta's WhatsApp Manager (digits)")
        app_secret = _secret(account, "appSecret", None, "WHATSAPP_APP_SECRET")
        if not app_secret:
            raise ConfigProblem("channels.whatsapp.appSecret is required: webhook deliveries are checked against it, and without it anyone could post messages")
        verify_token = str(account.config.get("verifyToken") or "").strip()
        if not verify_token:
            raise ConfigProblem("channels.whatsapp.verifyToken is required: Meta sends it when it verifies the webhook")
        base = str(account.config.get("graphBase") or GRAPH_BASE)
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigProblem("channels.whatsapp.graphBase must be an http(s) URL such as https://graph.facebook.com")
        version = str(account.config.get("graphVersion") or GRAPH_VERSION)
        if not _VERSION.match(version):
            raise ConfigProblem("channels.whatsapp.graphVersion must look like v23.0")
        default_path = WEBHOOK_PATH if account.account_id == "default" else f"{WEBHOOK_PATH}-{account.account_id}"
        return CloudTransport(
            host.reactor,
            host.routes,
            account.account_id,
            token,
            phone_id,
            app_secret,
            verify_token,
            str(account.config.get("webhookPath") or default_path),
            base,
            version,
            _number(account.config.get("timeoutSeconds"), 30.0, 1, 600),
        )
