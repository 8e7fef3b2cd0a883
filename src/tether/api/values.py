"""Arbitrary client JSON in validation code: membership tests any value survives, and quoting a value
in an error message.

A client can put any JSON value where a string is expected. A list or an object is unhashable, so a
bare `value in frozenset(...)` raises TypeError, and `repr()` of a deeply nested value raises
RecursionError: either would turn a client's mistake into a 500.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

SCALARS = (str, int, float, bool, type(None))
SHOWN_CHARS = 64


def is_one_of(value: Any, choices: Collection[Any]) -> bool:
    """`value in choices`, and False (not TypeError) when `value` is an array or an object."""
    return isinstance(value, SCALARS) and value in choices


def shown(value: Any) -> str:
    """A short, safe rendering of a client value for an error message: scalars quoted as written
    (strings cut at 64 characters), containers named by their JSON type, never walked."""
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return repr(value[:SHOWN_CHARS]) + "..."
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a value of type {type(value).__name__}"
