# -*- test-case-name: tests.test_client -*-
"""
CLI commands that talk to a running gateway: C{gateway call|health|discover},
C{health}, C{logs}, C{devices ...} (status and probe: L{openclaw.cli.status}).

Target: C{--url}, else C{OPENCLAW_GATEWAY_URL}, else the local gateway port.
Credentials: C{--token}/C{--password}; without C{--url} also
C{OPENCLAW_GATEWAY_TOKEN}/C{_PASSWORD} and the local config, then this
machine's stored device token. Without C{--url} the config (and its C{.env}
files) is read as the gateway reads it; a config that cannot be used ends the
command with exit 78.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, TimeoutError
from twisted.internet.task import deferLater
from twisted.python import usage

from openclaw.cli.base import EX_USAGE, CommandOptions
from openclaw.client.core import CLI_SCOPES, GatewayClosed, RequestFailed, cli_params
from openclaw.client.identity import DeviceIdentity, DeviceTokens
from openclaw.config import EX_CONFIG, ConfigError, LoadedConfig, load_valid

LEVEL_ORDER = ["trace", "debug", "info", "warn", "error", "fatal"]


def _ms(value: str) -> int:
    try:
        ms = int(value)
    except ValueError:
        ms = -1
    if ms <= 0:
        raise usage.UsageError(f"expected a positive number of milliseconds, got {value!r}")
    return ms


class Failed(Exception):
    """A command failed; C{message} goes to stderr, C{code} is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class RemoteOptions(CommandOptions):
    """Options every gateway client command takes."""

    optParameters = [
        ["url", None, None, "Gateway WebSocket URL (ws:// or wss://)."],
        ["token", None, None, "Gateway token."],
        ["password", None, None, "Gateway password."],
    ]
    optFlags = [["json", None, "Print JSON."]]
    connect_timeout = 10.0

    def call_timeout(self) -> float:
        """Seconds one call may take (commands with a --timeout say how long)."""
        return 10.0

    def local_config(self, env: Mapping[str, str]) -> LoadedConfig:
        """The config as the gateway reads it; one that cannot be used ends the command (exit 78)."""
        try:
            return load_valid(self.layout(env), env)
        except ConfigError as e:
            raise Failed(e.describe(), EX_CONFIG)

    def target(self, env: Mapping[str, str], local: bool = False) -> tuple[str, str | None, str | None]:
        """URL and credentials; C{local}: this machine's gateway even when a remote one is configured."""
        if self["url"] and not local:
            return self["url"], self["token"], self["password"]
        layout = self.layout(env)
        loaded = self.local_config(env)
        env = loaded.env  # with the .env files
        gateway = loaded.config.get("gateway") or {}
        url = None if local else env.get("OPENCLAW_GATEWAY_URL")
        if not url and not local and gateway.get("mode") == "remote" and isinstance((gateway.get("remote") or {}).get("url"), str):
            url = gateway["remote"]["url"]
            remote = gateway["remote"]
            return url, self["token"] or remote.get("token"), self["password"] or remote.get("password")
        if not url:
            port = env.get("OPENCLAW_GATEWAY_PORT") or gateway.get("port") or layout.default_port
            url = f"ws://127.0.0.1:{port}"
        auth = gateway.get("auth") or {}
        token = self["token"] or env.get("OPENCLAW_GATEWAY_TOKEN") or auth.get("token")
        password = self["password"] or env.get("OPENCLAW_GATEWAY_PASSWORD") or auth.get("password")
        return url, token, password

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        from twisted.internet import task

        async def main(reactor: Any) -> None:
            try:
                await self.go(reactor, env, out)
            except Failed as e:
                err.write(f"{e}\n")
                raise SystemExit(e.code)

        try:
            task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        """The command's work; a command without its own has nothing to do but show usage."""
        raise Failed(str(self), EX_USAGE)

    async def connection(self, reactor: Any, env: Mapping[str, str], scopes: list[str] = CLI_SCOPES, local: bool = False) -> Any:
        from openclaw.client.ws import open_gateway

        url, token, password = self.target(env, local)
        state = self.layout(env).state_dir
        identity = DeviceIdentity.load_or_create(state)
        tokens = DeviceTokens(state)
        stored = None if (token or password) else tokens.get(identity.id, "operator")
        params = cli_params(token, password, stored, scopes)
        try:
            connection = await open_gateway(reactor, url, params, identity, self.connect_timeout)
        except RequestFailed as e:
            details = e.error.get("details") or {}
            if details.get("code") == "AUTH_DEVICE_TOKEN_MISMATCH" or (stored and details.get("code") == "AUTH_TOKEN_MISMATCH"):
                tokens.clear(identity.id, "operator")
            raise Failed(f"Gateway connect failed: {e.error.get('code')}: {e.error.get('message')}\nGateway target: {url}")
        except (GatewayClosed, ConnectError, TimeoutError, OSError, ValueError) as e:
            raise Failed(f"Gateway not reachable at {url}: {_describe(e)}")
        auth = connection.hello.get("auth") or {}
        if auth.get("deviceToken"):
            tokens.put(identity.id, auth.get("role", "operator"), auth["deviceToken"], auth.get("scopes", []))
        self.url = url
        return connection

    async def call(self, connection: Any, method: str, params: Any = None, expect_final: bool = False) -> Any:
        from twisted.internet import reactor

        try:
            return await connection.call(method, params, expect_final).addTimeout(self.call_timeout(), reactor)
        except RequestFailed as e:
            raise Failed(f"Gateway call failed: {e.error.get('code')}: {e.error.get('message')}")
        except GatewayClosed as e:
            raise Failed(f"Gateway call failed: {e}")
        except TimeoutError:
            raise Failed(f"Gateway call failed: {method} timed out after {self.call_timeout():g} s")

    async def call_once(self, reactor: Any, env: Mapping[str, str], method: str, params: Any = None, expect_final: bool = False) -> Any:
        """Connect, make one call, close; return the payload."""
        connection = await self.connection(reactor, env)
        try:
            return await self.call(connection, method, params, expect_final)
        finally:
            connection.close()

    def emit(self, out: IO[str], value: Any) -> None:
        out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


class TimedOptions(RemoteOptions):
    """A gateway command with C{--timeout} in milliseconds (as upstream's `gateway call`)."""

    optParameters = [["timeout", None, 10000, "Timeout in milliseconds.", _ms]]

    @property
    def connect_timeout(self) -> float:
        return self["timeout"] / 1000

    def call_timeout(self) -> float:
        return self["timeout"] / 1000


def _describe(e: Exception) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


class CallOptions(TimedOptions):
    synopsis = "<method> [--params JSON] [--expect-final] [--url URL] [--token T] [--json]"
    optParameters = [["params", None, "{}", "Params as a JSON object."]]
    optFlags = [["expect-final", None, "Wait for the final response of a two-phase method."]]

    def parseArgs(self, method: str) -> None:
        self["method"] = method

    def postOptions(self) -> None:
        try:
            self["parsed"] = json.loads(self["params"])
        except ValueError as e:
            raise usage.UsageError(f"--params is not JSON: {e}")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        self.emit(out, await self.call_once(reactor, env, self["method"], self["parsed"], self["expect-final"]))


class HealthOptions(TimedOptions):
    optFlags = [["verbose", "v", "Probe instead of reading the cached snapshot."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        started = time.monotonic()
        health = await self.call_once(reactor, env, "health", {"probe": True} if self["verbose"] else {})
        if self["json"]:
            self.emit(out, health)
        else:
            out.write(f"Gateway OK ({self.url}) in {int((time.monotonic() - started) * 1000)} ms\n")


class LogsOptions(TimedOptions):
    optParameters = [
        ["limit", None, 200, "Lines per read.", int],
        ["max-bytes", None, 250000, "Bytes per read.", int],
        ["interval", None, 1000, "Follow poll interval (ms).", _ms],
        ["level", None, None, "Only this level and above."],
        ["channel", None, None, "Only lines whose subsystem contains this."],
    ]
    optFlags = [["follow", "f", "Keep reading new lines."]]

    def postOptions(self) -> None:
        if self["level"] and self["level"] not in LEVEL_ORDER:
            raise usage.UsageError(f"--level: one of {', '.join(LEVEL_ORDER)}")

    def keep(self, line: str) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
        except ValueError:
            record = {"msg": line}
        if not isinstance(record, dict):
            record = {"msg": line}
        level = record.get("level", "info")
        if self["level"] and LEVEL_ORDER.index(level if level in LEVEL_ORDER else "info") < LEVEL_ORDER.index(self["level"]):
            return None
        if self["channel"] and self["channel"] not in str(record.get("subsystem", "")):
            return None
        return record

    def show(self, out: IO[str], line: str) -> None:
        record = self.keep(line)
        if record is None:
            return
        if self["json"]:
            out.write(json.dumps({"type": "log", **record}, ensure_ascii=False) + "\n")
        else:
            level = record.get("level", "info")
            out.write(f"{record.get('ts', '')} {level} [{record.get('subsystem', '')}] {record.get('msg', '')}\n")
        out.flush()

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env, ["operator.read"])
        cursor = None
        try:
            while True:
                params: dict[str, Any] = {"limit": min(max(self["limit"], 1), 5000), "maxBytes": min(max(self["max-bytes"], 1), 1_000_000)}
                if cursor is not None:
                    params["cursor"] = cursor
                page = await self.call(connection, "logs.tail", params)
                for line in page.get("lines", []):
                    self.show(out, line)
                cursor = page.get("cursor")
                if not self["follow"]:
                    return
                await deferLater(reactor, self["interval"] / 1000, lambda: None)
        finally:
            connection.close()


class DevicesListOptions(TimedOptions):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        listing = await self.call_once(reactor, env, "device.pair.list")
        if self["json"]:
            self.emit(out, listing)
            return
        out.write(f"Pending ({len(listing['pending'])}):\n")
        for r in listing["pending"]:
            out.write(f"  {r['requestId']}  {r['deviceId'][:16]}…  {r.get('clientId', '')} {r.get('role', '')} {r.get('remoteIp', '')}\n")
        out.write(f"Paired ({len(listing['paired'])}):\n")
        for r in listing["paired"]:
            out.write(f"  {r['deviceId'][:16]}…  {r.get('clientId', '')} roles={','.join(r.get('roles', []))} scopes={','.join(r.get('scopes', []))}\n")


class OneArgCommand(TimedOptions):
    """A command whose one positional argument is the method's one param."""

    method = ""
    key = ""

    def parseArgs(self, value: str) -> None:
        self["value"] = value

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        self.emit(out, await self.call_once(reactor, env, self.method, {self.key: self["value"]}))


class DevicesApproveOptions(OneArgCommand):
    synopsis = "<requestId> | --latest"
    method, key = "device.pair.approve", "requestId"
    optFlags = [["latest", None, "Approve the newest pending request."]]

    def parseArgs(self, value: str | None = None) -> None:
        self["value"] = value

    def postOptions(self) -> None:
        if not self["value"] and not self["latest"]:
            raise usage.UsageError("give a requestId or --latest")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if self["latest"]:
            connection = await self.connection(reactor, env)
            try:
                pending = (await self.call(connection, "device.pair.list"))["pending"]
                if not pending:
                    raise Failed("no pending pairing requests")
                self.emit(out, await self.call(connection, self.method, {"requestId": pending[-1]["requestId"]}))
            finally:
                connection.close()
            return
        await super().go(reactor, env, out)


class DevicesRejectOptions(OneArgCommand):
    synopsis = "<requestId>"
    method, key = "device.pair.reject", "requestId"


class DevicesRemoveOptions(OneArgCommand):
    synopsis = "<deviceId>"
    method, key = "device.pair.remove", "deviceId"


class DevicesTokenOptions(TimedOptions):
    method = ""
    optParameters = [["device", None, None, "Device id."], ["role", None, "operator", "Role."]]

    def __init__(self) -> None:
        super().__init__()
        self["scopes"] = []

    def opt_scope(self, scope: str) -> None:
        """A scope for the rotated token (repeatable)."""
        self["scopes"].append(scope)

    def postOptions(self) -> None:
        if not self["device"]:
            raise usage.UsageError("--device is required")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        params: dict[str, Any] = {"deviceId": self["device"], "role": self["role"]}
        if self.method == "device.token.rotate" and self["scopes"]:
            params["scopes"] = self["scopes"]
        self.emit(out, await self.call_once(reactor, env, self.method, params))


class DevicesRotateOptions(DevicesTokenOptions):
    method = "device.token.rotate"


class DevicesRevokeOptions(DevicesTokenOptions):
    method = "device.token.revoke"


class DevicesOptions(CommandOptions):
    synopsis = "list|approve|reject|remove|rotate|revoke"
    subCommands = [
        ["list", None, DevicesListOptions, "Pending and paired devices."],
        ["approve", None, DevicesApproveOptions, "Approve a pairing request."],
        ["reject", None, DevicesRejectOptions, "Reject a pairing request."],
        ["remove", None, DevicesRemoveOptions, "Remove a paired device."],
        ["rotate", None, DevicesRotateOptions, "Rotate a device token."],
        ["revoke", None, DevicesRevokeOptions, "Revoke a device token."],
    ]


class DiscoverOptions(CommandOptions):
    synopsis = "[--timeout MS] [--json]"
    longdesc = "Browse the LAN (mDNS) for gateways announcing _openclaw._tcp or _openclaw-gw._tcp."
    optParameters = [["timeout", None, 2000, "How long to listen (ms).", _ms]]
    optFlags = [["json", None, "Print JSON."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        from openclaw.net.discovery import browse

        try:
            gateways = browse(self["timeout"] / 1000)
        except OSError as e:
            err.write(f"mDNS browse failed: {e}\n")
            return 1
        if self["json"]:
            out.write(json.dumps({"gateways": gateways}, indent=2) + "\n")
        elif not gateways:
            out.write("No gateways found.\n")
        for g in [] if self["json"] else gateways:
            txt = g["txt"]
            out.write(f"{txt.get('displayName', g['name'])}  ws://{txt.get('lanHost') or g['addresses'][0]}:{txt.get('gatewayPort', g['port'])}  bridge={txt.get('bridgePort', '')} canvas={txt.get('canvasPort', '')}\n")
        return 0


GATEWAY_CLIENT_COMMANDS = [
    ["call", None, CallOptions, "Call one gateway method and print the result."],
    ["health", None, HealthOptions, "Ask the gateway for its health."],
    ["discover", None, DiscoverOptions, "Find gateways on the LAN (mDNS)."],
]
