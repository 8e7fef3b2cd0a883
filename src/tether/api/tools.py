"""Tool definitions and `tool_choice`: validation, and the list of tools the model is offered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import invalid

HOSTED_TOOL_TYPES = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "mcp",
        "computer_use_preview",
        "computer",
        "computer_use",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
    }
)
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """A tool the model may call: a function (JSON arguments) or a custom tool (free text input)."""

    name: str
    kind: str  # "function" | "custom"
    description: str
    parameters: dict[str, Any] | None
    strict: bool
    namespace: str | None = None


def _function_tool(raw: dict[str, Any], where: str, namespace: str | None) -> OfferedTool:
    name = raw.get("name")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise invalid(
            f"Invalid '{where}.name': must be 1-128 letters, digits, underscores, dashes, dots or colons.",
            f"{where}.name",
        )
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid(f"Invalid '{where}.parameters': expected a JSON Schema object.", f"{where}.parameters")
    description = raw.get("description")
    return OfferedTool(
        name=name,
        kind="function",
        description=description if isinstance(description, str) else "",
        parameters=parameters,
        strict=bool(raw.get("strict")),
        namespace=namespace,
    )


def _custom_tool(raw: dict[str, Any], where: str, namespace: str | None) -> OfferedTool:
    name = raw.get("name")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise invalid(f"Invalid '{where}.name'.", f"{where}.name")
    description = raw.get("description")
    return OfferedTool(
        name, "custom", description if isinstance(description, str) else "", None, False, namespace=namespace
    )


def validate_tools(raw: Any) -> tuple[list[dict[str, Any]], tuple[OfferedTool, ...]]:
    """Return the tools as given (for the echo) and those offered to the model."""
    if raw is None:
        return [], ()
    if not isinstance(raw, list):
        raise invalid("Invalid 'tools': expected an array.", "tools")
    offered: list[OfferedTool] = []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise invalid(f"Invalid '{where}': expected an object.", where)
        kind = tool.get("type")
        if kind == "function":
            offered.append(_function_tool(tool, where, None))
        elif kind == "custom":
            offered.append(_custom_tool(tool, where, None))
        elif kind == "namespace":
            space = tool.get("name")
            inner = tool.get("tools")
            if not isinstance(space, str) or not isinstance(inner, list):
                raise invalid(f"Invalid '{where}': a namespace needs a 'name' and a 'tools' array.", where)
            for inner_index, sub in enumerate(inner):
                sub_where = f"{where}.tools[{inner_index}]"
                if not isinstance(sub, dict):
                    raise invalid(f"Invalid '{sub_where}': expected an object.", sub_where)
                sub_kind = sub.get("type", "function")
                if sub_kind == "function":
                    offered.append(_function_tool(sub, sub_where, space))
                elif sub_kind == "custom":
                    offered.append(_custom_tool(sub, sub_where, space))
                else:
                    raise invalid(
                        f"Invalid value for '{sub_where}.type': {sub_kind!r}; a namespace holds function and custom "
                        "tools.",
                        f"{sub_where}.type",
                    )
        elif kind in HOSTED_TOOL_TYPES:
            continue  # accepted; tether cannot run hosted tools, so the model is not offered them
        else:
            raise invalid(f"Invalid value for '{where}.type': {kind!r} is not a supported tool type.", f"{where}.type")
    return raw, tuple(offered)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """`mode` is none|auto|required; `name` forces one tool; `allowed` restricts the offered set."""

    mode: str = "auto"
    name: str | None = None
    allowed: tuple[str, ...] | None = None


def validate_tool_choice(raw: Any, offered: tuple[OfferedTool, ...]) -> ToolChoice:
    names = {tool.name for tool in offered}
    if raw is None:
        return ToolChoice()
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise invalid(
                f"Invalid value for 'tool_choice': {raw!r}. Supported values are: 'none', 'auto' and 'required'.",
                "tool_choice",
            )
        return ToolChoice(mode=raw)
    if not isinstance(raw, dict):
        raise invalid("Invalid 'tool_choice': expected a string or an object.", "tool_choice")
    kind = raw.get("type")
    if kind in ("function", "custom"):
        name = raw.get("name")
        if not isinstance(name, str) or name not in names:
            raise invalid(
                f"Invalid 'tool_choice': tool {name!r} is not among the tools of this request.", "tool_choice"
            )
        return ToolChoice(mode="required", name=name)
    if kind == "allowed_tools":
        mode = raw.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise invalid("Invalid 'tool_choice.mode': expected 'auto' or 'required'.", "tool_choice.mode")
        allowed = tuple(
            str(t.get("name")) for t in raw.get("tools", []) if isinstance(t, dict) and t.get("name") in names
        )
        return ToolChoice(mode=mode, allowed=allowed)
    if kind in HOSTED_TOOL_TYPES or kind == "mcp":
        return ToolChoice(mode="auto")
    raise invalid(f"Invalid value for 'tool_choice.type': {kind!r}.", "tool_choice.type")
