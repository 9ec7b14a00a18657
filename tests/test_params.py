"""
Every method accepts every param upstream's schema declares for it (v3 and
v4), over a real connection; params accepted but not acted on are documented.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from openclaw.gateway.methods import METHODS
from openclaw.gateway.scopes import NODE_METHODS as NODE_ROLE_METHODS
from openclaw.nodes.methods import NODE_METHODS
from openclaw.agent.approval_methods import APPROVAL_METHODS
from openclaw.agent.methods import AGENT_METHODS
from openclaw.channels.adapter.methods import ADAPTER_METHODS
from openclaw.channels.methods import CHANNEL_METHODS
from openclaw.channels.whatsapp.login import LOGIN_METHODS
from openclaw.agent.usage_methods import USAGE_METHODS
from openclaw.skills.methods import SKILL_METHODS
from openclaw.cron.methods import CRON_METHODS
from openclaw.agent.chatview import CHAT_VIEW_METHODS
from openclaw.gateway.absent import ABSENT_METHODS
from openclaw.gateway.hostinfo import HOST_METHODS
from openclaw.gateway.inventory import INVENTORY_METHODS
from openclaw.gateway.subscriptions import FEED_METHODS
from openclaw.shape import check
from tests import schemas
from tests.helpers import REPO
from tests.wsclient import GatewayMixin, connect_params

ALL = {
    **METHODS, **NODE_METHODS, **AGENT_METHODS, **APPROVAL_METHODS, **USAGE_METHODS, **SKILL_METHODS, **CRON_METHODS,
    **CHANNEL_METHODS, **LOGIN_METHODS, **ADAPTER_METHODS,
    **CHAT_VIEW_METHODS, **FEED_METHODS, **HOST_METHODS, **INVENTORY_METHODS, **ABSENT_METHODS,
}
ALIASES = {"agent.identity.get": "AgentIdentityParams"}  # upstream's one irregular name
EXTRA = "x-undeclared"


def definition_name(method: str) -> str:
    """upstream's naming: node.pair.list → NodePairListParams, set-heartbeats → SetHeartbeatsParams."""
    return ALIASES.get(method) or "".join(p[:1].upper() + p[1:] for p in re.split(r"[.\-]", method)) + "Params"


def maximal(schema: dict[str, Any], defs: dict[str, Any], branch: int = 0, depth: int = 0) -> Any:
    """
    A valid value with every declared property present: C{branch} picks the
    first (0) or last (-1) alternative of each C{anyOf}, so both ends get tried.
    """
    if "$ref" in schema:
        return maximal(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, branch, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][branch]
    constrained = next((key for key in ("oneOf", "anyOf") if key in schema and "properties" in schema), None)
    if constrained is not None and depth <= 6:
        # an object whose alternatives only say which of its properties go together (exec.approvals.node.set)
        alternative = schema[constrained][branch]
        excluded = set(alternative.get("not", {}).get("required", []))
        for option in alternative.get("not", {}).get("anyOf", []):
            excluded |= set(option.get("required", []))
        return {k: maximal(v, defs, branch, depth + 1) for k, v in schema["properties"].items() if k not in excluded}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            plain = [s for s in schema[key] if "pattern" not in s] or schema[key]  # "x" matches no pattern
            return maximal(plain[branch], defs, branch, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[branch]
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        return {k: maximal(v, defs, branch, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [maximal(schema.get("items") or {}, defs, branch, depth + 1) for _ in range(count)][: schema.get("maxItems", count)]
    if kind == "string":
        pattern = schema.get("pattern", "^")
        prefix = re.fullmatch(r"\^([^\\\[\]().*+?{}|$]*)", pattern)  # a literal prefix, e.g. ^data:image/png;base64,
        value = (prefix.group(1) if prefix else "") + "x" * max(1, schema.get("minLength", 1))
        assert re.search(pattern, value), f"no value for the pattern {pattern!r}"
        return value
    if kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        return low if schema.get("maximum") is None else min(low, schema["maximum"])
    if kind == "boolean":
        return False  # harmless: no probe, no delete, no refresh
    if kind == "null":
        return None
    return "x"


def declared(method: str, version: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """upstream's params schema for a method in a protocol version, and its definitions."""
    document = schemas._document(version)
    found = document["definitions"].get(definition_name(method))
    return (found, document["definitions"]) if found is not None else None


def candidates(method: str, version: int) -> list[dict[str, Any]]:
    """
    Maximal params for a method: from upstream's schema when it is here, else
    from our own shape (the wire test still runs; only the oracle is missing).
    """
    if schemas.available():
        found = declared(method, version)
        if found is None:
            return []
        schema, defs = found
        values = [maximal(schema, defs, 0), maximal(schema, defs, -1)]
        if schema.get("additionalProperties") is not False and not any(k in schema for k in ("anyOf", "oneOf")):  # alternatives: each says for itself
            values.append({**values[0], EXTRA: "x"})
        for value in values:  # the generator itself must be right
            jsonschema.Draft7Validator({**schema, "definitions": defs}).validate(value)
        return values
    own = ALL[method].shape.json_schema()
    return [maximal(own, {}, 0), maximal(own, {}, -1)]


class ShapeTests(SynchronousTestCase):
    def test_shapes_accept_declared_params(self):
        """Each method's shape accepts upstream's maximal params, both anyOf ends (v3 and v4)."""
        if not schemas.available():
            raise SkipTest(f"upstream schemas not found at {schemas.SHARED}: this oracle check cannot run")
        checked = 0
        for version in (3, 4):
            for method, handler in sorted(ALL.items()):
                for value in candidates(method, version):
                    errors, _ = check(handler.shape, value)
                    self.assertEqual(errors, [], f"v{version} {method} {json.dumps(value)[:300]}")
                    checked += 1
        self.assertGreater(checked, 80)

    def test_ignored_params_documented(self):
        """Every param accepted but not acted on is named, with its method, in docs/params.md."""
        text = (REPO / "docs" / "params.md").read_text()
        rows: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("| `"):
                method = line.split("|")[1].strip(" `")
                rows[method] = rows.get(method, "") + line
        for method, handler in sorted(ALL.items()):
            fields = [k for group in handler.ignored for k in group.fields]
            if not fields:
                continue
            self.assertIn(method, rows, f"docs/params.md has no row for {method}")
            for field in fields:
                self.assertIn(f"`{field}`", rows[method], f"{method}.{field} missing from docs/params.md")


class WireTests(GatewayMixin, TestCase):
    timeout = 120

    async def test_every_advertised_method_accepts_declared_params(self):
        """Over a real connection (v3 and v4), no advertised method refuses a declared param as unexpected."""
        await self.gateway()
        for version in (3, 4):
            operator, hello = await self.connect(connect_params(protocol=version, scopes=["operator.admin"]))
            node, _ = await self.connect(connect_params(protocol=version, client_id="node-host", mode="node", role="node", scopes=[]))
            methods = hello["payload"]["features"]["methods"]
            self.assertEqual(set(methods), set(ALL))
            tried = 0
            for method in methods:
                ws = node if method in NODE_ROLE_METHODS else operator
                for params in candidates(method, version):
                    res = await ws.request(method, params)
                    message = "" if res["ok"] else res["error"]["message"]
                    self.assertNotIn("unexpected property", message, f"v{version} {method}")
                    tried += 1
            self.assertGreater(tried, 40 if schemas.available() else 60)
