# -*- test-case-name: tests.test_tailscale -*-
"""
Tailscale Serve and Funnel for the gateway port, through the C{tailscale} CLI.

L{TailscaleService} runs C{tailscale serve|funnel --bg --yes <port>} once the
gateway listens, and with C{resetOnExit} undoes it when the gateway stops.
Funnel makes the gateway public: L{check_mode} refuses it without password
auth. With C{gateway.auth.allowTailscale}, a WebSocket connect that really
came through Serve (from loopback, with Tailscale's C{X-Forwarded-For/-Proto/
-Host} and C{Tailscale-User-Login}) is authenticated by its identity, after
C{tailscale whois} confirms that the forwarded address belongs to that login.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from typing import Any, Callable, Mapping

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger

log = Logger(namespace="openclaw.tailscale")

MODES = ("off", "serve", "funnel")
COMMAND_TIMEOUT = 15.0
SERVE_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
LOGIN_HEADER = "tailscale-user-login"


class TailscaleRefused(Exception):
    """A Tailscale mode this gateway must not start with (the message says why)."""


@attrs.frozen
class TailscaleSettings:
    mode: str = "off"
    reset_on_exit: bool = False
    allow_identity: bool = False


def tailscale_settings(config: Mapping[str, Any], mode_flag: str | None = None, reset_flag: bool = False) -> TailscaleSettings:
    gateway = config.get("gateway") or {}
    block = gateway.get("tailscale") or {}
    mode = mode_flag or block.get("mode") or "off"
    allow = bool((gateway.get("auth") or {}).get("allowTailscale", False))
    return TailscaleSettings(mode, bool(reset_flag or block.get("resetOnExit", False)), allow and mode == "serve")


def check_mode(settings: TailscaleSettings, auth_mode: str, has_password: bool) -> None:
    """Funnel is public: password auth or nothing (upstream's rule)."""
    if settings.mode == "funnel" and (auth_mode != "password" or not has_password):
        raise TailscaleRefused(
            "Refusing to start with Tailscale Funnel: it exposes the gateway to the internet; "
            "set gateway.auth.mode to \"password\" and a password (OPENCLAW_GATEWAY_PASSWORD), or use --tailscale serve."
        )


def serve_argv(mode: str, port: int) -> list[str]:
    return [mode, "--bg", "--yes", str(port)]


def reset_argv(mode: str) -> list[str]:
    return [mode, "--https=443", "off"]


Runner = Callable[[list[str]], Deferred]  # args after `tailscale` → (out, err, code)


def cli_runner(reactor: Any, env: Mapping[str, str]) -> Runner:
    """Run the C{tailscale} CLI found on C{env}'s PATH, with a timeout."""

    def run(args: list[str]) -> Deferred:
        binary = shutil.which("tailscale", path=env.get("PATH"))
        if binary is None:
            return Deferred.fromCoroutine(_missing())
        d = getProcessOutputAndValue(binary, args, env=dict(env), reactor=reactor)
        return d.addTimeout(COMMAND_TIMEOUT, reactor)

    return run


async def _missing() -> tuple[bytes, bytes, int]:
    return b"", b"tailscale: not found on PATH (install Tailscale and run `tailscale up`)", 127


class TailscaleService(Service):
    """Serve or Funnel the gateway port while the gateway runs."""

    name = "tailscale"

    def __init__(self, settings: TailscaleSettings, port: Callable[[], int], run: Runner) -> None:
        self.settings = settings
        self.port = port
        self.run = run
        self.applied = False
        self.starting: Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self.starting = Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        mode, port = self.settings.mode, self.port()
        out, err, code = await self.run(serve_argv(mode, port))
        if code != 0:
            said = (err or out).decode(errors="replace").strip().splitlines()
            log.error(
                "tailscale {mode} for port {port} failed (exit {code}): {said}; the gateway stays on loopback only",
                mode=mode, port=port, code=code, said=said[-1] if said else "no output",
            )
            return
        self.applied = True
        name = await self.dns_name()
        where = f"https://{name}/" if name else "your tailnet's HTTPS name for this machine"
        log.info("tailscale {mode}: {where} → http://127.0.0.1:{port}", mode=mode, where=where, port=port)

    async def dns_name(self) -> str | None:
        try:
            out, _, code = await self.run(["status", "--json"])
            name = json.loads(out).get("Self", {}).get("DNSName", "") if code == 0 else ""
        except (ValueError, AttributeError):
            return None
        return name.rstrip(".") or None

    def stopService(self) -> Deferred | None:
        super().stopService()
        if not (self.applied and self.settings.reset_on_exit):
            return None
        return Deferred.fromCoroutine(self._reset())

    async def _reset(self) -> None:
        try:
            out, err, code = await self.run(reset_argv(self.settings.mode))
        except Exception as e:  # a stop must finish whatever tailscale does
            log.warn("tailscale {mode} reset failed: {error}", mode=self.settings.mode, error=str(e))
            return
        if code != 0:
            log.warn("tailscale {mode} reset failed (exit {code}): {said}", mode=self.settings.mode, code=code, said=(err or out).decode(errors="replace").strip()[:200])
            return
        self.applied = False
        log.info("tailscale {mode} configuration removed", mode=self.settings.mode)


def serve_claim(peer_ip: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """
    C{(client address, login)} when a request looks like it came through
    Serve: from loopback, with all of Tailscale's forwarding headers and the
    login header. The address is the last hop (the one Serve itself added).
    """
    try:
        if not ipaddress.ip_address(peer_ip).is_loopback:
            return None
    except ValueError:
        return None
    if not all(headers.get(h) for h in SERVE_HEADERS):
        return None
    login = (headers.get(LOGIN_HEADER) or "").strip()
    hops = [h.strip() for h in headers["x-forwarded-for"].split(",") if h.strip()]
    if not login or not hops:
        return None
    try:
        ipaddress.ip_address(hops[-1])
    except ValueError:
        return None
    return hops[-1], login


def identity_verifier(run: Runner) -> Callable[[str, Mapping[str, str]], Deferred | None]:
    """For the WebSocket adapter: None (not a Serve request), or a Deferred firing with the verified login or None."""

    def verify(peer_ip: str, headers: Mapping[str, str]) -> Deferred | None:
        claim = serve_claim(peer_ip, headers)
        if claim is None:
            return None
        return Deferred.fromCoroutine(_whois(run, *claim))

    return verify


async def _whois(run: Runner, ip: str, login: str) -> str | None:
    try:
        out, _, code = await run(["whois", "--json", ip])
        profile = json.loads(out).get("UserProfile") or {} if code == 0 else {}
    except Exception:
        log.info("tailscale whois {ip} failed; identity headers ignored", ip=ip)
        return None
    if isinstance(profile, dict) and profile.get("LoginName") == login:
        return login
    log.info("tailscale identity {login} does not match whois {ip}; ignored", login=login, ip=ip)
    return None
