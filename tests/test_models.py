"""models.list: the configured catalog, its availability, and its shape in v3 and v4."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.catalog import UnknownProvider, catalog
from tests import schemas
from tests.wsclient import GatewayMixin, connect_params

CONFIG = {
    "models": {
        "providers": {
            "local": {
                "baseUrl": "http://127.0.0.1:11434/v1",
                "api": "openai-completions",
                "models": [
                    {"id": "llama", "name": "Llama", "contextWindow": 8192, "reasoning": False, "input": ["text", "image", "smell"]},
                    {"id": "tiny"},
                    "not a model",
                    {"id": 5},
                ],
            },
            "nourl": {"models": [{"id": "m"}]},
        }
    },
    "agents": {"defaults": {"model": {"primary": "local/llama", "fallbacks": ["anthropic/claude-sonnet-4-5", "local/tiny"]}}, "list": [{"id": "ops", "model": "local/tiny"}]},
}


class CatalogTests(SynchronousTestCase):
    def test_rows(self):
        """Configured models in order, then the agent's other refs; tags, availability, details."""
        rows = catalog(CONFIG, {}, details=True)
        self.assertEqual([(r["provider"], r["id"]) for r in rows], [("local", "llama"), ("local", "tiny"), ("nourl", "m"), ("anthropic", "claude-sonnet-4-5")])
        llama, tiny, nourl, claude = rows
        self.assertEqual(llama, {"id": "llama", "name": "Llama", "provider": "local", "tags": ["default", "configured"], "contextWindow": 8192, "reasoning": False, "available": True, "input": ["text", "image"]})
        self.assertEqual((tiny["name"], tiny["tags"], tiny["available"]), ("tiny", ["fallback#2", "configured"], True))
        self.assertEqual((nourl["available"], "unavailableReason" in nourl), (False, False))
        self.assertEqual((claude["tags"], claude["available"], claude["unavailableReason"]), (["fallback#1"], False, "missing-auth"))
        self.assertTrue(catalog(CONFIG, {"ANTHROPIC_API_KEY": "k"})[3]["available"])

    def test_agent_and_provider_filter(self):
        """agentId picks whose model is the default; provider filters, and an unknown one is refused."""
        ops = catalog(CONFIG, {}, agent_id="ops")
        self.assertEqual([r["id"] for r in ops if "default" in r["tags"]], ["tiny"])
        self.assertEqual([r["id"] for r in catalog(CONFIG, {}, provider="LOCAL")], ["llama", "tiny"])
        self.assertEqual([r["id"] for r in catalog(CONFIG, {}, provider="anthropic")], ["claude-sonnet-4-5"])
        self.assertRaises(UnknownProvider, catalog, CONFIG, {}, provider="nope")
        self.assertEqual(catalog({"models": {"providers": "junk"}, "agents": {"defaults": {"model": 7}}}, {}), [])


class ModelsMethodTests(GatewayMixin, TestCase):
    async def test_v4_published_catalog(self):
        """v4: the CLI's params (view, includeDetails) give schema-valid rows with availability."""
        await self.gateway(**CONFIG)
        ws, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        res = await ws.request("models.list", {"view": "default", "includeDetails": True})
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["payload"]["models"][0]["input"], ["text", "image"])
        refused = await ws.request("models.list", {"provider": "nope"})
        self.assertEqual(refused["error"]["code"], "INVALID_REQUEST")
        both = await ws.request("models.list", {"refresh": True, "preparedOnly": True})
        self.assertIn("cannot both be true", both["error"]["message"])
        schemas.validate(4, "ModelsListResult", res["payload"])  # last: skipped where the schemas are absent

    async def test_v3_rows(self):
        """v3's ModelChoice is closed: only its fields go out."""
        await self.gateway(**CONFIG)
        ws, _ = await self.connect(connect_params(protocol=3))
        payload = (await ws.request("models.list"))["payload"]
        self.assertEqual(payload["models"][0], {"id": "llama", "name": "Llama", "provider": "local", "contextWindow": 8192, "reasoning": False})
        schemas.validate(3, "ModelsListResult", payload)
