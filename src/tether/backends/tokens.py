"""An engine-free token estimate (about 4 characters a token) for backends without a tokenizer."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ..api.items import Item, item_text
from ..api.tools import OfferedTool

ITEM_OVERHEAD_TOKENS = 4


def approx_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def item_tokens(item: Item) -> int:
    name = item.get("name")
    return ITEM_OVERHEAD_TOKENS + approx_tokens(item_text(item)) + (approx_tokens(name) if isinstance(name, str) else 0)


def preamble_tokens(instructions: str | None, tools: Sequence[OfferedTool]) -> int:
    """Tokens of the system part of a prompt: instructions and tool definitions."""
    count = approx_tokens(instructions or "")
    for tool in tools:
        count += ITEM_OVERHEAD_TOKENS + approx_tokens(tool.name + tool.description)
        if tool.parameters:
            count += approx_tokens(orjson.dumps(tool.parameters).decode())
    return count


def context_tokens(items: Sequence[Item], instructions: str | None, tools: Sequence[OfferedTool]) -> int:
    return preamble_tokens(instructions, tools) + sum(item_tokens(item) for item in items)
