"""Chat-completions stream chunks -> backend deltas, and the output items the turn produced.

`ChatStreamReader` is sans-I/O: it is fed each decoded chunk (`feed`) and told when the stream ended
(`finish`). Tool calls are renumbered in the order they appear; a call whose arguments arrive before
its name waits for the name. A custom tool's `{"input": ...}` arguments are buffered and handed on
unwrapped, as the raw input text, when the call is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.ids import new_id
from ..api.items import MAX_CALL_ID
from .base import BackendError, Delta, GenerationParams, ReasoningDelta, TextDelta, ToolCallDelta
from .chat_render import unwrap_custom_input

#: what the stream hands the reader for the `data: [DONE]` line
STREAM_DONE: dict[str, Any] = {"__done__": True}


@dataclass(slots=True)
class _Call:
    index: int  # ours: 0, 1, ... in order of appearance
    call_id: str
    custom: bool
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    announced: bool = False  # the first delta (name, call_id) was yielded
    flushed: bool = False  # a custom call's input was yielded


@dataclass(slots=True)
class StreamUsage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0


def upstream_error_message(payload: Any) -> str:
    """The message of an error object as OpenAI, vLLM, llama.cpp or Ollama spell it."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("error")
        if message:
            return str(message)
    if isinstance(error, str) and error:
        return error
    return "no error message"


class ChatStreamReader:
    def __init__(self, params: GenerationParams) -> None:
        self.custom = {tool.name for tool in params.tools if tool.kind == "custom"}
        self.parallel = params.parallel_tool_calls
        self.text: list[str] = []
        self.reasoning_chars = 0
        self.calls: list[_Call] = []
        self._by_upstream: dict[int, _Call | None] = {}  # None: a call dropped (parallel_tool_calls false)
        self.finish_reason: str | None = None
        self.done = False  # `[DONE]` arrived
        self.usage = StreamUsage()

    # -- feeding ------------------------------------------------------------------------------
    def feed(self, chunk: Any) -> list[Delta]:
        if chunk is STREAM_DONE:
            self.done = True
            return []
        if not isinstance(chunk, dict):
            raise BackendError(f"The upstream model server sent a malformed stream chunk: {str(chunk)[:200]}")
        if chunk.get("error") is not None:
            raise BackendError(f"The upstream model server failed mid-stream: {upstream_error_message(chunk)}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._take_usage(usage)
        deltas: list[Delta] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is never asked for
            delta = choice.get("delta") or choice.get("message") or {}
            if isinstance(delta, dict):
                deltas += self._delta(delta)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return deltas

    def _take_usage(self, usage: dict[str, Any]) -> None:
        if isinstance(usage.get("prompt_tokens"), int):
            self.usage.prompt_tokens = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            self.usage.completion_tokens = usage["completion_tokens"]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            self.usage.cached_tokens = details["cached_tokens"]

    def _delta(self, delta: dict[str, Any]) -> list[Delta]:
        out: list[Delta] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._flush_custom()
            self.reasoning_chars += len(reasoning)
            out.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._flush_custom()
            self.text.append(content)
            out.append(TextDelta(content))
        for position, raw in enumerate(delta.get("tool_calls") or []):
            if isinstance(raw, dict):
                out += self._tool_call(raw, position)
        return out

    def _tool_call(self, raw: dict[str, Any], position: int) -> list[Delta]:
        upstream_index = raw.get("index")
        if not isinstance(upstream_index, int):
            upstream_index = position
        function = raw.get("function") or {}
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
        out: list[Delta] = []
        if upstream_index not in self._by_upstream:
            out += self._flush_custom()
            if self.calls and not self.parallel:
                self._by_upstream[upstream_index] = None  # one call at most was asked for
                return out
            call_id = raw.get("id")
            if not isinstance(call_id, str) or not call_id or len(call_id) > MAX_CALL_ID:
                call_id = new_id("call")
            call = _Call(len(self.calls), call_id, custom=False)
            self.calls.append(call)
            self._by_upstream[upstream_index] = call
        call_or_none = self._by_upstream[upstream_index]
        if call_or_none is None:
            return out
        call = call_or_none
        if name and call.name is None:
            call.name = name
            call.custom = name in self.custom
        if arguments:
            call.arguments.append(arguments)
        if call.name is None or call.custom:
            return out  # waiting for the name; a custom call is handed on whole, unwrapped
        if not call.announced:
            call.announced = True
            out.append(ToolCallDelta(call.index, "".join(call.arguments), name=call.name, call_id=call.call_id))
        elif arguments:
            out.append(ToolCallDelta(call.index, arguments))
        return out

    def _flush_custom(self) -> list[Delta]:
        """Hand on the custom calls that are complete: those before whatever comes next."""
        out: list[Delta] = []
        for call in self.calls:
            if call.custom and not call.flushed:
                call.flushed = True
                call.announced = True
                out.append(ToolCallDelta(call.index, self.custom_input(call), name=call.name, call_id=call.call_id))
        return out

    @staticmethod
    def custom_input(call: _Call) -> str:
        return unwrap_custom_input("".join(call.arguments))

    # -- the end ------------------------------------------------------------------------------
    def finish(self) -> list[Delta]:
        """The deltas still held back, once the stream is over."""
        out = self._flush_custom()
        for call in self.calls:
            if call.name is None:
                raise BackendError("The upstream model server sent a tool call without a name.")
        return out

    @property
    def reason(self) -> str:
        return "length" if self.finish_reason == "length" else "stop"

    def output_chars(self) -> int:
        return sum(len(t) for t in self.text) + self.reasoning_chars + sum(
            len(a) for call in self.calls for a in call.arguments
        )
