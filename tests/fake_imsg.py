"""
A stand-in for `imsg rpc`: a relay between its stdin/stdout and a test's
control server (tests/fakes_imsg.py), which plays imsg's JSON-RPC side.

    python fake_imsg.py HOST:PORT rpc [--db PATH]

Every stdin line goes to the control server as {"stdin": line}; the server
answers with instructions, one JSON object a line: {"out": text} (written to
stdout as is, so it can be half a line or not JSON at all), {"err": text}
(stderr), {"exit": code} (exit at once, without flushing a half line).
Like imsg, it exits 0 when stdin closes; it exits 1 when the control
connection drops. Plain Python (no Twisted), so it starts fast.
"""

import json
import os
import selectors
import socket
import sys


def main() -> None:
    host, _, port = sys.argv[1].rpartition(":")
    control = socket.create_connection((host, int(port)))
    control.sendall(json.dumps({"hello": {"argv": sys.argv[2:], "pid": os.getpid()}}).encode() + b"\n")
    selector = selectors.DefaultSelector()
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    selector.register(stdin, selectors.EVENT_READ, "stdin")
    selector.register(control, selectors.EVENT_READ, "control")
    pending_in = b""
    pending_control = b""
    out = sys.stdout.buffer
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                data = os.read(stdin.fileno(), 65536)
                if not data:
                    control.sendall(json.dumps({"eof": True}).encode() + b"\n")
                    os._exit(0)
                pending_in += data
                while b"\n" in pending_in:
                    line, pending_in = pending_in.split(b"\n", 1)
                    control.sendall(json.dumps({"stdin": line.decode("utf-8", "replace")}).encode() + b"\n")
            else:
                data = control.recv(65536)
                if not data:
                    os._exit(1)
                pending_control += data
                while b"\n" in pending_control:
                    line, pending_control = pending_control.split(b"\n", 1)
                    order = json.loads(line)
                    if "out" in order:
                        out.write(order["out"].encode("utf-8"))
                        out.flush()
                    if "err" in order:
                        sys.stderr.write(order["err"])
                        sys.stderr.flush()
                    if "exit" in order:
                        os._exit(int(order["exit"]))


if __name__ == "__main__":
    main()
