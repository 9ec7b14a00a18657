# -*- test-case-name: tests.test_bridge -*-
"""The bridge's Twisted side: one JSON object per C{\\n} line, into a L{BridgeSession}."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from openclaw.bridge.session import BridgeEnv, BridgeSession

log = Logger(namespace="openclaw.bridge")

# camera/screen results arrive base64-encoded in one line; anything longer is refused.
MAX_LINE = 8 * 1024 * 1024


class BridgeProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    session: BridgeSession | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        peer = self.transport.getPeer()
        for option in ("setTcpNoDelay", "setTcpKeepAlive"):
            if hasattr(self.transport, option):
                getattr(self.transport, option)(True)
        self.session = BridgeSession(self.factory.env, self._send, self.transport.loseConnection, getattr(peer, "host", "?"))
        self.session.opened()

    def _send(self, frame: dict[str, Any]) -> None:
        self.sendLine(json.dumps(frame, separators=(",", ":")).encode("utf-8"))

    def lineReceived(self, line: bytes) -> None:
        assert self.session is not None
        self.session.line(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        # Answer once, clearly, then hang up (the default just drops the connection).
        if self.session is not None and self.session.state != "closed":
            self.session.too_long()

    def connectionLost(self, reason: Any = None) -> None:
        if self.session is not None:
            self.session.closed()


class BridgeFactory(Factory):
    protocol = BridgeProtocol
    noisy = False

    def __init__(self, env: BridgeEnv) -> None:
        self.env = env
