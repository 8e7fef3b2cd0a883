"""The Open Responses `ResponseResource` schema, as its compliance suite checks it, for our own tests.

The suite parses every response with a zod schema generated from the Open Responses OpenAPI document:
fields it marks required must be present even when null, with the declared types. The openai SDK's
models are more lenient (most fields optional), so the tests check both: the SDK's strict parse
(`validate_response`) for what the SDK knows, and this for what the suite requires beyond it.
"""

from __future__ import annotations

from typing import Any

from .support import validate_response

_INT = (int,)
_NUM = (int, float)
_STR = (str,)
_BOOL = (bool,)
_DICT = (dict,)
_LIST = (list,)
_NONE = (type(None),)

# field -> accepted types (a field listed here must be present; `_NONE` in the tuple: nullable)
RESPONSE_FIELDS: dict[str, tuple[type, ...]] = {
    "id": _STR,
    "object": _STR,
    "created_at": _INT,
    "completed_at": _INT + _NONE,
    "status": _STR,
    "incomplete_details": _DICT + _NONE,
    "model": _STR,
    "previous_response_id": _STR + _NONE,
    "instructions": _STR + _NONE,
    "output": _LIST,
    "error": _DICT + _NONE,
    "tools": _LIST,
    "tool_choice": _STR + _DICT,
    "truncation": _STR,
    "parallel_tool_calls": _BOOL,
    "text": _DICT,
    "top_p": _NUM,
    "presence_penalty": _NUM,
    "frequency_penalty": _NUM,
    "top_logprobs": _INT,
    "temperature": _NUM,
    "reasoning": _DICT + _NONE,
    "usage": _DICT + _NONE,
    "max_output_tokens": _INT + _NONE,
    "max_tool_calls": _INT + _NONE,
    "store": _BOOL,
    "background": _BOOL,
    "service_tier": _STR,
    "metadata": _DICT,
    "safety_identifier": _STR + _NONE,
    "prompt_cache_key": _STR + _NONE,
}
# The suite's FunctionTool: every key required, the last three nullable.
FUNCTION_TOOL_FIELDS: dict[str, tuple[type, ...]] = {
    "type": _STR,
    "name": _STR,
    "description": _STR + _NONE,
    "parameters": _DICT + _NONE,
    "strict": _BOOL + _NONE,
}
USAGE_FIELDS: dict[str, tuple[type, ...]] = {
    "input_tokens": _INT,
    "output_tokens": _INT,
    "total_tokens": _INT,
    "input_tokens_details": _DICT,
    "output_tokens_details": _DICT,
}


def _fields(obj: dict[str, Any], spec: dict[str, tuple[type, ...]], where: str) -> list[str]:
    problems = []
    for key, types in spec.items():
        if key not in obj:
            problems.append(f"{where}.{key}: required")
        elif isinstance(obj[key], bool) and bool not in types:
            problems.append(f"{where}.{key}: expected {[t.__name__ for t in types]}, got bool")
        elif not isinstance(obj[key], types):
            problems.append(f"{where}.{key}: expected {[t.__name__ for t in types]}, got {type(obj[key]).__name__}")
    return problems


def response_resource_problems(body: dict[str, Any]) -> list[str]:
    """What the suite's `responseResourceSchema` would reject in `body` (empty when it passes)."""
    problems = _fields(body, RESPONSE_FIELDS, "response")
    if body.get("object") != "response":
        problems.append(f"response.object: expected 'response', got {body.get('object')!r}")
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type") == "function":
            problems += _fields(tool, FUNCTION_TOOL_FIELDS, f"tools[{index}]")
    usage = body.get("usage")
    if isinstance(usage, dict):
        problems += _fields(usage, USAGE_FIELDS, "usage")
        if not isinstance(usage.get("input_tokens_details", {}).get("cached_tokens"), int):
            problems.append("usage.input_tokens_details.cached_tokens: required integer")
        if not isinstance(usage.get("output_tokens_details", {}).get("reasoning_tokens"), int):
            problems.append("usage.output_tokens_details.reasoning_tokens: required integer")
    fmt = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        problems.append("text.format: required object with a 'type'")
    return problems


def check_response_resource(body: dict[str, Any]) -> Any:
    """The response passes the suite's schema and the SDK's strict parse; returns the SDK model."""
    problems = response_resource_problems(body)
    assert not problems, problems
    return validate_response(body)
