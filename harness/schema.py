"""JSON Schema validation of results files and the registry."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from harness import paths


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((paths.SCHEMAS / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class SchemaError(ValueError):
    """A document does not match its schema; the message names the failing path."""


def validate(name: str, document: Any) -> None:
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SchemaError(f"{name}: at {where}: {first.message}{more}")
