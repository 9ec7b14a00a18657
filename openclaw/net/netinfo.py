# -*- test-case-name: tests.test_settings -*-
"""The host's interface addresses (Linux ioctl), to find the Tailscale IPv4."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

_SIOCGIFADDR = 0x8915
_TAILNET = ipaddress.IPv4Network("100.64.0.0/10")


def interface_addresses() -> dict[str, str]:
    """Interface name to IPv4 address, for interfaces that have one."""
    found: dict[str, str] = {}
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            found[name] = socket.inet_ntoa(packed[20:24])
    return found


def tailnet_address() -> str | None:
    """The first address in Tailscale's CGNAT range, if this host has one."""
    for address in interface_addresses().values():
        if ipaddress.IPv4Address(address) in _TAILNET:
            return address
    return None


def lan_address() -> str | None:
    """The first IPv4 address that is neither loopback nor link-local."""
    for address in interface_addresses().values():
        ip = ipaddress.IPv4Address(address)
        if not ip.is_loopback and not ip.is_link_local:
            return address
    return None
