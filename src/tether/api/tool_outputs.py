"""A tool output must answer a tool call of its conversation.

A `function_call_output` or `custom_tool_call_output` whose `call_id` names no call earlier in the
context is refused, as the API does (400, `param: "input"`): a model shown an answer to a question it
never asked has nothing to attach it to, and a client that sends one has lost track of its chain.

Cost: nothing beyond one pass over the new items when they hold no tool output (most turns); with
outputs, the calls are looked for first among the new items and the parent's output (where a loop's
calls are), and the whole earlier context is walked only for a call found in neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .errors import APIError
from .items import Item

OUTPUT_TYPES = {"function_call_output": "function call output", "custom_tool_call_output": "custom tool call output"}
CALL_TYPES = frozenset({"function_call", "custom_tool_call"})
# Left in a context only when it is not tether's own (tether's are unpacked on input): the calls it
# summarizes cannot be seen, so an output may answer one of them.
OPAQUE_HISTORY = "compaction"


def unmatched_output_error(kind: str, call_id: str) -> APIError:
    return APIError(
        f"No tool call found for {OUTPUT_TYPES[kind]} with call_id {call_id}.", status=400, param="input"
    )


def _missing_calls(new_items: Sequence[Item]) -> dict[str, str]:
    """call_id -> output type, for each output in `new_items` not preceded there by its call."""
    called: set[str] = set()
    missing: dict[str, str] = {}
    for item in new_items:
        kind = item.get("type")
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            continue
        if kind in CALL_TYPES:
            called.add(call_id)
        elif kind in OUTPUT_TYPES and call_id not in called:
            missing.setdefault(call_id, str(kind))
    return missing


def _accounted_for(missing: dict[str, str], items: Iterable[Item]) -> bool:
    """Drop from `missing` each call found in `items`; True once none is left, or the rest cannot be judged."""
    for item in items:
        kind = item.get("type")
        if kind == OPAQUE_HISTORY:
            return True
        if kind in CALL_TYPES:
            missing.pop(str(item.get("call_id")), None)
            if not missing:
                return True
    return not missing


def check_tool_outputs(
    new_items: Sequence[Item],
    earlier: Callable[[], Iterable[Item]],
    recent: Iterable[Item] = (),
) -> None:
    """Raise `APIError` when a tool output in `new_items` answers no call before it in the context.

    `earlier` gives every item of the context before `new_items` (called only when needed); `recent`
    is a cheap subset of it to look in first, such as the parent response's output.
    """
    if not any(item.get("type") in OUTPUT_TYPES for item in new_items):
        return
    missing = _missing_calls(new_items)
    if not missing or _accounted_for(missing, recent) or _accounted_for(missing, earlier()):
        return
    call_id, kind = next(iter(missing.items()))
    raise unmatched_output_error(kind, call_id)
