"""Tool definitions and `tool_choice`: validation, and the list of tools the model is offered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import invalid
from .tool_echo import echoed_tools
from .values import is_one_of, shown

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


def validate_tools(raw: Any, param: str = "tools") -> tuple[list[dict[str, Any]], tuple[OfferedTool, ...]]:
    """Return the tools for the echo (every function tool field filled) and those offered to the model.

    `param` is where the array is: a create's `tools`, or an `additional_tools` input item's."""
    if raw is None:
        return [], ()
    if not isinstance(raw, list):
        raise invalid(f"Invalid '{param}': expected an array.", param)
    offered: list[OfferedTool] = []
    for index, tool in enumerate(raw):
        where = f"{param}[{index}]"
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
                        f"Invalid value for '{sub_where}.type': {shown(sub_kind)}; a namespace holds function and "
                        "custom tools.",
                        f"{sub_where}.type",
                    )
        elif is_one_of(kind, HOSTED_TOOL_TYPES):
            continue  # accepted; tether cannot run hosted tools, so the model is not offered them
        else:
            raise invalid(
                f"Invalid value for '{where}.type': {shown(kind)} is not a supported tool type.", f"{where}.type"
            )
    return echoed_tools(raw), tuple(offered)


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
                f"Invalid value for 'tool_choice': {shown(raw)}. Supported values are: 'none', 'auto' and "
                "'required'.",
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
                f"Invalid 'tool_choice': tool {shown(name)} is not among the tools of this request.", "tool_choice"
            )
        return ToolChoice(mode="required", name=name)
    if kind == "allowed_tools":
        mode = raw.get("mode", "auto")
        if not is_one_of(mode, ("auto", "required")):
            raise invalid("Invalid 'tool_choice.mode': expected 'auto' or 'required'.", "tool_choice.mode")
        return ToolChoice(mode=mode, allowed=_allowed_names(raw.get("tools", []), names))
    if is_one_of(kind, HOSTED_TOOL_TYPES):
        return ToolChoice(mode="auto")
    raise invalid(f"Invalid value for 'tool_choice.type': {shown(kind)}.", "tool_choice.type")


def _allowed_names(raw: Any, names: set[str]) -> tuple[str, ...]:
    """The names an `allowed_tools` choice keeps: those of this request's tools (hosted tools it lists
    are accepted and, like the tools themselves, not offered)."""
    if not isinstance(raw, list):
        raise invalid("Invalid 'tool_choice.tools': expected an array of tools.", "tool_choice.tools")
    allowed: list[str] = []
    for index, entry in enumerate(raw):
        where = f"tool_choice.tools[{index}]"
        if not isinstance(entry, dict):
            raise invalid(f"Invalid '{where}': expected an object.", where)
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise invalid(f"Invalid '{where}.name': expected a string.", f"{where}.name")
        if name in names:
            allowed.append(name)
    return tuple(allowed)
