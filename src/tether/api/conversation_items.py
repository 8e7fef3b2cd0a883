"""Input items that change a conversation's settings from their position on, without rewriting what
came before (openai 3.57): `additional_tools` (tools offered from that item on) and
`configuration_update` (`reasoning.effort` and/or `text.format` for later responses, until a later
update replaces that setting). Their validation and canonical form; `items.normalize_item` adds the id.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import invalid
from .settings_values import validate_effort, validate_text_format
from .tools import OfferedTool, validate_tools
from .values import shown

Item = dict[str, Any]

#: a configuration update switches to a JSON Schema or back to plain text (no `json_object`)
UPDATE_FORMATS = ("text", "json_schema")


def additional_tools_fields(raw: Item, where: str) -> Item:
    """An `additional_tools` item without its id: `role` developer (the only one the API allows) and
    its tools, each function tool with every field filled, as the Response's own `tools` are echoed."""
    role = raw.get("role", "developer")
    if role != "developer":
        raise invalid(f"Invalid value for '{where}.role': {shown(role)}. Supported values are: 'developer'.",
                      f"{where}.role")
    if not isinstance(raw.get("tools"), list):
        raise invalid(f"Missing or invalid '{where}.tools': expected an array of tools.", f"{where}.tools")
    echoed, _ = validate_tools(raw["tools"], f"{where}.tools")
    return {"type": "additional_tools", "role": "developer", "tools": echoed}


def item_tools(item: Item) -> tuple[OfferedTool, ...]:
    """The tools an (already validated) `additional_tools` item offers the model."""
    return validate_tools(item.get("tools") or [])[1]


def item_tools_text(item: Item) -> str:
    """An `additional_tools` item as text (its tools' JSON), for token estimates and prefix digests."""
    return orjson.dumps(item.get("tools") or []).decode()


def configuration_update_fields(raw: Item, where: str) -> Item:
    """A `configuration_update` item without its id; only the settings it names are kept."""
    item: Item = {"type": "configuration_update"}
    reasoning = raw.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise invalid(f"Invalid '{where}.reasoning': expected an object.", f"{where}.reasoning")
        item["reasoning"] = {"effort": validate_effort(reasoning.get("effort"), f"{where}.reasoning.effort")}
    text = raw.get("text")
    if text is not None:
        if not isinstance(text, dict) or text.get("format") is None:
            raise invalid(f"Invalid '{where}.text': expected an object with a 'format'.", f"{where}.text")
        item["text"] = {"format": validate_text_format(text["format"], f"{where}.text.format", UPDATE_FORMATS)}
    return item


def input_tools(items: list[Item]) -> tuple[OfferedTool, ...]:
    """The tools the `additional_tools` items among `items` offer, in order."""
    return tuple(tool for item in items if item.get("type") == "additional_tools" for tool in item_tools(item))
