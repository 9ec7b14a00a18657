"""
<basePath>control-ui-config.json: upstream's v4 UI bootstrap settings,
served by the gateway behind its bearer secret, at the base path and at
upstream's older __openclaw/ spelling.
"""

from __future__ import annotations

import json

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from openclaw import __version__
from tests.test_controlui import fetch
from tests.wsclient import TOKEN, GatewayMixin

BEARER = {"Authorization": f"Bearer {TOKEN}"}


class UiConfigTests(GatewayMixin, TestCase):
    async def get(self, path, method="GET", headers=None):
        return await deferToThread(fetch, self.service.port, method, path, headers)

    async def test_needs_the_secret(self):
        """Without the bearer secret: 401 (a wrong one counts as a failure); with it: the settings, no-cache; HEAD: no body."""
        await self.gateway(agents={"list": [{"id": "main", "identity": {"name": "Claw", "emoji": "🦀"}}]})
        status, headers, body = await self.get("/control-ui-config.json")
        self.assertEqual((status, headers["www-authenticate"]), (401, "Bearer"))
        self.assertNotIn(b"Claw", body)
        status, _, _ = await self.get("/control-ui-config.json", headers={"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        status, headers, body = await self.get("/control-ui-config.json", headers=BEARER)
        self.assertEqual(status, 200)
        self.assertEqual(headers["cache-control"], "no-cache")
        config = json.loads(body)
        self.assertEqual(config["basePath"], "")
        self.assertEqual((config["assistantName"], config["assistantAvatar"], config["assistantAgentId"]), ("Claw", "🦀", "main"))
        self.assertEqual(config["serverVersion"], __version__)
        self.assertEqual((config["terminalEnabled"], config["cliAgentsEnabled"], config["pluginFrameGrants"]), (False, False, []))
        self.assertTrue(config["pluginAssetsRequireAuth"])
        self.assertFalse(config["communityInvite"])
        status, _, body = await self.get("/control-ui-config.json", "HEAD", BEARER)
        self.assertEqual((status, body), (200, b""))
        status, _, _ = await self.get("/control-ui-config.json", "POST", BEARER)
        self.assertEqual(status, 405)

    async def test_base_path(self):
        """Under basePath /openclaw: there (and at __openclaw/), with basePath "/openclaw"; not at the root."""
        await self.gateway(gateway={"controlUi": {"basePath": "/openclaw"}}, ui={"seamColor": "#ff5500"})
        for path in ("/openclaw/control-ui-config.json", "/openclaw/__openclaw/control-ui-config.json"):
            status, _, body = await self.get(path, headers=BEARER)
            self.assertEqual(status, 200, path)
            config = json.loads(body)
            self.assertEqual((config["basePath"], config["assistantName"], config["seamColor"]), ("/openclaw", "OpenClaw", "#ff5500"))
        status, _, _ = await self.get("/control-ui-config.json", headers=BEARER)
        self.assertEqual(status, 404)

    async def test_ui_switched_off(self):
        """With the Control UI off there is nothing to bootstrap: 404."""
        await self.gateway(gateway={"controlUi": {"enabled": False}})
        status, _, _ = await self.get("/control-ui-config.json", headers=BEARER)
        self.assertEqual(status, 404)
