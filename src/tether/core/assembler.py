"""`OutputAssembler`: turns a backend's deltas into output items and their streaming events.

It owns the bookkeeping the SDK's stream accumulator relies on: `output_index` is an item's position
in `output`, a content part is opened before any text delta, every opened item is closed in order.
"""

from __future__ import annotations

from typing import Any

from ..api.events import EventSequencer
from ..api.ids import new_id
from ..api.items import Item
from ..api.tools import OfferedTool
from ..backends.base import ReasoningDelta, TextDelta, ToolCallDelta

Event = dict[str, Any]


class OutputAssembler:
    def __init__(self, seq: EventSequencer, tools: tuple[OfferedTool, ...], parallel_tool_calls: bool) -> None:
        self.seq = seq
        self.tools = {tool.name: tool for tool in tools}
        self.parallel = parallel_tool_calls
        self.output: list[Item] = []
        self._open: Item | None = None  # the item currently streaming
        self._text: list[str] = []
        self._call_index: int | None = None  # the backend's index of the open tool call
        self._calls_seen = 0

    # -- opening and closing items ------------------------------------------------------------
    def _add(self, item: Item) -> list[Event]:
        self.output.append(item)
        self._open = item
        self._text = []
        return [self.seq.item_added(len(self.output) - 1, dict(item))]

    def close(self, status: str = "completed") -> list[Event]:
        item = self._open
        if item is None:
            return []
        self._open = None
        index = len(self.output) - 1
        text = "".join(self._text)
        events: list[Event] = []
        kind = item["type"]
        if kind == "message":
            events.append(self.seq.text_done(item["id"], index, 0, text))
            events.append(self.seq.part_done(item["id"], index, 0, text))
            item["content"] = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        elif kind == "function_call":
            item["arguments"] = text
            events.append(self.seq.arguments_done(item["id"], index, text))
        elif kind == "custom_tool_call":
            item["input"] = text
            events.append(self.seq.custom_input_done(item["id"], index, text))
        elif kind == "reasoning":
            item["content"] = [{"type": "reasoning_text", "text": text}]
            events.append(self.seq.reasoning_done(item["id"], index, text))
        item["status"] = status
        if kind in ("reasoning", "custom_tool_call"):
            item.pop("status", None)  # the API's output models of these items have no status
        events.append(self.seq.item_done(index, item))
        self._call_index = None
        return events

    @property
    def open_kind(self) -> str | None:
        """The type of the item still streaming, if any."""
        return str(self._open["type"]) if self._open is not None else None

    def discard_open(self) -> tuple[int, Item] | None:
        """Drop the item still streaming (an interrupt discards partial items): its index and the item."""
        item = self._open
        if item is None:
            return None
        index = len(self.output) - 1
        self._open = None
        self._call_index = None
        self.output.pop()
        return index, item

    # -- deltas -------------------------------------------------------------------------------
    def text(self, delta: TextDelta) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open["type"] != "message":
            events += self.close()
            item_id = new_id("msg")
            item: Item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            events += self._add(item)
            events.append(self.seq.part_added(item_id, len(self.output) - 1, 0))
        assert self._open is not None
        self._text.append(delta.text)
        events.append(self.seq.text_delta(self._open["id"], len(self.output) - 1, 0, delta.text))
        return events

    def reasoning(self, delta: ReasoningDelta) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open["type"] != "reasoning":
            events += self.close()
            events += self._add({"id": new_id("rs"), "type": "reasoning", "summary": [], "content": []})
        assert self._open is not None
        self._text.append(delta.text)
        events.append(self.seq.reasoning_delta(self._open["id"], len(self.output) - 1, delta.text))
        return events

    def tool_call(self, delta: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        if delta.index != self._call_index:
            events += self.close()
            self._calls_seen += 1
            self._call_index = delta.index
            if not self.parallel and self._calls_seen > 1:
                return events  # the caller asked for one call at most: drop the rest
            name = delta.name or "unknown"
            tool = self.tools.get(name)
            call_id = delta.call_id or new_id("call")
            item: Item
            if tool is not None and tool.kind == "custom":
                item = {"id": new_id("ctc"), "type": "custom_tool_call", "call_id": call_id, "name": name, "input": ""}
            else:
                item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                        "arguments": "", "call_id": call_id, "name": name}
            if tool is not None and tool.namespace:
                item["namespace"] = tool.namespace
            events += self._add(item)
        if self._open is None or not delta.arguments:
            return events
        self._text.append(delta.arguments)
        index = len(self.output) - 1
        if self._open["type"] == "custom_tool_call":
            events.append(self.seq.custom_input_delta(self._open["id"], index, delta.arguments))
        else:
            events.append(self.seq.arguments_delta(self._open["id"], index, delta.arguments))
        return events
