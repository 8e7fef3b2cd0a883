"""The store interface. Every read is scoped by owner (a hash of the API key): another owner's
response reads as absent."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import orjson

from ..api.items import Item


@dataclass(slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[Item]
    owner: str
    #: the engine replica that served it (`BackendSession.placement`), so a continuation from the store
    #: goes back to the replica whose prefix cache holds the conversation; None when there is no choice
    placement: str | None = None
    #: the process running a background response not finished yet (`core.runner.RUNNER`), so a process
    #: reading it later can tell a run still going from one that died with its process; None otherwise
    runner: str | None = None

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def previous_response_id(self) -> str | None:
        value = self.response.get("previous_response_id")
        return str(value) if value else None

    @property
    def output(self) -> list[Item]:
        return list(self.response.get("output") or [])

    def items_by_id(self) -> dict[str, Item]:
        """The items kept again by id: the input's, then the output's, one per id (the last wins, as one
        upsert after another leaves it)."""
        return {str(item["id"]): item for item in [*self.input_items, *self.output] if item.get("id")}

    def columns(self) -> dict[str, Any]:
        """The response's row as a database keeps it, by column name (documents as the bytes orjson writes)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "created_at": int(self.response.get("created_at") or 0),
            "previous_response_id": self.previous_response_id,
            "status": str(self.response.get("status")),
            "response": orjson.dumps(self.response),
            "input_items": orjson.dumps(self.input_items),
            "output": orjson.dumps(self.output),
            "placement": self.placement,
            "runner": self.runner,
        }


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What rebuilding a conversation needs of one stored response: no tools, no instructions."""

    id: str
    previous_response_id: str | None
    status: str
    input_items: list[Item]
    output: list[Item]
    #: JSON size of the input and output items: what holding this link in memory roughly costs
    nbytes: int
    placement: str | None = None
    #: the head link only: its whole stored Response as JSON (settings, instructions, tools), which a
    #: continuation's prompt-cache diagnosis compares with; read with the chain to save a second query
    head_response: bytes | None = None
    #: the store's count of deletions when the chain was read (`ResponseStore.deletions`)
    deletions: int | None = None

    @staticmethod
    def of(record: StoredResponse, head: bool = False, deletions: int | None = None) -> ChainLink:
        response = record.response
        output = record.output
        nbytes = len(orjson.dumps(record.input_items)) + len(orjson.dumps(output))
        return ChainLink(
            record.id, record.previous_response_id, str(response.get("status")), record.input_items, output, nbytes,
            record.placement, orjson.dumps(response) if head else None, deletions,
        )


class ResponseStore(abc.ABC):
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create tables, open files."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release."""

    @abc.abstractmethod
    async def save(self, record: StoredResponse) -> int:
        """Insert or replace a response and its input items; returns `deletions()` as the commit saw it."""

    @abc.abstractmethod
    async def deletions(self) -> int:
        """How many responses were ever deleted from this store, by any process: a chain read while this
        number was N is still whole while it is N (a cache of stored chains checks it before serving one)."""

    @abc.abstractmethod
    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...

    @abc.abstractmethod
    async def delete(self, response_id: str, owner: str) -> bool: ...

    async def get_chain(self, response_id: str, owner: str) -> list[ChainLink] | None:
        """The response and all its ancestors, newest first, all of this owner; None if any is missing.

        Stores that can should override this with one round trip; this walks one `get` per hop.
        """
        deletions = await self.deletions()  # before the walk: a deletion during it must count as later
        links: list[ChainLink] = []
        seen: set[str] = set()
        next_id: str | None = response_id
        while next_id is not None and next_id not in seen:
            seen.add(next_id)
            record = await self.get(next_id, owner)
            if record is None:
                return None
            links.append(ChainLink.of(record, head=not links, deletions=deletions))
            next_id = record.previous_response_id
        return links

    @abc.abstractmethod
    async def get_item(self, item_id: str, owner: str) -> Item | None:
        """An input or output item of any stored response of this owner, by its id."""


#: the columns a database's chain query returns, in this order, head first: id, previous id, status,
#: input items and output (JSON), placement, the head's whole Response (JSON, other rows NULL), deletions
ChainRow = tuple[Any, ...]


def chain_of_rows(rows: list[ChainRow]) -> list[ChainLink] | None:
    """The chain a database query read, or None when its last row still names a parent: the head, or
    some ancestor, is missing (or another owner's). Only the items are decoded."""
    if not rows or rows[-1][1] is not None:
        return None
    return [
        ChainLink(row[0], row[1], row[2], orjson.loads(row[3]), orjson.loads(row[4]), len(row[3]) + len(row[4]),
                  row[5], _json_bytes(row[6]), int(row[7]))
        for row in rows
    ]


def _json_bytes(value: Any) -> bytes | None:
    """A JSON column as bytes, whatever the driver returns for it (bytes, memoryview, text), or None."""
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)
