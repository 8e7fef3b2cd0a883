"""Query parameters of the HTTP routes: integers, booleans and choices, each a 400 naming the
parameter when it is not what the route accepts.

`str.isdigit()` is no test for an integer: it accepts superscripts and other Unicode digits that
`int()` refuses, and `int()` refuses strings past 4,300 digits. Only ASCII digits pass here, and a
length bound comes first, so nothing a client writes reaches `int()` unchecked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import overload

from .errors import invalid
from .values import shown

# Enough for any bound a route sets (event counts, page sizes); longer is out of range by length.
MAX_INT_DIGITS = 18
TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")


@overload
def int_param(query: Mapping[str, str], name: str, *, low: int, high: int | None = None, default: int) -> int: ...


@overload
def int_param(
    query: Mapping[str, str], name: str, *, low: int, high: int | None = None, default: None = None
) -> int | None: ...


def int_param(
    query: Mapping[str, str], name: str, *, low: int, high: int | None = None, default: int | None = None
) -> int | None:
    """`name` as an integer in [low, high] (no upper bound when `high` is None), or `default` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    bound = f"an integer of at least {low}" if high is None else f"an integer between {low} and {high}"
    if not (raw.isascii() and raw.isdigit()):
        raise invalid(f"Invalid '{name}': {shown(raw)}; expected {bound}.", name)
    if len(raw.lstrip("0")) > MAX_INT_DIGITS:
        raise invalid(f"Invalid '{name}': out of range; expected {bound}.", name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise invalid(f"Invalid '{name}': {value} is out of range; expected {bound}.", name)
    return value


def bool_param(query: Mapping[str, str], name: str, *, default: bool) -> bool:
    """`name` as `true`/`false` (or `1`/`0`, any case), or `default` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise invalid(f"Invalid '{name}': {shown(raw)}; expected 'true' or 'false'.", name)


def choice_param(query: Mapping[str, str], name: str, choices: Collection[str], *, default: str) -> str:
    """`name` as one of `choices`, or `default` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    if raw not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise invalid(f"Invalid '{name}': {shown(raw)}; expected one of {listed}.", name)
    return raw
