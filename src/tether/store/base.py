"""The store interface. Every read is scoped by owner (a hash of the API key): another owner's
response reads as absent."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from ..api.items import Item


@dataclass(slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[Item]
    owner: str

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def previous_response_id(self) -> str | None:
        value = self.response.get("previous_response_id")
        return str(value) if value else None


class ResponseStore(abc.ABC):
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create tables, open files."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release."""

    @abc.abstractmethod
    async def save(self, record: StoredResponse) -> None:
        """Insert or replace a response and its input items."""

    @abc.abstractmethod
    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...

    @abc.abstractmethod
    async def delete(self, response_id: str, owner: str) -> bool: ...

    @abc.abstractmethod
    async def get_item(self, item_id: str, owner: str) -> Item | None:
        """An input or output item of any stored response of this owner, by its id."""
