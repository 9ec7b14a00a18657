# -*- test-case-name: tests.test_channels_gateway -*-
"""The platforms this gateway can run: one line per platform."""

from __future__ import annotations

from openclaw.channels.interfaces import IPlatform


def platforms() -> dict[str, IPlatform]:
    from openclaw.channels.slack.platform import SlackPlatform
    from openclaw.channels.imessage.platform import IMessagePlatform
    from openclaw.channels.signal.platform import SignalPlatform
    from openclaw.channels.discord.platform import DiscordPlatform
    from openclaw.channels.irc.platform import IrcPlatform
    from openclaw.channels.matrix.platform import MatrixPlatform
    from openclaw.channels.telegram.platform import TelegramPlatform
    from openclaw.channels.whatsapp.platform import WhatsAppPlatform

    found: list[IPlatform] = [TelegramPlatform(), SlackPlatform(), WhatsAppPlatform(), IMessagePlatform(), SignalPlatform(), DiscordPlatform(), MatrixPlatform(), IrcPlatform()]
    return {p.id: p for p in found}
