# -*- test-case-name: tests.test_dispatch -*-
"""The method table, params checking and the result kinds (L{openclaw.protocol.dispatch})."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from openclaw.protocol.dispatch import Ignored, Methods, MethodTable, TwoPhase, run
from openclaw.protocol.errors import GatewayError
from openclaw.shape import Bool, Obj, Str


class TableTests(SynchronousTestCase):
    def setUp(self):
        self.table: MethodTable[list[str]] = MethodTable()

        @self.table.method("echo", Obj({"text": Str()}, closed=True), ignored=(Ignored("not acted on", {"loud": Bool()}),))
        def echo(deps, caller, params):
            deps.append(caller)
            return params

    def test_bound_call_checks_and_strips(self):
        """A bound method checks the full shape, drops ignored params, and passes its deps and caller."""
        seen: list[str] = []
        bound = self.table.bind(seen)["echo"]
        self.assertEqual(bound("me", {"text": "hi", "loud": True}), {"text": "hi"})
        self.assertEqual(seen, ["me"])
        self.assertEqual(sorted(bound.shape.fields), ["loud", "text"])
        self.assertEqual(bound.ignored[0].why, "not acted on")
        with self.assertRaises(GatewayError) as cm:
            bound("me", {"text": 1})
        self.assertIn("invalid echo params", cm.exception.message)
        self.assertRaises(GatewayError, bound, "me", {"other": 1})

    def test_mistakes_refused(self):
        """A name registered twice, a param both acted on and ignored, a name served twice: errors at import time."""
        self.assertRaises(ValueError, self.table.method, "echo")
        self.assertRaises(ValueError, self.table.method, "x", Obj({"a": Str()}), (Ignored("why", {"a": Str()}),))
        self.assertRaises(ValueError, Methods, self.table.bind([]), self.table.bind([]))
        self.assertEqual(list(Methods(self.table.bind([]))), ["echo"])


class RunTests(SynchronousTestCase):
    def outcomes(self, result: Any) -> tuple[list[Any], list[Any]]:
        said: list[Any] = []
        failed: list[Any] = []

        def method(caller, params):
            if isinstance(result, Exception):
                raise result
            return result() if callable(result) else result

        run(method, None, {}, said.append, failed.append)
        return said, failed

    def test_kinds(self):
        """A value now; a Deferred or coroutine when it fires; a TwoPhase twice; an exception as a failure."""
        self.assertEqual(self.outcomes({"ok": True}), ([{"ok": True}], []))
        later: Deferred[Any] = Deferred()
        said, _ = self.outcomes(later)
        self.assertEqual(said, [])
        later.callback(1)
        self.assertEqual(said, [1])

        async def coroutine() -> int:
            return await succeed(2)

        self.assertEqual(self.outcomes(coroutine), ([2], []))
        final: Deferred[Any] = Deferred()
        said, _ = self.outcomes(TwoPhase({"status": "accepted"}, final))
        final.callback({"status": "ok"})
        self.assertEqual(said, [{"status": "accepted"}, {"status": "ok"}])
        _, failed = self.outcomes(GatewayError("X", "no"))
        self.assertEqual(failed[0].value.message, "no")
