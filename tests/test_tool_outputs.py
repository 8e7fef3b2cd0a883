"""`check_tool_outputs` on its own: which outputs are refused, and that the whole context is read only when
the new items and the parent's output do not hold the call (the common turn pays nothing more)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tether.api.errors import APIError
from tether.api.items import Item
from tether.api.tool_outputs import check_tool_outputs


def call(call_id: str, kind: str = "function_call") -> Item:
    return {"type": kind, "call_id": call_id, "name": "f", "arguments": "{}", "input": ""}


def output(call_id: str, kind: str = "function_call_output") -> Item:
    return {"type": kind, "call_id": call_id, "output": "ok"}


USER: Item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


class History:
    """The earlier context, counting how often it is asked for."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.reads = 0

    def __call__(self) -> Iterable[Item]:
        self.reads += 1
        return self.items


def refused(new: list[Item], history: History, recent: list[Item] | None = None) -> APIError:
    with pytest.raises(APIError) as error:
        check_tool_outputs(new, history, recent or [])
    return error.value


def test_turns_without_tool_outputs_never_read_the_context() -> None:
    history = History([call("c1")])
    check_tool_outputs([USER, call("c9")], history, [call("c2")])
    assert history.reads == 0


def test_an_output_for_the_parents_call_is_found_without_reading_the_context() -> None:
    history = History([USER])
    check_tool_outputs([output("c1"), output("c2")], history, [call("c1"), call("c2", "custom_tool_call")])
    assert history.reads == 0


def test_an_output_after_its_call_in_the_same_input_is_accepted() -> None:
    history = History([])
    check_tool_outputs([USER, call("c1"), output("c1")], history)
    assert history.reads == 0


def test_an_output_for_an_older_call_is_found_in_the_context() -> None:
    history = History([USER, call("c0"), output("c0"), USER])
    check_tool_outputs([output("c0")], history, [])
    assert history.reads == 1


def test_an_output_answering_no_call_is_a_400_on_input() -> None:
    error = refused([USER, output("call_lost")], History([USER, call("c1")]), [call("c2")])
    assert (error.status, error.type, error.param, error.code) == (400, "invalid_request_error", "input", None)
    assert error.message == "No tool call found for function call output with call_id call_lost."
    custom = refused([output("c7", "custom_tool_call_output")], History([]))
    assert custom.message == "No tool call found for custom tool call output with call_id c7."


def test_an_output_before_its_call_is_refused() -> None:
    error = refused([output("c1"), call("c1")], History([]))
    assert "call_id c1" in error.message


def test_one_missing_call_among_found_ones_is_named() -> None:
    error = refused([output("c1"), output("c2")], History([call("c1")]))
    assert error.message.endswith("call_id c2.")


def test_an_opaque_compaction_may_hide_the_call() -> None:
    # Someone else's compaction item: its calls cannot be seen, so the output is not refused.
    opaque = {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAA..."}
    check_tool_outputs([output("c_hidden")], History([USER, opaque]), [])
