# -*- test-case-name: tests.test_dispatch -*-
"""
Method dispatch, below every handler module: the method table, params
checking (with the params a method accepts but ignores), the two-phase
result, and the handler signature.

A handler is C{handler(deps, caller, params) -> result}:

  - C{deps}: the typed collaborators its module declares, bound once when
    the gateway is built (L{MethodTable.bind});
  - C{caller}: the connection that asked (L{Caller});
  - C{params}: the params, already checked against the method's closed
    shape, ignored ones dropped.

The result is a JSON value, a Deferred or coroutine that gives one, or a
L{TwoPhase}. A handler raises L{GatewayError} (or L{InvalidInput}) to refuse.

Handler modules each keep their own L{MethodTable}; the gateway binds every
table to its collaborators and serves the union (L{Methods}), whose
L{RequestMeter} sees every request the transports dispatch. Nothing here
imports a handler module.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, Iterator, Mapping, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.protocol.versions import Version
from openclaw.shape import Kind, Obj, check

JSON = Any  # a JSON value: what json.loads gives
Params = dict[str, Any]
D = TypeVar("D")
H = TypeVar("H", bound=Callable[..., Any])


class Caller(Protocol):
    """What a handler may know about the connection that called it."""

    @property
    def role(self) -> str | None: ...

    @property
    def scopes(self) -> list[str]: ...

    @property
    def device_id(self) -> str | None: ...

    @property
    def node_id(self) -> str | None: ...

    @property
    def auth_method(self) -> str | None: ...

    @property
    def version(self) -> Version: ...

    @property
    def subscriptions(self) -> set[str]:
        """Session keys a node follows (C{chat.subscribe}); its events reach it."""
        ...


@attrs.frozen
class TwoPhase:
    """A method result answered twice under the same id: C{accepted} at once, then C{final}."""

    accepted: JSON | Deferred[JSON]  # a Deferred: answered when it fires
    final: Deferred[JSON]


@attrs.frozen
class Ignored:
    """Params a method accepts (upstream declares them) but does not act on, and why."""

    why: str
    fields: Mapping[str, Kind]


def params_of(method: str, shape: Obj, params: Any) -> Params:  # params: checked to be an object
    """C{params} if they fit C{shape}; else L{GatewayError} INVALID_REQUEST naming the first problems."""
    errors, _ = check(shape, params)
    if errors:
        raise GatewayError(INVALID_REQUEST, f"invalid {method} params: " + "; ".join(str(e) for e in errors[:5]))
    return params


@attrs.frozen
class Method(Generic[D]):
    """
    One registered method. C{shape} is the full shape (ignored params
    included) and C{ignored} says which are dropped: the tests hold both
    against upstream's schemas.
    """

    name: str
    handler: Callable[[D, Caller, Params], Any]
    shape: Obj
    ignored: tuple[Ignored, ...] = ()

    @property
    def dropped(self) -> frozenset[str]:
        return frozenset(k for group in self.ignored for k in group.fields)

    def __call__(self, deps: D, caller: Caller, params: Any) -> Any:
        checked = params_of(self.name, self.shape, params)
        dropped = self.dropped
        return self.handler(deps, caller, {k: v for k, v in checked.items() if k not in dropped} if dropped else checked)


class MethodTable(Mapping[str, Method[D]]):
    """One handler module's methods, all taking the same C{deps}."""

    def __init__(self) -> None:
        self._methods: dict[str, Method[D]] = {}

    def method(self, name: str, shape: Obj = Obj(closed=True), ignored: tuple[Ignored, ...] = ()) -> Callable[[H], H]:
        """Register the decorated handler as C{name}, its params checked against C{shape}."""
        dropped = {k for group in ignored for k in group.fields}
        if dropped & set(shape.fields):
            # A param a handler acts on must not be stripped as ignored (e.g. after a merge).
            raise ValueError(f"{name}: params both acted on and ignored: {sorted(dropped & set(shape.fields))}")
        if name in self._methods:
            raise ValueError(f"{name} is registered twice")
        extra = {k: v for group in ignored for k, v in group.fields.items()}
        full = Obj({**shape.fields, **extra}, rest=shape.rest, required=shape.required, closed=shape.closed)

        def register(f: H) -> H:
            self._methods[name] = Method(name, f, full, ignored)
            return f

        return register

    def bind(self, deps: D) -> dict[str, Bound]:
        """These methods served with C{deps}."""
        return {name: Bound(m, deps) for name, m in self._methods.items()}

    def __getitem__(self, name: str) -> Method[D]:
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)


@attrs.frozen
class Bound:
    """A method with its collaborators: all a connection needs to call it."""

    method: Method[Any]
    deps: Any

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def shape(self) -> Obj:
        return self.method.shape

    @property
    def ignored(self) -> tuple[Ignored, ...]:
        return self.method.ignored

    def __call__(self, caller: Caller, params: Any) -> Any:
        return self.method(self.deps, caller, params)


Handler = Callable[[Caller, Any], Any]  # what a transport calls: a Bound, or a Bound wrapped by a meter


class RequestMeter(Protocol):
    """Counts and times the requests dispatched to methods (L{openclaw.ops.metrics.Meter})."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        """C{handler} as it is to be called for one request to C{method}."""
        ...


class _Unmetered:
    def wrap(self, method: str, handler: Handler) -> Handler:
        return handler


UNMETERED: RequestMeter = _Unmetered()


class Methods(Mapping[str, Bound]):
    """Every method a gateway serves; a name bound twice is a wiring mistake."""

    def __init__(self, *tables: Mapping[str, Bound]) -> None:
        self._all: dict[str, Bound] = {}
        self.meter: RequestMeter = UNMETERED  # the dispatch point's one hook (GET /metrics installs its meter)
        for table in tables:
            self.add(table)

    def add(self, table: Mapping[str, Bound]) -> None:
        for name in table:
            if name in self._all:
                raise ValueError(f"method {name} is served twice")
        self._all.update(table)

    def __getitem__(self, name: str) -> Bound:
        return self._all[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def handler(self, name: str) -> Handler | None:
        """What a transport calls for one request to C{name} (through the meter); None if not served."""
        bound = self._all.get(name)
        return self.meter.wrap(name, bound) if bound is not None else None


def run(method: Callable[[Caller, Any], Any], caller: Caller, params: Any, respond: Callable[[JSON], object], fail: Callable[[Failure], object]) -> None:
    """
    Call C{method}; C{respond} with its value as soon as there is one (twice
    for a L{TwoPhase}: accepted, then final), or C{fail} with what it raised.
    Neither callback may raise.
    """
    try:
        result = method(caller, params)
    except Exception:
        fail(Failure())
        return
    if isinstance(result, TwoPhase):
        final = result.final
        if isinstance(result.accepted, Deferred):
            # the final answer never overtakes the first
            result.accepted.addCallback(respond).addCallback(lambda _: final).addCallbacks(respond, fail)
        else:
            respond(result.accepted)
            final.addCallbacks(respond, fail)
        return
    if inspect.iscoroutine(result):
        result = Deferred.fromCoroutine(result)
    if isinstance(result, Deferred):
        result.addCallbacks(respond, fail)
    else:
        respond(result)
