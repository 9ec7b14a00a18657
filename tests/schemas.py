"""The upstream protocol schemas (shared/schemas) as a test oracle."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import os

import jsonschema
from twisted.trial.unittest import SkipTest

# CI clones the repo with shared/ beside it; OPENCLAW_SHARED_DIR can point elsewhere.
SHARED = Path(os.environ.get("OPENCLAW_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared") / "schemas"


@lru_cache(maxsize=None)
def _document(version: int) -> dict[str, Any]:
    return json.loads((SHARED / f"v{version}" / "protocol.schema.json").read_text())


def available() -> bool:
    return (SHARED / "v3" / "protocol.schema.json").exists() and (SHARED / "v4" / "protocol.schema.json").exists()


def validate(version: int, definition: str, value: Any) -> None:
    """Raise jsonschema.ValidationError unless C{value} matches upstream's C{definition}."""
    if not available():
        raise SkipTest(f"upstream schemas not found at {SHARED}: this test's schema check cannot run")
    document = _document(version)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": document["definitions"]}
    jsonschema.Draft7Validator(schema).validate(value)
