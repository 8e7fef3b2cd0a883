"""The `tools` a Response echoes: the request's tools, with every field a function tool must carry.

The API's FunctionTool has `description`, `parameters` and `strict` as required, nullable fields, so a
tool the client sent without them is echoed with them set to null; strict schema checkers (the Open
Responses compliance suite among them) reject a function tool that lacks the keys.
"""

from __future__ import annotations

from typing import Any

FUNCTION_TOOL_FIELDS = ("description", "parameters", "strict")


def _function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if all(key in tool for key in FUNCTION_TOOL_FIELDS):
        return tool
    return {**tool, **{key: tool.get(key) for key in FUNCTION_TOOL_FIELDS}}


def _echoed(tool: Any) -> Any:
    if not isinstance(tool, dict):
        return tool
    kind = tool.get("type")
    if kind == "function":
        return _function_tool(tool)
    if kind == "namespace" and isinstance(tool.get("tools"), list):
        inner = [
            _function_tool(sub) if isinstance(sub, dict) and sub.get("type", "function") == "function" else sub
            for sub in tool["tools"]
        ]
        return {**tool, "tools": inner}
    return tool


def echoed_tools(tools: list[Any]) -> list[Any]:
    """The validated tools as the Response shows them (new dicts where a field was added; the request's
    own dicts are left alone)."""
    return [_echoed(tool) for tool in tools]
