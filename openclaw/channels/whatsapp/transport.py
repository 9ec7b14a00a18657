# -*- test-case-name: tests.test_whatsapp -*-
"""
The seam between the WhatsApp channel and how it reaches WhatsApp.

A transport (L{IWhatsAppTransport}) holds one link: WhatsApp Web through a
helper process (L{openclaw.channels.whatsapp.bridge}), or the Cloud API
(L{openclaw.channels.whatsapp.cloud}). It reports what happens to an
L{ITransportEvents} (the channel), which owns everything the two share:
ids, own-message and status-chat rules, the link/login state and what
status shows.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from openclaw.channels.interfaces import Media
from openclaw.channels.whatsapp.messages import Me, WaMessage


class ITransportEvents(Interface):
    """What a transport reports while its link runs."""

    def qr(payload: str) -> None:
        """A link code to show (WhatsApp → Settings → Linked Devices); a new one replaces the last."""

    def connected(me: Me) -> None:
        """The link is up as C{me}."""

    def message(message: WaMessage) -> bool:
        """
        A message arrived; it is journaled before this returns (the transport
        may then acknowledge it). Raises when it could not be kept.
        """

    def status(state: str, reason: str | None, code: int | None) -> None:
        """C{connecting}, C{connected}, C{degraded} (keepalives failing) or C{closed} (with the code and reason)."""

    def logged_out(reason: str) -> None:
        """WhatsApp ended this linked device (removed on the phone, expired): it must be linked again."""

    def error(message: str, fatal: bool) -> None:
        """A problem to show; C{fatal}: the transport cannot work as installed (missing library, ...)."""


class IWhatsAppTransport(Interface):
    kind = Attribute("'web' (linked device) or 'cloud' (Cloud API)")
    needs_link = Attribute("True when the account must be linked by QR first")

    def may_be_linked() -> bool:
        """Whether there is a session to try (no: wait for a login instead of starting)."""

    def run(events: ITransportEvents) -> Deferred[Any]:
        """Hold the link, reporting to C{events}, until it ends (fires) or is cancelled."""

    def stop() -> None:
        """End the link soon; L{run} then fires."""

    def send_text(to: str, text: str, quote: str | None) -> Deferred[str]:
        """Send text to a JID (or number); fires with the new message's id."""

    def send_media(to: str, media: Media, caption: str) -> Deferred[str]:
        """Send one attachment with a caption; fires with the message id."""

    def typing(to: str) -> Deferred[None]:
        """Show "typing…" in the chat."""

    def read(chat: str, sender: str, message_ids: list[str]) -> Deferred[None]:
        """Mark messages as read (blue ticks)."""

    def logout() -> Deferred[bool]:
        """Unlink this device on WhatsApp's side if that can be done; True when it was."""

    def clear() -> None:
        """Forget the local session (its files)."""

    def probe(timeout: float) -> Deferred[dict[str, Any]]:
        """A live check of the transport itself (never raises)."""

    def snapshot() -> dict[str, Any]:
        """Transport fields for status."""

    def secrets() -> tuple[str, ...]:
        """Credentials to mask in logs."""

    def close() -> Deferred[None]:
        """Release everything (the helper process, connections)."""
