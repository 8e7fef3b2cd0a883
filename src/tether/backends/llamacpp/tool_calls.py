"""Tool calls in the model's text: the block format the prompt teaches, and a streaming scanner that
passes plain text through and turns `<tool_call>{...}</tool_call>` blocks into `ToolCallDelta`s."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ...api.ids import new_id
from ..base import Delta, TextDelta, ToolCallDelta

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"


def call_block(name: str, arguments: str) -> str:
    """A call as the model is taught to write it (and as history renders it, so prefixes match)."""
    return f'{CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n{CALL_CLOSE}'


def _raw_arguments(body: str, value: Any) -> str:
    """The arguments exactly as the model wrote them when they are valid JSON, else re-serialized."""
    key = body.find('"arguments"')
    colon = body.find(":", key) if key >= 0 else -1
    end = body.rstrip().rfind("}")
    if colon >= 0 and end > colon:
        candidate = body[colon + 1 : end].strip()
        try:
            if json.loads(candidate) == value:
                return candidate
        except ValueError:
            pass
    return orjson.dumps(value).decode()


def parse_call(body: str) -> tuple[str, str] | None:
    """(name, arguments) from a block's JSON body, or None if it is not a call."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    value = data.get("arguments", data.get("parameters", {}))
    if isinstance(value, str):
        return data["name"], value
    return data["name"], _raw_arguments(body, value)


class ToolCallScanner:
    """Feeds on generated text; yields text deltas, and call deltas once a call block is complete."""

    def __init__(self, tools: dict[str, str]) -> None:
        self.tools = tools  # name -> kind ("function" | "custom"); empty: every output is text
        self._buffer = ""
        self._in_calls = False
        self.text: list[str] = []
        self.calls: list[tuple[str, str, str]] = []  # (call_id, name, arguments)

    def feed(self, piece: str) -> list[Delta]:
        if not self.tools:
            return self._text(piece)
        self._buffer += piece
        out: list[Delta] = []
        while True:
            if not self._in_calls:
                at = self._buffer.find(CALL_OPEN)
                if at < 0:
                    keep = _partial_suffix(self._buffer, CALL_OPEN)
                    out += self._text(self._buffer[: len(self._buffer) - keep])
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    return out
                out += self._text(self._buffer[:at])
                self._buffer = self._buffer[at:]
                self._in_calls = True
            end = self._buffer.find(CALL_CLOSE)
            if end < 0:
                return out
            block = self._buffer[: end + len(CALL_CLOSE)]
            self._buffer = self._buffer[end + len(CALL_CLOSE) :].lstrip()
            self._in_calls = False
            out += self._block(block)

    def finish(self) -> list[Delta]:
        rest, self._buffer = self._buffer, ""
        if self._in_calls:
            return self._block(rest)
        return self._text(rest)

    def _block(self, block: str) -> list[Delta]:
        body = block[len(CALL_OPEN) :]
        if body.rstrip().endswith(CALL_CLOSE):
            body = body.rstrip()[: -len(CALL_CLOSE)]
        parsed = parse_call(body.strip())
        if parsed is None:
            return self._text(block)
        name, arguments = parsed
        call_id = new_id("call")
        self.calls.append((call_id, name, arguments))
        return [ToolCallDelta(len(self.calls) - 1, arguments, name=name, call_id=call_id)]

    def _text(self, text: str) -> list[Delta]:
        if not text:
            return []
        self.text.append(text)
        return [TextDelta(text)]


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of `text` that could be the start of `marker`."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0
