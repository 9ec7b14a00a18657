#!/usr/bin/env python3
"""
A fake WhatsApp Web helper for the tests: it speaks the gateway's JSON-lines
protocol on stdio exactly as a real helper does, but what it says comes from
the test (L{tests.fakes_whatsapp.FakeWhatsApp}), which it reaches on
127.0.0.1:<port> (C{--control PORT}). WhatsApp Web's own wire (Noise,
Signal, protobuf over a WebSocket) cannot reasonably be faked, so the fake
stands where the library would.

Relay, both ways, one JSON object per line:
  - stdin lines go to the test as C{{"cmd": <the command>}} (or
    C{{"bad": "<text>"}}), end of stdin as C{{"eof": true}} (then it exits 0);
  - from the test: C{{"emit": {...}}} is written to stdout, C{{"raw": "..."}}
    too (unframed, for garbage), C{{"stderr": "..."}} to stderr,
    C{{"exit": N}} ends the process with code N, C{{"write": {"name", "data"}}}
    writes a file in the session folder (as the helper's own session).
On start it sends C{{"hello": {"authDir", "account", "pid", "umask"}}}.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys


def main() -> int:
    port = int(sys.argv[sys.argv.index("--control") + 1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    mask = os.umask(0)
    os.umask(mask)
    hello = {"authDir": os.environ.get("OPENCLAW_WHATSAPP_AUTH_DIR"), "account": os.environ.get("OPENCLAW_WHATSAPP_ACCOUNT"), "pid": os.getpid(), "umask": mask, "cwd": os.getcwd(), "env": sorted(os.environ)}
    sock.sendall(json.dumps({"hello": hello}).encode() + b"\n")
    selector = selectors.DefaultSelector()
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    selector.register(stdin, selectors.EVENT_READ, "stdin")
    selector.register(sock, selectors.EVENT_READ, "control")
    pending = {"stdin": b"", "control": b""}
    out = sys.stdout.buffer
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                data = os.read(stdin.fileno(), 1 << 20)
                if not data:
                    sock.sendall(b'{"eof": true}\n')
                    return 0
                pending["stdin"] += data
                while b"\n" in pending["stdin"]:
                    line, pending["stdin"] = pending["stdin"].split(b"\n", 1)
                    try:
                        message = {"cmd": json.loads(line)}
                    except ValueError:
                        message = {"bad": line.decode("utf-8", "replace")}
                    sock.sendall(json.dumps(message).encode() + b"\n")
            else:
                data = sock.recv(1 << 20)
                if not data:
                    return 3  # the test went away
                pending["control"] += data
                while b"\n" in pending["control"]:
                    line, pending["control"] = pending["control"].split(b"\n", 1)
                    order = json.loads(line)
                    if "write" in order:  # a session file, written as a helper writes it
                        with open(os.path.join(hello["authDir"], order["write"]["name"]), "w") as f:
                            f.write(order["write"]["data"])
                    if "emit" in order:
                        out.write(json.dumps(order["emit"]).encode() + b"\n")
                        out.flush()
                    if "raw" in order:
                        out.write(order["raw"].encode())
                        out.flush()
                    if "stderr" in order:
                        sys.stderr.write(order["stderr"] + "\n")
                        sys.stderr.flush()
                    if "exit" in order:
                        out.flush()
                        os._exit(int(order["exit"]))


if __name__ == "__main__":
    sys.exit(main())
