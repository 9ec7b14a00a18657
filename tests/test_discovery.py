"""mDNS: the service with a fake advertiser, and the real stack where multicast works."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from openclaw.net.discovery import IAdvertiser, ZeroconfAdvertiser, discover
from openclaw.service import GatewayService
from tests.helpers import REPO
from tests.wsclient import GatewayMixin, gateway_settings


@implementer(IAdvertiser)
class FakeAdvertiser:
    def __init__(self):
        self.calls = []

    def register(self, record):
        self.calls.append(("register", record))
        return succeed(None)

    def unregister(self):
        self.calls.append(("unregister", None))
        return succeed(None)


class FakeAdvertiserTests(GatewayMixin, TestCase):
    def test_interface(self):
        """Both advertisers provide IAdvertiser."""
        verifyObject(IAdvertiser, FakeAdvertiser())
        verifyObject(IAdvertiser, ZeroconfAdvertiser())

    async def test_record_and_unregister(self):
        """With --mdns the gateway announces its bound ports in TXT, and unregisters on stop."""
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        fake = FakeAdvertiser()
        settings = gateway_settings(home, discovery={"mdns": {"enabled": True}})
        service = GatewayService(settings, reactor, advertiser=fake)
        service.privilegedStartService()
        service.startService()
        [(kind, record)] = fake.calls
        self.assertEqual(kind, "register")
        self.assertEqual(record.port, service.port)
        self.assertEqual(
            {k: record.txt[k] for k in ("role", "gatewayPort", "bridgePort", "canvasPort", "transport", "lanHost")},
            {
                "role": "gateway",
                "gatewayPort": str(service.port),
                "bridgePort": str(service.bridge[0].port),
                "canvasPort": str(service.canvas_listeners[0].port),
                "transport": "ws",
                "lanHost": "127.0.0.1",
            },
        )
        await service.stopService()
        self.assertEqual(fake.calls[-1][0], "unregister")

    async def test_off_by_default(self):
        """Without --mdns or discovery.mdns.enabled nothing is announced; mode off wins."""
        fake = FakeAdvertiser()
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        for config in ({}, {"discovery": {"mdns": {"enabled": True, "mode": "off"}}}):
            service = GatewayService(gateway_settings(home, **config), reactor, advertiser=fake)
            service.privilegedStartService()
            service.startService()
            await service.stopService()
        self.assertEqual(fake.calls, [])


class RealStackTests(GatewayMixin, TestCase):
    timeout = 60

    async def test_announce_and_discover(self):
        """A gateway started with mDNS is found by discover() and by `openclaw gateway discover`."""
        service = await self.gateway(discovery={"mdns": {"enabled": True}})
        await service.getServiceNamed("mdns").registered
        gateways = await discover(2.0)
        mine = [g for g in gateways if g["txt"].get("gatewayPort") == str(service.port)]
        if not gateways:
            raise SkipTest("multicast DNS does not work on this machine (nothing was discovered, not even this gateway)")
        self.assertEqual(len(mine), 1, gateways)
        self.assertEqual(sorted(mine[0]["types"]), ["_openclaw-gw._tcp", "_openclaw._tcp"])
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "PYTHONPATH": str(REPO)}
        out, err, code = await getProcessOutputAndValue(sys.executable, ["-m", "openclaw", "gateway", "discover", "--json", "--timeout", "2000"], env=env, reactor=reactor)
        self.assertEqual(code, 0, err)
        ports = [g["txt"].get("gatewayPort") for g in json.loads(out)["gateways"]]
        self.assertIn(str(service.port), ports)
