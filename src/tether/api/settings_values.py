"""The values of the output settings a create body sets for its turn and a `configuration_update` item
sets from its position on: `text.format` and `reasoning.effort`. One validator for both places, each
error naming the `param` where the value was."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from .errors import invalid
from .values import is_one_of, shown

SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REASONING_EFFORTS = frozenset({None, "none", "minimal", "low", "medium", "high", "xhigh", "max"})
#: a create body's `text.format` kinds; a `configuration_update` takes only text and json_schema (SDK 3.57)
REQUEST_FORMATS = ("text", "json_object", "json_schema")


def validate_text_format(fmt: Any, param: str, kinds: Collection[str] = REQUEST_FORMATS) -> dict[str, Any]:
    """A `text.format` object at `param`: its type one of `kinds`, a json_schema one named and with a schema."""
    if not isinstance(fmt, dict):
        raise invalid(f"Invalid '{param}': expected an object.", param)
    kind = fmt.get("type")
    if not is_one_of(kind, kinds):
        supported = ", ".join(f"'{k}'" for k in kinds)
        raise invalid(f"Invalid value for '{param}.type': {shown(kind)}. Supported: {supported}.", f"{param}.type")
    if kind == "json_schema":
        name = fmt.get("name")
        if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
            raise invalid(f"Invalid '{param}.name': 1-64 letters, digits, underscores or dashes.", f"{param}.name")
        if not isinstance(fmt.get("schema"), dict):
            raise invalid(f"Invalid '{param}.schema': expected a JSON Schema object.", f"{param}.schema")
    return fmt


def format_schema(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema the output must follow under `fmt` (a validated `text.format`), if it asks for one."""
    fmt = fmt or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    return None


def validate_effort(value: Any, param: str) -> str | None:
    if not is_one_of(value, REASONING_EFFORTS):
        raise invalid(f"Invalid value for '{param}': {shown(value)}.", param)
    return None if value is None else str(value)
