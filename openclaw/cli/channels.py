# -*- test-case-name: tests.test_channels_gateway -*-
"""
Channel commands, as gateway clients: C{openclaw channels status [--probe]},
C{channels login|logout <channel>}, C{openclaw pairing list [channel]},
C{pairing approve <channel> <code> [--notify]}, C{pairing deny <channel>
<code>}, and C{openclaw message send --channel … --to … --message …}.
"""

from __future__ import annotations

import time
import uuid
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw.cli.base import CommandOptions
from openclaw.cli.remote import Failed, TimedOptions

STATE_WORDS = {
    "running": "running",
    "connecting": "connecting",
    "backoff": "reconnecting",
    "disconnected": "waiting for its link",  # an adapter's account: the adapter reconnects to us
    "auth-failed": "stopped: auth failed",
    "misconfigured": "stopped: misconfigured",
    "not-configured": "not configured",
    "disabled": "disabled",
    "logged-out": "logged out",
    "stopped": "stopped",
    "error": "stopped: error",
    "not-linked": "not linked",
    "linking": "linking (QR shown)",
}


def _age(ms: int | None) -> str:
    if not ms:
        return "never"
    seconds = max(0, int(time.time() - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def account_line(channel: str, row: dict[str, Any]) -> str:
    bits = [STATE_WORDS.get(str(row.get("healthState")), str(row.get("healthState") or ("running" if row.get("running") else "stopped")))]
    bits.append("connected" if row.get("connected") else "disconnected")
    if row.get("mode"):
        bits.append(f"mode:{row['mode']}")
    bot = row.get("bot") or (row.get("probe") or {}).get("bot") or {}
    if bot.get("username"):
        bits.append(f"bot:@{bot['username']}")
    bits.append(f"dm:{row.get('dmPolicy', 'pairing')}")
    bits.append(f"in:{_age(row.get('lastInboundAt'))}")
    bits.append(f"out:{_age(row.get('lastOutboundAt'))}")
    probe = row.get("probe")
    if isinstance(probe, dict):
        bits.append("probe ok" if probe.get("ok") else f"probe failed: {probe.get('error', '')}".rstrip(": "))
    line = f"- {channel} {row.get('accountId', 'default')}: " + ", ".join(bits)
    if row.get("lastError"):
        line += f"\n    error: {row['lastError']}"
    return line


class ChannelsStatusOptions(TimedOptions):
    synopsis = "[--probe] [--channel ID] [--json]"
    optFlags = [["probe", None, "Check each account live (credentials, webhook)."]]
    optParameters = [["channel", None, None, "Only this channel."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        params: dict[str, Any] = {"probe": bool(self["probe"]), "timeoutMs": self["timeout"]}
        if self["channel"]:
            params["channel"] = self["channel"]
        status = await self.call_once(reactor, env, "channels.status", params)
        if self["json"]:
            self.emit(out, status)
            return
        accounts = status.get("channelAccounts") or {}
        if not any(accounts.values()):
            out.write("No channels are configured (set channels.<id> in the config, e.g. channels.telegram.botToken).\n")
            return
        for channel in status.get("channelOrder") or sorted(accounts):
            for row in accounts.get(channel) or []:
                out.write(account_line(channel, row) + "\n")


class _ChannelArg(TimedOptions):
    """A command that takes a channel (positional or --channel) and --account."""

    optParameters = [["channel", None, None, "Channel id (e.g. telegram)."], ["account", None, None, "Account id (default: the channel's default)."]]

    def parseArgs(self, channel: str | None = None) -> None:
        if channel and self["channel"] and channel != self["channel"]:
            raise usage.UsageError(f"two channels given: {channel!r} and --channel {self['channel']!r}")
        self["channel"] = self["channel"] or channel

    def postOptions(self) -> None:
        if not self["channel"]:
            raise usage.UsageError("give the channel, e.g. `telegram`")

    def account_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": self["channel"]}
        if self["account"]:
            params["accountId"] = self["account"]
        return params


class ChannelsLoginOptions(_ChannelArg):
    synopsis = "[channel] [--account ID] [--force]"
    longdesc = (
        "Start a channel account with its current config (also after a logout). "
        "WhatsApp (the default channel) is linked by QR: scan the code shown here in WhatsApp → Settings → Linked Devices."
    )
    optFlags = [["force", None, "WhatsApp: link again even when already linked."]]
    login_limit = 300.0  # seconds one QR login may take in all

    def postOptions(self) -> None:
        self["channel"] = self["channel"] or "whatsapp"

    def call_timeout(self) -> float:
        return max(self["timeout"] / 1000, 45.0) if self["channel"] == "whatsapp" else self["timeout"] / 1000

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if self["channel"] == "whatsapp":
            await self._qr_login(reactor, env, out)
            return
        result = await self.call_once(reactor, env, "channels.start", self.account_params())
        if self["json"]:
            self.emit(out, result)
            return
        out.write(account_line(result["channel"], result["status"]) + "\n")

    def _show(self, out: Any, result: dict[str, Any]) -> None:
        from openclaw.channels.whatsapp.qr import encode, terminal

        if self["json"]:
            self.emit(out, {k: v for k, v in result.items() if k != "qrDataUrl"})
        else:
            out.write("\n" + terminal(encode(result["qr"])) + "\n\n" + str(result.get("message") or "") + "\n")
        out.flush()

    async def _qr_login(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        params: dict[str, Any] = {"timeoutMs": 30_000}
        if self["account"]:
            params["accountId"] = self["account"]
        connection = await self.connection(reactor, env)
        try:
            if self["force"]:
                params["force"] = True
            result = await self.call(connection, "web.login.start", params)
            params.pop("force", None)
            if not result.get("connected"):
                if not result.get("qr"):
                    raise Failed(str(result.get("message") or "the gateway sent no QR code"))
                self._show(out, result)
            deadline = reactor.seconds() + self.login_limit
            current = result.get("qrDataUrl")
            while not result.get("connected"):
                if reactor.seconds() > deadline:
                    raise Failed("WhatsApp was not linked in time; run `openclaw channels login whatsapp` again.")
                wait = {"timeoutMs": int((self.call_timeout() - 5) * 1000), **{k: v for k, v in params.items() if k == "accountId"}}
                if current:
                    wait["currentQrDataUrl"] = current
                result = await self.call(connection, "web.login.wait", wait)
                if result.get("connected"):
                    break
                if result.get("qr") and result.get("qrDataUrl") != current:
                    current = result["qrDataUrl"]
                    self._show(out, result)
                elif not str(result.get("message") or "").startswith("Still waiting"):
                    raise Failed(str(result.get("message") or "the WhatsApp login failed"))
        finally:
            connection.close()
        if self["json"]:
            self.emit(out, {"connected": True, "message": result.get("message")})
        else:
            out.write(str(result.get("message") or "WhatsApp is linked.") + "\n")


class ChannelsLogoutOptions(_ChannelArg):
    synopsis = "<channel> [--account ID]"
    longdesc = "Stop a channel account and keep it stopped until `channels login`."

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        result = await self.call_once(reactor, env, "channels.logout", self.account_params())
        if self["json"]:
            self.emit(out, result)
            return
        out.write(f"Logged out {result['channel']} account {result['accountId']}.\n")


class ChannelsOptions(CommandOptions):
    synopsis = "status|login|logout"
    subCommands = [
        ["status", None, ChannelsStatusOptions, "Channel accounts and their state (--probe checks them live)."],
        ["login", None, ChannelsLoginOptions, "Link WhatsApp by QR, or start a channel account (again)."],
        ["logout", None, ChannelsLogoutOptions, "Stop a channel account and keep it off."],
    ]


# -- DM pairing


class PairingListOptions(TimedOptions):
    synopsis = "[channel] [--account ID] [--json]"
    optParameters = [["channel", None, None, "Channel id."], ["account", None, None, "Account id."]]

    def parseArgs(self, channel: str | None = None) -> None:
        self["channel"] = self["channel"] or channel

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        params = {k: v for k, v in (("channel", self["channel"]), ("accountId", self["account"])) if v}
        listing = await self.call_once(reactor, env, "channels.pairing.list", params)
        if self["json"]:
            self.emit(out, {"channel": self["channel"], "requests": listing["requests"]})
            return
        requests = listing["requests"]
        if not requests:
            out.write(f"No pending {self['channel'] or 'DM'} pairing requests.\n")
            return
        out.write(f"Pairing requests ({len(requests)}):\n")
        for r in requests:
            code = (r.get("metadata") or {}).get("code", "?")
            out.write(f"  {code}  {r['channel']}:{r['accountId']}  {r['senderLabel']} (id {r['senderId']})  expires {r['expiresAt']}\n")


class _PairingCode(TimedOptions):
    optParameters = [["channel", None, None, "Channel id."], ["account", None, None, "Account id."]]
    method = ""

    def parseArgs(self, first: str, second: str | None = None) -> None:
        if second is None:
            if not self["channel"]:
                raise usage.UsageError("give the channel and the code: <channel> <code>")
            self["code"] = first
        else:
            if self["channel"] and self["channel"] != first:
                raise usage.UsageError(f"two channels given: {first!r} and --channel {self['channel']!r}")
            self["channel"], self["code"] = first, second

    async def request(self, connection: Any) -> dict[str, Any]:
        """The pending request with this code (the RPCs name requests by id)."""
        params = {k: v for k, v in (("channel", self["channel"]), ("accountId", self["account"])) if v}
        listing = await self.call(connection, "channels.pairing.list", params)
        code = self["code"].strip().upper()
        for r in listing["requests"]:
            if (r.get("metadata") or {}).get("code") == code:
                return r
        raise Failed(f"No pending pairing request found for code {self['code']!r} on {self['channel']}. Run `openclaw pairing list {self['channel']}` to see the pending ones.")


class PairingApproveOptions(_PairingCode):
    synopsis = "<channel> <code> [--notify] [--account ID]"
    optFlags = [["notify", None, "Tell the sender they were approved."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env)
        try:
            r = await self.request(connection)
            result = await self.call(connection, "channels.pairing.approve", {"channel": r["channel"], "accountId": r["accountId"], "requestId": r["requestId"], "notify": bool(self["notify"])})
        finally:
            connection.close()
        if self["json"]:
            self.emit(out, result)
            return
        out.write(f"Approved {r['channel']} sender {r['senderLabel']} (id {result['senderId']}).\n")
        if self["notify"] and result["notification"] != "sent":
            out.write(f"Could not notify the sender ({result['notification']}).\n")


class PairingDenyOptions(_PairingCode):
    synopsis = "<channel> <code> [--account ID]"

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env)
        try:
            r = await self.request(connection)
            result = await self.call(connection, "channels.pairing.dismiss", {"channel": r["channel"], "accountId": r["accountId"], "requestId": r["requestId"]})
        finally:
            connection.close()
        if self["json"]:
            self.emit(out, result)
            return
        out.write(f"Denied {r['channel']} pairing request from {r['senderLabel']} (id {result['senderId']}).\n")


class PairingOptions(CommandOptions):
    synopsis = "list|approve|deny"
    subCommands = [
        ["list", None, PairingListOptions, "Pending DM pairing requests."],
        ["approve", None, PairingApproveOptions, "Approve a sender by its pairing code."],
        ["deny", None, PairingDenyOptions, "Dismiss a pairing request."],
    ]


# -- sending


class MessageSendOptions(TimedOptions):
    synopsis = "--to CHAT --message TEXT [--channel ID] [--account ID] [--media URL] [--reply-to ID] [--thread-id ID]"
    optParameters = [
        ["channel", None, None, "Channel id (optional when only one is configured)."],
        ["account", None, None, "Account id."],
        ["to", "t", None, "Destination (Telegram: chat id or @username)."],
        ["target", None, None, "Same as --to."],
        ["message", "m", None, "Text to send."],
        ["media", None, None, "An http(s) URL to attach."],
        ["reply-to", None, None, "Message id to reply to."],
        ["thread-id", None, None, "Thread or forum topic id."],
    ]
    optFlags = [["silent", None, "Send without a notification sound."]]

    def postOptions(self) -> None:
        self["to"] = self["to"] or self["target"]
        if not self["to"]:
            raise usage.UsageError("--to is required")
        if not (self["message"] or self["media"]):
            raise usage.UsageError("give --message or --media")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        params: dict[str, Any] = {"to": self["to"], "idempotencyKey": str(uuid.uuid4())}
        for option, field in (("message", "message"), ("channel", "channel"), ("account", "accountId"), ("media", "mediaUrl"), ("reply-to", "replyToId"), ("thread-id", "threadId")):
            if self[option]:
                params[field] = self[option]
        if self["silent"]:
            params["silent"] = True
        result = await self.call_once(reactor, env, "send", params)
        if self["json"]:
            self.emit(out, result)
            return
        out.write(f"Sent to {result['channel']} chat {result.get('chatId', self['to'])} (message {result['messageId']}).\n")


class MessageOptions(CommandOptions):
    synopsis = "send"
    subCommands = [["send", None, MessageSendOptions, "Send a message to a channel target."]]
