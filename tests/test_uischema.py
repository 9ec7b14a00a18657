"""
config.schema for the Control UIs' config forms: no node the forms cannot
render (checked with a port of the 2026.1.30 UI's own schema analysis),
upstream's uiHints shape, secrets marked sensitive, and the described
sections still never refused.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.config.schema import ROOT, validate
from openclaw.config.uischema import form_schema, ui_hints
from openclaw.shape import Any_, Either, Int, List, Obj, Str
from tests import schemas
from tests.wsclient import GatewayMixin, connect_params

META = {"title", "description", "default", "nullable"}
PRIMITIVE = ("string", "number", "integer", "boolean")


def _type(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if rest else kind[0]
    return kind


def unsupported(node: Any, path: str = "") -> list[str]:
    """
    The paths the 2026.1.30 Control UI's config form cannot render
    (ui/src/ui/views/config-form.analyze.ts: normalizeSchemaNode and
    normalizeUnion, restated): each would show "Unsupported schema node".
    """
    here = path or "<root>"
    if not isinstance(node, dict):
        return [here]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            if key == "allOf":
                return [here]
            literals, rest = [], []
            for option in node[key]:
                if not isinstance(option, dict):
                    return [here]
                if "enum" in option or "const" in option or _type(option) == "null":
                    literals.append(option)
                else:
                    rest.append(option)
            if literals and not rest:
                return []
            if len(rest) == 1:
                return unsupported(rest[0], path)
            if rest and not literals and all(o.get("type") in PRIMITIVE for o in rest):
                return []
            return [here]
    kind = _type(node) or ("object" if "properties" in node or "additionalProperties" in node else None)
    found: list[str] = []
    if "enum" in node and not [v for v in node["enum"] if v is not None]:
        found.append(here)
    if kind == "object":
        for key, child in (node.get("properties") or {}).items():
            found += unsupported(child, f"{path}.{key}" if path else key)
        extra = node.get("additionalProperties")
        if extra is True:
            found.append(here)
        elif isinstance(extra, dict) and [k for k in extra if k not in META]:
            if unsupported(extra, f"{path}.*" if path else "*"):
                found.append(here)
    elif kind == "array":
        items = node.get("items")
        items = items[0] if isinstance(items, list) and items else items
        if not isinstance(items, dict) or unsupported(items, f"{path}.*"):
            found.append(here)
    elif kind not in PRIMITIVE and "enum" not in node:
        found.append(here)
    return found


class FormSchemaTests(SynchronousTestCase):
    def test_oracle_sees_what_the_ui_rejects(self):
        """The analysis port flags what the UI shows as unsupported (so the test below can fail)."""
        self.assertEqual(unsupported({"type": "object", "properties": {"a": {}}}), ["a"])
        self.assertEqual(unsupported({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "object"}]}}}), ["a"])
        self.assertEqual(unsupported({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": True}}}), ["a"])
        self.assertTrue(unsupported(ROOT.json_schema()), "the plain JSON Schema export has nodes the form cannot show")

    def test_every_node_renders(self):
        """config.schema's schema has no node the form cannot render."""
        self.assertEqual(unsupported(form_schema(ROOT)), [])

    def test_form_rules(self):
        """A free section becomes a key-by-key object, a free leaf plain text/number/boolean, a structure-or-string union the structure."""
        root = Obj({"free": Any_(), "box": Obj({"leaf": Any_(), "ref": Either((Str(), Obj({"primary": Str()}))), "plain": Either((Int(), Str())), "list": List(Any_())})})
        schema = form_schema(root)
        self.assertEqual(schema["properties"]["free"]["additionalProperties"], {})
        box = schema["properties"]["box"]["properties"]
        self.assertEqual(box["leaf"], {"type": ["string", "number", "boolean"]})
        self.assertEqual(box["ref"]["type"], "object")
        self.assertIn("primary", box["ref"]["properties"])
        self.assertEqual([o["type"] for o in box["plain"]["anyOf"]], ["integer", "string"])
        self.assertEqual(box["list"]["items"], {"type": ["string", "number", "boolean"]})
        self.assertEqual(unsupported(schema), [])

    def test_hints(self):
        """Sections have labels and order; secrets anywhere are sensitive (maps too, as `*`)."""
        schema = form_schema(ROOT)
        hints = ui_hints(schema)
        self.assertEqual(hints["gateway"]["label"], "Gateway")
        self.assertTrue(hints["gateway.auth.token"]["sensitive"])
        self.assertTrue(hints["gateway.auth.password"]["sensitive"])
        self.assertTrue(hints["models.providers.*.apiKey"]["sensitive"])
        self.assertTrue(hints["gateway.remote.token"]["sensitive"])
        self.assertNotIn("sensitive", hints.get("gateway.port", {}))
        for key in schema["properties"]:
            self.assertIn("order", hints[key])

    def test_described_sections_never_refused(self):
        """The described sections show types in the form but their readers still decide: odd values are not refused."""
        errors, _ = validate({"cron": {"maxConcurrentRuns": "lots"}, "agents": {"defaults": {"model": 5}}, "session": {"reset": {"atHour": 99}}})
        self.assertEqual(errors, [])
        self.assertEqual(form_schema(ROOT)["properties"]["cron"]["properties"]["maxConcurrentRuns"]["maximum"], 32)


class ConfigSchemaWireTests(GatewayMixin, TestCase):
    async def test_config_schema(self):
        """config.schema answers upstream's ConfigSchemaResponse (v4) with the form schema and hints."""
        await self.gateway()
        ws, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        res = await ws.request("config.schema", {})
        self.assertTrue(res["ok"], res)
        payload = res["payload"]
        schemas.validate(4, "ConfigSchemaResponse", payload)
        self.assertEqual(unsupported(payload["schema"]), [])
        self.assertTrue(payload["uiHints"]["gateway.auth.token"]["sensitive"])
        self.assertRegex(payload["generatedAt"], r"^\d{4}-\d\d-\d\dT")
