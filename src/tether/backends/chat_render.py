"""Responses items -> OpenAI chat-completions messages, and offered tools -> chat `tools`/`tool_choice`.

One mapping for both directions of a session's life: the items a client sends and the items a turn
produced are rendered by the same `render_items`, so a session that appended its own output holds
exactly the messages a fresh session would render from the stored conversation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ..api.conversation_items import item_tools
from ..api.items import Item, item_text
from ..api.tools import OfferedTool, ToolChoice

Message = dict[str, Any]

#: a custom (free-text) tool is offered upstream as a function with this one string parameter
CUSTOM_TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The complete input for the tool."}},
    "required": ["input"],
}
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
ROLE_MAP = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def wrap_custom_input(text: str) -> str:
    return orjson.dumps({"input": text}).decode()


def unwrap_custom_input(arguments: str) -> str:
    """The free-text input inside a custom tool's `{"input": ...}` arguments (the text itself if it is not that)."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict):
        value = parsed.get("input")
        if isinstance(value, str):
            return value
        strings = [v for v in parsed.values() if isinstance(v, str)]
        if len(parsed) == 1 and strings:
            return strings[0]
    return arguments


def _message_content(item: Item) -> str | list[dict[str, Any]]:
    """A plain string unless the message carries images (then the multimodal parts form)."""
    parts = item.get("content") or []
    if not any(isinstance(p, dict) and p.get("type") == "input_image" for p in parts):
        return item_text(item)
    out: list[dict[str, Any]] = []
    for part in parts:
        url = part.get("image_url") if part.get("type") == "input_image" else None
        if isinstance(url, str) and url:
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            text = item_text({"type": "message", "content": [part]})
            if text:
                out.append({"type": "text", "text": text})
    return out


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _append_tool_call(messages: list[Message], call: dict[str, Any]) -> None:
    """Calls that follow an assistant message join it: one assistant turn, text and tool_calls."""
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant":
        # Copy on write: a forked session shares the message dicts of its parent.
        messages[-1] = {**last, "tool_calls": [*(last.get("tool_calls") or []), call]}
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def render_items(messages: list[Message], items: Iterable[Item]) -> int:
    """Append the chat form of `items` to `messages`; returns how many items had a chat form."""
    rendered = 0
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = ROLE_MAP.get(str(item.get("role")), "user")
            content = _message_content(item)
            messages.append({"role": role, "content": content})
        elif kind == "function_call":
            _append_tool_call(messages, _tool_call(str(item["call_id"]), str(item["name"]), str(item["arguments"])))
        elif kind == "custom_tool_call":
            call = _tool_call(str(item["call_id"]), str(item["name"]), wrap_custom_input(str(item.get("input", ""))))
            _append_tool_call(messages, call)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append({"role": "tool", "tool_call_id": str(item["call_id"]), "content": item_text(item)})
        elif kind == "additional_tools":
            # Tools added mid-conversation are told where they were added (the request's `tools` list
            # offers them too): the messages before this one stay exactly as they were.
            messages.append({"role": "system", "content": tools_note(item_tools(item))})
        else:
            continue  # reasoning, hosted-tool items: the upstream model has no chat form for them
        rendered += 1
    return rendered


def with_system(messages: list[Message], instructions: str | None) -> list[Message]:
    """The messages of one request: this request's instructions first (they may change per request)."""
    if not instructions:
        return messages
    return [{"role": "system", "content": instructions}, *messages]


def chat_tools(tools: Iterable[OfferedTool]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.kind == "custom":
            parameters = CUSTOM_TOOL_PARAMETERS
        else:
            parameters = tool.parameters or EMPTY_PARAMETERS
        function: dict[str, Any] = {"name": tool.name, "parameters": parameters}
        if tool.description:
            function["description"] = tool.description
        if tool.strict:
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def tools_note(tools: Iterable[OfferedTool]) -> str:
    """The text of an `additional_tools` item: each tool's definition, as chat `tools` give it."""
    lines = ["These tools are available from here on (one JSON definition a line):"]
    lines.extend(orjson.dumps(tool["function"]).decode() for tool in chat_tools(tools))
    return "\n".join(lines)


def chat_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.name is not None:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode if choice.mode in ("none", "auto", "required") else "auto"
