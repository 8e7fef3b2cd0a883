"""Input items: validation of what a client sends and its canonical form (every item gets an id).

Items stay plain dicts end to end: they are validated once, when they arrive, and never again.
"""

from __future__ import annotations

from typing import Any

from .compaction import CompactionUnpacker
from .conversation_items import additional_tools_fields, configuration_update_fields, item_tools_text
from .errors import APIError, invalid
from .ids import new_id
from .prompt_cache import check_breakpoint
from .values import is_one_of, shown

Item = dict[str, Any]

ROLES = ("user", "assistant", "system", "developer")
# Items of hosted tools: accepted in history and kept verbatim, but tether never runs those tools.
OPAQUE_ITEM_TYPES = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "tool_search_call",
        "tool_search_output",
        "compaction",
    }
)
ITEM_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
    "compaction": "cmp",
    "additional_tools": "at",
    "configuration_update": "cfg",
    "compaction_trigger": "ct",
}
INPUT_PART_TYPES = frozenset({"input_text", "input_image", "input_file", "output_text", "refusal"})
ITEM_STATUSES = ("in_progress", "completed", "incomplete")
MAX_CALL_ID = 64
MAX_OUTPUT_CHARS = 10_485_760


def is_model_item(item: Item) -> bool:
    """Items the model produced: assistant messages, tool calls, reasoning."""
    kind = item.get("type")
    if kind == "message":
        return item.get("role") == "assistant"
    return kind in ("function_call", "custom_tool_call", "reasoning")


def _require_str(obj: Item, key: str, param: str, *, allow_empty: bool = True) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"Missing or invalid '{param}': expected a string.", param)
    if not allow_empty and not value:
        raise invalid(f"Invalid '{param}': empty string.", param)
    return value


def _content_parts(content: Any, role: str, param: str) -> list[Item]:
    if isinstance(content, str):
        part_type = "output_text" if role == "assistant" else "input_text"
        part: Item = {"type": part_type, "text": content}
        if part_type == "output_text":
            part["annotations"] = []
        return [part]
    if not isinstance(content, list):
        raise invalid(f"Invalid '{param}': expected a string or an array of content parts.", param)
    parts: list[Item] = []
    for index, raw in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(raw, dict):
            raise invalid(f"Invalid '{where}': expected an object.", where)
        kind = raw.get("type")
        if not is_one_of(kind, INPUT_PART_TYPES):
            raise invalid(
                f"Invalid value for '{where}.type': {shown(kind)}. Supported values are: "
                + ", ".join(sorted(INPUT_PART_TYPES))
                + ".",
                f"{where}.type",
            )
        if kind in ("input_text", "output_text"):
            _require_str(raw, "text", f"{where}.text")
        elif kind == "refusal":
            _require_str(raw, "refusal", f"{where}.refusal")
        check_breakpoint(raw, where)  # kept on the part as sent: it changes nothing in what tether reuses
        parts.append(raw)
    return parts


def _function_output(raw: Item, where: str) -> None:
    call_id = _require_str(raw, "call_id", f"{where}.call_id", allow_empty=False)
    if len(call_id) > MAX_CALL_ID:
        raise invalid(f"Invalid '{where}.call_id': string too long (max {MAX_CALL_ID}).", f"{where}.call_id")
    output = raw.get("output")
    if isinstance(output, str):
        if len(output) > MAX_OUTPUT_CHARS:
            raise invalid(f"Invalid '{where}.output': string too long.", f"{where}.output")
    elif isinstance(output, list):
        _content_parts(output, "user", f"{where}.output")
    else:
        raise invalid(f"Missing or invalid '{where}.output': expected a string or an array.", f"{where}.output")


def _item_id(raw: Item, where: str, prefix: str) -> str:
    """The client's id for the item (items are found by id), or a new one."""
    value = raw.get("id")
    if value is None or value == "":
        return new_id(prefix)
    if not isinstance(value, str):
        raise invalid(f"Invalid '{where}.id': expected a string.", f"{where}.id")
    return value


def _item_status(raw: Item, where: str) -> str:
    value = raw.get("status")
    if value is None or value == "":
        return "completed"
    if not is_one_of(value, ITEM_STATUSES):
        raise invalid(
            f"Invalid value for '{where}.status': {shown(value)}. Supported values are: 'in_progress', "
            "'completed', 'incomplete'.",
            f"{where}.status",
        )
    return str(value)


def normalize_item(raw: Any, where: str) -> Item:
    """Validate one input item and return its canonical dict (a new dict; `raw` is left alone)."""
    if not isinstance(raw, dict):
        raise invalid(f"Invalid '{where}': expected an object.", where)
    kind = raw.get("type")
    if kind is None and "role" in raw:
        kind = "message"
    if kind == "message":
        role = raw.get("role")
        if not is_one_of(role, ROLES):
            raise invalid(
                f"Invalid value for '{where}.role': {shown(role)}. Supported values are: "
                "'user', 'assistant', 'system', 'developer'.",
                f"{where}.role",
            )
        item: Item = {
            "id": _item_id(raw, where, "msg"),
            "type": "message",
            "role": role,
            "content": _content_parts(raw.get("content"), str(role), f"{where}.content"),
            "status": _item_status(raw, where),
        }
        if "phase" in raw:
            item["phase"] = raw["phase"]
        return item
    if kind == "function_call":
        _require_str(raw, "call_id", f"{where}.call_id", allow_empty=False)
        _require_str(raw, "name", f"{where}.name", allow_empty=False)
        _require_str(raw, "arguments", f"{where}.arguments")
        return {**raw, "id": _item_id(raw, where, "fc"), "status": _item_status(raw, where)}
    if kind in ("function_call_output", "custom_tool_call_output"):
        _function_output(raw, where)
        return {**raw, "id": _item_id(raw, where, ITEM_ID_PREFIX[kind]), "status": _item_status(raw, where)}
    if kind == "custom_tool_call":
        _require_str(raw, "call_id", f"{where}.call_id", allow_empty=False)
        _require_str(raw, "name", f"{where}.name", allow_empty=False)
        _require_str(raw, "input", f"{where}.input")
        return {**raw, "id": _item_id(raw, where, "ctc"), "status": _item_status(raw, where)}
    if kind == "reasoning":
        summary = raw.get("summary", [])
        if not isinstance(summary, list):
            raise invalid(f"Invalid '{where}.summary': expected an array.", f"{where}.summary")
        return {**raw, "id": _item_id(raw, where, "rs"), "summary": summary}
    if kind == "item_reference":
        _require_str(raw, "id", f"{where}.id", allow_empty=False)
        return {"type": "item_reference", "id": raw["id"]}
    if kind == "compaction_trigger":
        return {"id": _item_id(raw, where, "ct"), "type": "compaction_trigger"}
    if kind == "additional_tools":
        return {"id": _item_id(raw, where, "at"), **additional_tools_fields(raw, where)}
    if kind == "configuration_update":
        return {"id": _item_id(raw, where, "cfg"), **configuration_update_fields(raw, where)}
    if is_one_of(kind, OPAQUE_ITEM_TYPES):
        return {**raw, "id": _item_id(raw, where, ITEM_ID_PREFIX.get(str(kind), "item"))}
    raise invalid(
        f"Invalid value for '{where}.type': {shown(kind)} is not a supported input item type.", f"{where}.type"
    )


def normalize_input(raw: Any, param: str = "input") -> list[Item]:
    """`input` as a string (one user message) or an array of items, in canonical form."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [normalize_item({"type": "message", "role": "user", "content": raw}, param)]
    if not isinstance(raw, list):
        raise invalid(f"Invalid '{param}': expected a string or an array of input items.", param)
    items: list[Item] = []
    unpacker = CompactionUnpacker()
    for index, entry in enumerate(raw):
        where = f"{param}[{index}]"
        item = normalize_item(entry, where)
        packed = unpacker.unpack(item, where) if item["type"] == "compaction" else None
        if packed is None:
            items.append(item)
            continue
        unpacked = _packed_items(packed, where)
        # The compacted window repeats the user messages the item holds: keep one copy, in place.
        packed_ids = {packed_item["id"] for packed_item in unpacked if "id" in packed_item}
        items = [kept for kept in items if kept.get("id") not in packed_ids]
        items.extend(unpacked)
    if any(item["type"] == "compaction_trigger" for item in items[:-1]):
        raise invalid("A 'compaction_trigger' item must be the last input item.", param)
    return items


def _packed_items(packed: list[Any], where: str) -> list[Item]:
    """The items a compaction blob decoded to, validated like any input item: a blob is client input."""
    param = f"{where}.encrypted_content"
    items: list[Item] = []
    for index, entry in enumerate(packed):
        try:
            items.append(normalize_item(entry, f"{param}[{index}]"))
        except APIError as exc:
            raise invalid(
                f"Invalid '{param}': item {index} of the compacted context is not a valid input item ({exc.message})",
                param,
            ) from None
    return items


def item_text(item: Item) -> str:
    """The plain text of an item, as a model without multimodal input would read it."""
    kind = item.get("type")
    if kind == "message":
        chunks: list[str] = []
        for part in item.get("content", []):
            ptype = part.get("type")
            if ptype in ("input_text", "output_text"):
                chunks.append(str(part.get("text", "")))
            elif ptype == "refusal":
                chunks.append(str(part.get("refusal", "")))
            elif ptype == "input_image":
                chunks.append("[image]")
            elif ptype == "input_file":
                chunks.append(f"[file {part.get('filename') or ''}]".replace(" ]", "]"))
        return "".join(chunks)
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        if isinstance(output, str):
            return output
        return "".join(str(p.get("text", "")) for p in output or [] if isinstance(p, dict))
    if kind == "function_call":
        return str(item.get("arguments", ""))
    if kind == "custom_tool_call":
        return str(item.get("input", ""))
    if kind == "reasoning":
        return "".join(str(s.get("text", "")) for s in item.get("summary", []) if isinstance(s, dict))
    if kind == "additional_tools":
        return item_tools_text(item)
    return ""
