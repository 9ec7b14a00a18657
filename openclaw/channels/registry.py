# -*- test-case-name: tests.test_channels_gateway -*-
"""The platforms this gateway can run: one line per platform."""

from __future__ import annotations

from openclaw.channels.interfaces import IPlatform


def platforms() -> dict[str, IPlatform]:
    from openclaw.channels.irc.platform import IrcPlatform
    from openclaw.channels.matrix.platform import MatrixPlatform
    from openclaw.channels.telegram.platform import TelegramPlatform

    found: list[IPlatform] = [TelegramPlatform(), MatrixPlatform(), IrcPlatform()]
    return {p.id: p for p in found}
