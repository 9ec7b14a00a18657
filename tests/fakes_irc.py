"""
A fake IRC server: a twisted LineReceiver on 127.0.0.1 (plain or TLS with a
throwaway CA the test trusts) speaking the client protocol as IRCds do:
C{CAP LS 302} holding registration until C{CAP END}, C{CAP REQ :sasl},
C{AUTHENTICATE PLAIN} with 900/903 or 904, C{PASS} (464), C{NICK} (433 when
taken), C{USER}, 001/005/376, C{JOIN}, C{PRIVMSG}, C{PING}/C{PONG}, C{QUIT},
C{ERROR :Closing Link}. Each client line is recorded with the time it came,
and lines longer than 512 bytes are counted (a real server would cut them).

Scripting per test: offered capabilities (or none: C{CAP} is an unknown
command), SASL accounts, taken nicks, the server password, banned channels,
C{answer_pings=False} for a dead link, C{on_register} to act at welcome
(send an ERROR and close, say), and C{say()} to deliver messages from other
users.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import PrivateCertificate
from twisted.protocols.basic import LineReceiver

SERVER = "irc.fake.test"


class FakeClient(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, server: FakeIrc) -> None:
        self.server = server
        self.nick: str | None = None
        self.user: str | None = None
        self.password: str | None = None
        self.cap_open = False
        self.registered = False
        self.account: str | None = None
        self.sasl_buffer = ""
        self.channels: set[str] = set()
        self.closed = False

    @property
    def prefix(self) -> str:
        return f"{self.nick}!~{self.user}@client.fake.test"

    def connectionMade(self) -> None:
        self.server.clients.append(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True

    def send(self, line: str) -> None:
        if not self.closed:
            self.transport.write(line.encode() + b"\r\n")

    def numeric(self, code: str, *params: str) -> None:
        self.send(f":{SERVER} {code} {self.nick or '*'} " + " ".join(params))

    def error(self, text: str) -> None:
        self.send(f"ERROR :{text}")
        self.transport.loseConnection()

    def lineReceived(self, raw: bytes) -> None:
        raw = raw.rstrip(b"\r")
        if len(raw) + 2 > 512:
            self.server.too_long += 1
        line = raw.decode("utf-8", "replace")
        self.server.lines.append((reactor.seconds(), line))
        head, _, trailing = line.partition(" :")
        words = head.split()
        if not words:
            return
        command, args = words[0].upper(), words[1:] + ([trailing] if " :" in line else [])
        handler = getattr(self, f"do_{command}", None)
        if handler is not None:
            handler(args)
        elif self.registered:
            self.numeric("421", command, ":Unknown command")

    # -- registration

    def do_CAP(self, args: list[str]) -> None:
        server = self.server
        if server.caps is None:
            self.numeric("421", "CAP", ":Unknown command")
            return
        sub = args[0].upper() if args else ""
        if sub == "LS":
            self.cap_open = True
            caps = server.caps.split()
            if len(caps) > 2:  # in two parts, as servers with many capabilities do
                self.send(f":{SERVER} CAP * LS * :{' '.join(caps[:2])}")
                caps = caps[2:]
            self.send(f":{SERVER} CAP * LS :{' '.join(caps)}")
        elif sub == "REQ":
            wanted = args[-1].split()
            offered = {c.partition("=")[0] for c in server.caps.split()}
            verb = "ACK" if all(w in offered for w in wanted) else "NAK"
            self.send(f":{SERVER} CAP * {verb} :{' '.join(wanted)}")
        elif sub == "END":
            self.cap_open = False
            self.try_welcome()

    def do_AUTHENTICATE(self, args: list[str]) -> None:
        value = args[0] if args else ""
        if value.upper() == "PLAIN":
            self.send("AUTHENTICATE +")
            return
        self.server.sasl_pieces.append(value)
        if value != "+":
            self.sasl_buffer += value
        if len(value) == 400:
            return  # more to come
        try:
            _, user, password = base64.b64decode(self.sasl_buffer).decode().split("\0")
        except ValueError:
            self.numeric("904", ":SASL authentication failed")
            return
        self.sasl_buffer = ""
        if self.server.accounts.get(user) == password:
            self.account = user
            self.numeric("900", f"{self.nick}!~{self.user}@client.fake.test", user, f":You are now logged in as {user}")
            self.numeric("903", ":SASL authentication successful")
        else:
            self.numeric("904", ":SASL authentication failed")

    def do_PASS(self, args: list[str]) -> None:
        self.password = args[0] if args else None

    def do_NICK(self, args: list[str]) -> None:
        wanted = args[0] if args else ""
        if wanted.lower() in {n.lower() for n in self.server.taken}:
            self.numeric("433", wanted, ":Nickname is already in use")
            return
        if self.registered:
            self.send(f":{self.prefix} NICK :{wanted}")
        self.nick = wanted
        self.try_welcome()

    def do_USER(self, args: list[str]) -> None:
        self.user = args[0] if args else "user"
        self.try_welcome()

    def try_welcome(self) -> None:
        server = self.server
        if self.registered or self.cap_open or not self.nick or not self.user:
            return
        if server.password is not None and self.password != server.password:
            self.numeric("464", ":Password incorrect")
            self.error("Closing Link: client.fake.test (Bad Password)")
            return
        self.registered = True
        self.numeric("001", f":Welcome to the Fake IRC Network {self.prefix}")
        self.numeric("005", "CHANTYPES=# NICKLEN=30 CASEMAPPING=rfc1459", ":are supported by this server")
        self.numeric("376", ":End of /MOTD command.")
        if server.on_register is not None:
            server.on_register(self)

    # -- registered

    def do_JOIN(self, args: list[str]) -> None:
        for channel in (args[0] if args else "").split(","):
            if channel.lower() in self.server.banned:
                self.numeric("474", channel, ":Cannot join channel (+b)")
                continue
            self.channels.add(channel.lower())
            self.send(f":{self.prefix} JOIN {channel}")
            self.numeric("353", "=", channel, f":{self.nick}")
            self.numeric("366", channel, ":End of /NAMES list.")

    def do_PRIVMSG(self, args: list[str]) -> None:
        if len(args) >= 2:
            self.server.privmsgs.append((args[0], args[-1]))
            self.server.senders.append(self)

    def do_PING(self, args: list[str]) -> None:
        if self.server.answer_pings:
            self.send(f":{SERVER} PONG {SERVER} :{args[-1] if args else ''}")

    def do_PONG(self, args: list[str]) -> None:
        self.server.pongs.append(args[-1] if args else "")

    def do_QUIT(self, args: list[str]) -> None:
        self.server.quits.append(args[-1] if args else "")
        self.error("Closing Link: client.fake.test (Quit)")


class FakeIrc(Factory):
    def __init__(self) -> None:
        self.caps: str | None = "multi-prefix sasl=PLAIN,EXTERNAL server-time"
        self.accounts: dict[str, str] = {"claw": "sasl-secret-pw"}
        self.taken: set[str] = set()
        self.password: str | None = None
        self.banned: set[str] = set()
        self.answer_pings = True
        self.on_register: Callable[[FakeClient], None] | None = None
        self.clients: list[FakeClient] = []
        self.lines: list[tuple[float, str]] = []
        self.privmsgs: list[tuple[str, str]] = []
        self.senders: list[FakeClient] = []  # the connection each PRIVMSG came on
        self.sasl_pieces: list[str] = []
        self.pongs: list[str] = []
        self.quits: list[str] = []
        self.too_long = 0

    def buildProtocol(self, addr: Any) -> FakeClient:
        return FakeClient(self)

    @property
    def client(self) -> FakeClient:
        live = [c for c in self.clients if not c.closed and c.registered]
        if not live:
            raise AssertionError("no registered client")
        return live[-1]

    def registered(self) -> bool:
        return any(not c.closed and c.registered for c in self.clients)

    def say(self, nick: str, target: str, text: str, ident: str | None = None, host: str = "users.fake.test") -> None:
        """A message from another user to a channel, or to the bot (target: its nick)."""
        self.client.send(f":{nick}!~{ident or nick.lower()}@{host} PRIVMSG {target} :{text}")

    def sent(self, target: str | None = None) -> list[str]:
        return [text for to, text in self.privmsgs if target is None or to.lower() == target.lower()]

    def commands(self, verb: str) -> list[str]:
        return [line for _, line in self.lines if line.split(" ", 1)[0].upper() == verb]


def make_ca(folder: Path) -> tuple[Path, PrivateCertificate]:
    """A throwaway CA and a server certificate it signs for 127.0.0.1 and localhost: (CA PEM file, server cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenClaw Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pem = leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_file, PrivateCertificate.loadPEM(pem)


async def start_irc(testcase: Any, tls: bool = True) -> tuple[FakeIrc, int, Path | None]:
    """Listen on 127.0.0.1:0 (TLS by default); returns the fake, its port and the CA file to trust."""
    fake = FakeIrc()
    ca_file = None
    if tls:
        ca_file, cert = make_ca(Path(testcase.mktemp()))
        endpoint: Any = SSL4ServerEndpoint(reactor, 0, cert.options(), interface="127.0.0.1")
    else:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = await endpoint.listen(fake)

    async def stop() -> None:
        for client in fake.clients:
            if not client.closed:
                client.transport.abortConnection()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, port.getHost().port, ca_file
