"""Incremental chaining, as Codex does it: send only the new items when the server already has the rest.

A request may name `previous_response_id` and carry only the tail of the input when:
1. the previous response completed, on this same connection, or it was stored (`store: true`), so the
   server can hydrate it from its store on any connection;
2. every non-input field is identical to the previous request's;
3. the new full input starts with the previous full input followed by the previous response's output.
Otherwise the request carries the full input and no `previous_response_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: fields that do not count as "the request changed": the input itself and per-request bookkeeping
NOT_COMPARED = frozenset({"input", "previous_response_id", "generate", "client_metadata", "stream"})
Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChainPoint:
    """The last completed response that a continuation can build on."""

    response_id: str
    fields: dict[str, Any]
    full_input: list[Item]
    output: list[Item]
    #: which connection it completed on (None: HTTP)
    connection: int | None

    @property
    def prefix(self) -> list[Item]:
        return self.full_input + self.output


def comparable(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key not in NOT_COMPARED}


def plan(point: ChainPoint | None, fields: dict[str, Any], full_input: list[Item],
         connection: int | None) -> tuple[list[Item], str | None]:
    """(input to send, previous_response_id or None) for a request of `fields` with `full_input`."""
    if point is None:
        return full_input, None
    same_place = connection is not None and point.connection == connection
    if not (same_place or fields.get("store", True) is True):  # the API stores by default
        return full_input, None
    if comparable(point.fields) != comparable(fields):
        return full_input, None
    prefix = point.prefix
    if full_input[: len(prefix)] != prefix:
        return full_input, None
    return full_input[len(prefix) :], point.response_id
