# -*- test-case-name: tests.test_protocol -*-
"""
Strict JSON for untrusted input: at most C{max_depth} nested arrays and
objects, no C{NaN}/C{Infinity}, UTF-8 only. Every refusal is a
L{JSONValueError} (a C{ValueError}), never a C{RecursionError}.

The depth is checked on the text before parsing: cheap when the text has few
brackets (the usual case), one pass over the brackets otherwise.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

DEFAULT_MAX_DEPTH = 64

# A JSON string (unrolled: no backtracking), and anything that is not a bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JSONValueError(ValueError):
    """The text is not one acceptable JSON value."""


class TooDeep(JSONValueError):
    """More nested arrays/objects than allowed."""


class NonFinite(JSONValueError):
    """C{NaN}, C{Infinity} or C{-Infinity}: not JSON."""


def _refuse_constant(name: str) -> Any:
    raise NonFinite(f"{name} is not a valid JSON number")


def depth(text: str) -> int:
    """The deepest nesting of arrays/objects in C{text} (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def loads(text: str | bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse C{text}; raise L{JSONValueError} (or a subclass) for anything we refuse."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONValueError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    if not isinstance(text, str):
        raise JSONValueError("JSON text must be a string")
    # Fewer brackets than the limit cannot nest deeper than it: skip the scan.
    if text.count("[") + text.count("{") > max_depth and depth(text) > max_depth:
        raise TooDeep(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except JSONValueError:
        raise
    except RecursionError:
        raise TooDeep(f"nested deeper than {max_depth} levels") from None
    except ValueError as e:
        raise JSONValueError(str(e)) from None
