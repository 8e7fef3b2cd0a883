"""Builders for the Responses streaming events, numbering them per response from 0.

This is the one place an event dict is made; transports only frame what it returns.
"""

from __future__ import annotations

import secrets
from typing import Any

from .items import Item

#: the events after which a client has its answer: the response's end, or a request-level error
TERMINAL_EVENT_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})


class EventSequencer:
    """Makes the events of one response, with `sequence_number` from 0 and `stream_id` on named lanes."""

    __slots__ = ("next_number", "obfuscate", "stream_id")

    def __init__(self, stream_id: str | None = None, obfuscate: bool = True) -> None:
        self.next_number = 0
        self.stream_id = stream_id
        self.obfuscate = obfuscate

    def event(self, type: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"type": type, **fields, "sequence_number": self.next_number}
        self.next_number += 1
        if self.stream_id is not None:
            event["stream_id"] = self.stream_id
        return event

    def lifecycle(self, type: str, response: dict[str, Any]) -> dict[str, Any]:
        return self.event(type, response=response)

    def item_added(self, output_index: int, item: Item) -> dict[str, Any]:
        return self.event("response.output_item.added", output_index=output_index, item=item)

    def item_done(self, output_index: int, item: Item) -> dict[str, Any]:
        return self.event("response.output_item.done", output_index=output_index, item=item)

    def part_added(self, item_id: str, output_index: int, content_index: int) -> dict[str, Any]:
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return self.event(
            "response.content_part.added",
            item_id=item_id,
            output_index=output_index,
            content_index=content_index,
            part=part,
        )

    def part_done(self, item_id: str, output_index: int, content_index: int, text: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return self.event(
            "response.content_part.done",
            item_id=item_id,
            output_index=output_index,
            content_index=content_index,
            part=part,
        )

    def text_delta(self, item_id: str, output_index: int, content_index: int, delta: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "item_id": item_id,
            "output_index": output_index,
            "content_index": content_index,
            "delta": delta,
            "logprobs": [],
        }
        if self.obfuscate:
            fields["obfuscation"] = secrets.token_urlsafe(max(1, 12 - len(delta)) if len(delta) < 12 else 2)
        return self.event("response.output_text.delta", **fields)

    def text_done(self, item_id: str, output_index: int, content_index: int, text: str) -> dict[str, Any]:
        return self.event(
            "response.output_text.done",
            item_id=item_id,
            output_index=output_index,
            content_index=content_index,
            text=text,
            logprobs=[],
        )

    def arguments_delta(self, item_id: str, output_index: int, delta: str) -> dict[str, Any]:
        return self.event(
            "response.function_call_arguments.delta", item_id=item_id, output_index=output_index, delta=delta
        )

    def arguments_done(self, item_id: str, output_index: int, arguments: str) -> dict[str, Any]:
        return self.event(
            "response.function_call_arguments.done", item_id=item_id, output_index=output_index, arguments=arguments
        )

    def custom_input_delta(self, item_id: str, output_index: int, delta: str) -> dict[str, Any]:
        return self.event(
            "response.custom_tool_call_input.delta", item_id=item_id, output_index=output_index, delta=delta
        )

    def custom_input_done(self, item_id: str, output_index: int, text: str) -> dict[str, Any]:
        return self.event(
            "response.custom_tool_call_input.done", item_id=item_id, output_index=output_index, input=text
        )

    def steer_accepted(self, steer_id: str, response_id: str) -> dict[str, Any]:
        return self.event("response.steer.accepted", steer={"id": steer_id, "previous_response_id": response_id})

    def steer_pending(self, steer_id: str, response_id: str, required_input: list[dict[str, Any]]) -> dict[str, Any]:
        return self.event(
            "response.steer.pending",
            steer={"id": steer_id, "previous_response_id": response_id},
            reason="waiting_for_required_input",
            required_input=required_input,
        )

    def compaction_compacting(self, item_id: str, output_index: int) -> dict[str, Any]:
        """A `compaction_trigger` turn's compaction item is being made (the event carries no content)."""
        return self.event("response.compaction.compacting", item_id=item_id, output_index=output_index)

    def interrupt_accepted(self, response_id: str) -> dict[str, Any]:
        return self.event("response.interrupt.accepted", response_id=response_id)

    def item_interrupted(self, response_id: str, item_id: str, output_index: int) -> dict[str, Any]:
        return self.event(
            "response.output_item.interrupted", response_id=response_id, item_id=item_id, output_index=output_index
        )

    def reasoning_delta(self, item_id: str, output_index: int, delta: str) -> dict[str, Any]:
        return self.event(
            "response.reasoning_text.delta", item_id=item_id, output_index=output_index, content_index=0, delta=delta
        )

    def reasoning_done(self, item_id: str, output_index: int, text: str) -> dict[str, Any]:
        return self.event(
            "response.reasoning_text.done", item_id=item_id, output_index=output_index, content_index=0, text=text
        )


def steer_failed(
    previous_response_id: Any,
    steer_input: Any,
    code: str,
    message: str,
    *,
    steer_id: str | None = None,
    sequence_number: int = 0,
    stream_id: str | None = None,
) -> dict[str, Any]:
    """`response.steer.failed` (WebSocket only): the steering input comes back, uncommitted."""
    steer: dict[str, Any] = {"previous_response_id": previous_response_id, "input": steer_input}
    if steer_id is not None:
        steer = {"id": steer_id, **steer}
    event: dict[str, Any] = {
        "type": "response.steer.failed",
        "sequence_number": sequence_number,
        "steer": steer,
        "error": {"type": "invalid_request_error", "code": code, "message": message},
    }
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def interrupt_failed(response_id: Any, code: str, message: str) -> dict[str, Any]:
    """`response.interrupt.failed` (WebSocket only): the interrupt named no response it could stop."""
    return {
        "type": "response.interrupt.failed",
        "sequence_number": 0,
        "response_id": response_id,
        "error": {"type": "invalid_request_error", "code": code, "message": message},
    }
