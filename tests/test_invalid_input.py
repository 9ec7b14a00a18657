"""
Every registered method, called with hostile params built from its own params
shape: bad input is the client's mistake, so it is answered INVALID_REQUEST
(never UNAVAILABLE, which says the gateway failed) and never logged as a failure.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.trial.unittest import TestCase

from openclaw.gateway.scopes import CHANNEL_METHODS, NODE_METHODS
from openclaw.shape import Any_, Bool, Int, Kind, List, Obj, Str
from tests.helpers import capture_log
from tests.wsclient import GatewayMixin, connect_params

HOSTILE_STRINGS = [
    "../x",
    "agent:../../x",
    "agent:main:../../../etc/passwd",
    "agent:Main:x",
    "agent::x",
    "/etc/passwd",
    "..",
    "a\x00b",
    "main\n",
    "%2e%2e%2fx",
    "\u202e",
    "",
    "x" * 5000,
]
HOSTILE_INTS = [-1, 0, 2**63, 10**40]

# Methods whose UNAVAILABLE is about the gateway's state, not the input.
EXPECTED_UNAVAILABLE = {
    "node.invoke": "node not connected",
    "exec.approvals.node.get": "node not connected",
    "exec.approvals.node.set": "node not connected",
    "sessions.compact": "No model provider is configured",  # the summary needs a model
}
_counter = itertools.count()


def hostile_values(kind: Kind) -> list[Any]:
    if isinstance(kind, Str):
        return HOSTILE_STRINGS if not kind.choices else HOSTILE_STRINGS[:2]
    if isinstance(kind, Int):
        return HOSTILE_INTS
    if isinstance(kind, Bool):
        return ["true"]
    if isinstance(kind, List):
        return [[v] for v in hostile_values(kind.item)[:4]] + [["x"] * 2000]
    if isinstance(kind, Obj):
        return [{"../x": "../x"}, []]
    return HOSTILE_STRINGS[:4] + [{"../x": ["../x"]}, [[["../"]]], -1]


def benign(name: str, kind: Kind) -> Any:
    if isinstance(kind, Str):
        if kind.choices:
            return kind.choices[0]
        if name in ("sessionKey", "key"):
            return "main"
        if name == "idempotencyKey":
            return f"k{next(_counter)}"
        return "hi"
    if isinstance(kind, Int):
        return max(kind.low or 0, 1) if kind.high is None else kind.low
    if isinstance(kind, Bool):
        return False
    if isinstance(kind, List):
        return []
    if isinstance(kind, Obj):
        return {}
    return {}


def cases(shape: Obj) -> list[dict[str, Any]]:
    """Required fields benign, then one field at a time hostile."""
    base = {name: benign(name, shape.fields[name]) for name in shape.required}
    out = [base]
    for name, kind in shape.fields.items():
        for value in hostile_values(kind):
            if name == "raw" and value == "":
                continue  # config.* with raw "" writes an empty config: valid, and it ends our token session
            out.append({**base, name: value, **({"idempotencyKey": f"k{next(_counter)}"} if "idempotencyKey" in base else {})})
    return out


class HostileParamsTests(GatewayMixin, TestCase):
    timeout = 240

    async def test_every_method(self):
        """Every method × every field × hostile values: ok, INVALID_REQUEST or FORBIDDEN; never an unexpected UNAVAILABLE; no failure logged."""
        log = capture_log(self)
        # Two adapter channels: a send or poll that names none is refused (which one?) instead of waiting for an answer.
        await self.gateway(channels={"hostile": {"adapter": True, "dmPolicy": "disabled"}, "spare": {"adapter": True}})
        operator, _ = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        node, _ = await self.connect({**connect_params(protocol=4, client_id="node-host", mode="node", scopes=[]), "role": "node"})
        adapter, _ = await self.connect({**connect_params(protocol=4, client_id="gateway-client", mode="backend", scopes=[]), "role": "channel"})
        self.assertTrue((await adapter.request("channel.register", {"channel": "hostile"}))["ok"])  # then inbound and sent reach their handlers
        methods = self.service.core.methods
        self.assertGreater(len(methods), 40)
        problems = []
        calls = 0
        for name in sorted(methods):
            shape = getattr(methods[name], "shape", None)
            self.assertIsInstance(shape, Obj, f"{name} has no params shape")
            ws = node if name in NODE_METHODS else adapter if name in CHANNEL_METHODS else operator
            for params in cases(shape):
                calls += 1
                res = await ws.request(name, params)
                if res["ok"]:
                    continue
                error = res["error"]
                if error["code"] in ("INVALID_REQUEST", "FORBIDDEN"):
                    continue
                expected = EXPECTED_UNAVAILABLE.get(name)
                if error["code"] == "UNAVAILABLE" and expected and expected in error["message"]:
                    continue
                problems.append(f"{name} {str(params)[:120]}: {error['code']} {error['message'][:200]}")
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertGreater(calls, 500)
        self.assertEqual(log.failures(), [])
        self.assertFalse(operator.closed.called or node.closed.called or adapter.closed.called)
