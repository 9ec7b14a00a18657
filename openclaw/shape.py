# -*- test-case-name: tests.test_shape -*-
"""
Shapes of JSON values, and a validator whose every message names the path,
what is wrong, and what is allowed.

Used for C{openclaw.json} (open objects: unknown keys are warnings) and for
protocol params (closed objects: unknown keys are errors, as upstream's
C{additionalProperties: false}). Each kind also exports itself as JSON Schema.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Mapping

import attrs

@attrs.frozen
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}



_DURATION = re.compile(r"^\d+(?:\.\d+)?(ms|s|m|h|d)$")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value)


class Kind(ABC):
    """One node of the schema; C{check} appends problems to C{errors}."""

    @property
    def description(self) -> str:
        return "a value"

    @abstractmethod
    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        """Append what is wrong with C{value} (at C{path}) to C{errors}."""

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """This kind as a JSON Schema (draft-07) fragment."""


@attrs.frozen
class Any_(Kind):
    description = "any value"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        return None

    def json_schema(self) -> dict[str, Any]:
        return {}


@attrs.frozen
class Lenient(Kind):
    """
    A part whose reader checks it itself, falling back from values it cannot
    use and saying so (the scheduler, the agents): never refused here, but
    described by C{shape}, which is what its JSON Schema (and so the
    Control UI's config form) shows.
    """

    shape: Kind

    @property
    def description(self) -> str:
        return self.shape.description

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        return None

    def json_schema(self) -> dict[str, Any]:
        return self.shape.json_schema()


@attrs.frozen
class Bool(Kind):
    description = "true or false"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if not isinstance(value, bool):
            errors.append(Issue(path, f"expected true or false, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@attrs.frozen
class Int(Kind):
    low: int | None = None
    high: int | None = None

    @property
    def description(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer from {self.low} to {self.high}"
        if self.low is not None:
            return f"an integer of at least {self.low}"
        return "an integer"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and self.low is not None and value < self.low:
            ok = False
        if ok and self.high is not None and value > self.high:
            ok = False
        if not ok:
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.low is not None:
            schema["minimum"] = self.low
        if self.high is not None:
            schema["maximum"] = self.high
        return schema


@attrs.frozen
class Str(Kind):
    choices: tuple[str, ...] = ()
    nonempty: bool = False
    max_length: int | None = None

    @property
    def description(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return "a non-empty string" if self.nonempty else "a string"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if not isinstance(value, str):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))
        elif self.choices and value not in self.choices:
            errors.append(Issue(path, f"invalid value {_show(value)}; allowed: {', '.join(self.choices)}"))
        elif self.nonempty and not value.strip():
            errors.append(Issue(path, "must not be empty"))
        elif self.max_length is not None and len(value) > self.max_length:
            errors.append(Issue(path, f"must be at most {self.max_length} characters"))

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.nonempty:
            schema["minLength"] = 1
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@attrs.frozen
class Null(Kind):
    description = "null"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if value is not None:
            errors.append(Issue(path, f"expected null, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "null"}


@attrs.frozen
class Num(Kind):
    """Any JSON number (integer or not) of at least C{low}."""

    low: float | None = None

    @property
    def description(self) -> str:
        return "a number" if self.low is None else f"a number of at least {self.low:g}"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value not in (float("inf"), float("-inf"))
        if not ok or (self.low is not None and value < self.low):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "number", **({"minimum": self.low} if self.low is not None else {})}


@attrs.frozen
class Duration(Kind):
    """Milliseconds as an integer, or a string such as C{"5m"} or C{"1h"}."""

    description = 'milliseconds, or a duration such as "90s", "5m", "1h"'

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if isinstance(value, bool) or not (
            (isinstance(value, int) and value >= 0) or (isinstance(value, str) and _DURATION.match(value))
        ):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _DURATION.pattern}]}


@attrs.frozen
class List(Kind):
    item: Kind
    min_items: int = 0
    max_items: int | None = None

    @property
    def description(self) -> str:
        return f"a list of {self.item.description}"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if not isinstance(value, list):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))
            return
        if len(value) < self.min_items:
            errors.append(Issue(path, f"must have at least {self.min_items} item{'s' if self.min_items > 1 else ''}"))
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(Issue(path, f"must have at most {self.max_items} items"))
            return
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]", errors, warnings)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema


@attrs.frozen
class Either(Kind):
    options: tuple[Kind, ...]

    @property
    def description(self) -> str:
        return " or ".join(o.description for o in self.options)

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        for option in self.options:
            trial: list[Issue] = []
            option.check(value, path, trial, [])
            if not trial:
                option.check(value, path, [], warnings)
                return
        errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [o.json_schema() for o in self.options]}


@attrs.frozen
class Obj(Kind):
    """
    An object with known fields; C{rest} checks keys not listed. Other keys
    are warnings, or errors when C{closed}.
    """

    fields: Mapping[str, Kind] = attrs.field(factory=dict)
    rest: Kind | None = None
    required: tuple[str, ...] = ()
    closed: bool = False

    description = "an object"

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if not isinstance(value, dict):
            errors.append(Issue(path, f"expected an object, got {_show(value)}"))
            return
        for key in self.required:
            if key not in value:
                errors.append(Issue(_sub(path, key), "is required"))
        for key, v in value.items():
            sub = _sub(path, key)
            kind = self.fields.get(key, self.rest)
            if kind is not None:
                kind.check(v, sub, errors, warnings)
            elif self.closed:
                errors.append(Issue(sub, "unexpected property"))
            else:
                known = ", ".join(sorted(self.fields))
                warnings.append(Issue(sub, f"unknown key (known keys here: {known})"))

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": {k: v.json_schema() for k, v in self.fields.items()}}
        if self.required:
            schema["required"] = list(self.required)
        if self.rest is not None:
            schema["additionalProperties"] = self.rest.json_schema()
        elif self.closed:
            schema["additionalProperties"] = False
        return schema


def _sub(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(kind: Kind, value: Any) -> tuple[list[Issue], list[Issue]]:
    """C{(errors, warnings)} of C{value} against C{kind}."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    kind.check(value, "", errors, warnings)
    return errors, warnings


