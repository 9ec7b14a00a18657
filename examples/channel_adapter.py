"""
A console channel adapter (the frames: docs/protocol.md, "Channel adapters").
Each stdin line "<sender> <text>" is a DM from <sender>; what the gateway sends
comes out on stdout as JSON lines. Gateway config: channels.console.adapter: true.
Run: python examples/channel_adapter.py ws://127.0.0.1:18789 TOKEN [console]
"""

import itertools
import json
import sys
import uuid

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import reactor, stdio
from twisted.protocols.basic import LineReceiver

URL, TOKEN, CHANNEL = sys.argv[1], sys.argv[2], (sys.argv[3:] or ["console"])[0]
ids = itertools.count(1)


def out(value):
    print(json.dumps(value), flush=True)


class Adapter(WebSocketClientProtocol):
    def call(self, method, params):
        self.sendMessage(json.dumps({"type": "req", "id": str(next(ids)), "method": method, "params": params}).encode())

    def onMessage(self, payload, isBinary):
        frame = json.loads(payload)
        event, body = frame.get("event"), frame.get("payload") or {}
        if event == "connect.challenge":
            client = {"id": "gateway-client", "version": "1.0", "platform": sys.platform, "mode": "backend"}
            self.call("connect", {"minProtocol": 3, "maxProtocol": 4, "client": client, "role": "channel", "scopes": [f"channel:{CHANNEL}"], "auth": {"token": TOKEN}})
        elif frame.get("type") == "res" and not frame["ok"]:
            out({"error": frame["error"]["message"]})
        elif body.get("type") == "hello-ok":
            self.call("channel.register", {"channel": CHANNEL})
        elif "dmPolicy" in body:  # registered: now read the console
            out({"ready": CHANNEL})
            stdio.StandardIO(Console(self))
        elif event == "channel.send":
            out({"to": body["chatId"], "text": body["text"]})
            self.call("channel.sent", {"id": body["id"], "messageId": uuid.uuid4().hex})

    def onClose(self, wasClean, code, reason):
        out({"closed": code, "reason": reason})
        if reactor.running:
            reactor.stop()


class Console(LineReceiver):
    delimiter = b"\n"

    def __init__(self, adapter):
        self.adapter = adapter

    def lineReceived(self, line):
        sender, _, text = line.decode().strip().partition(" ")
        message = {"chatId": sender, "chatType": "dm", "senderId": sender, "messageId": uuid.uuid4().hex, "text": text}
        self.adapter.call("channel.inbound", message)

    def connectionLost(self, reason):
        self.adapter.sendClose(1000)  # stdin closed: leave


factory = WebSocketClientFactory(URL)
factory.protocol = Adapter
connectWS(factory)
reactor.run()
