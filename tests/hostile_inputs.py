"""Inputs that once broke tether (issue 10), shared by the HTTP and WebSocket hardening tests: each
case with the `param` its 400 must name."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from tether.api.compaction import BLOB_PREFIX, MAX_INFLATED_BYTES


def deep_array(levels: int) -> str:
    """`levels` nested arrays as JSON text: Python's encoder cannot write what must be refused."""
    return "[" * levels + "1" + "]" * levels


def blob(payload: bytes) -> str:
    return BLOB_PREFIX + base64.b64encode(zlib.compress(payload)).decode()


def bomb() -> str:
    """A blob of a few tens of kilobytes that inflates to one byte past the cap."""
    return blob(b'["' + b"a" * MAX_INFLATED_BYTES + b'"]')


# Values of the wrong, unhashable type where a membership check looks; falsy values that are not null.
UNHASHABLE: list[tuple[dict[str, Any], str]] = [
    ({"include": [[]]}, "include[0]"),
    ({"service_tier": [1]}, "service_tier"),
    ({"reasoning": {"effort": []}}, "reasoning.effort"),
    ({"reasoning": {"summary": {}}}, "reasoning.summary"),
    ({"truncation": {}}, "truncation"),
    ({"text": {"format": {"type": []}}}, "text.format.type"),
    ({"text": {"verbosity": [1]}}, "text.verbosity"),
    ({"input": [{"type": []}]}, "input[0].type"),
    ({"input": [{"type": "message", "role": [], "content": "x"}]}, "input[0].role"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": []}]}]}, "input[0].content[0].type"),
    ({"input": [{"type": "message", "role": "user", "content": "x", "id": []}]}, "input[0].id"),
    ({"input": [{"type": "message", "role": "user", "content": "x", "status": {}}]}, "input[0].status"),
    ({"input": [{"type": "web_search_call", "id": {"a": 1}}]}, "input[0].id"),
    ({"tools": [{"type": []}]}, "tools[0].type"),
    ({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": [], "name": "f"}]}]}, "tools[0].tools[0].type"),
    ({"tool_choice": {"type": []}}, "tool_choice.type"),
    ({"tool_choice": {"type": "function", "name": {}}, "tools": [{"type": "function", "name": "f"}]}, "tool_choice"),
    ({"tool_choice": {"type": "allowed_tools", "mode": [], "tools": []}}, "tool_choice.mode"),
    ({"tool_choice": {"type": "allowed_tools", "tools": [{"type": "function", "name": []}]},
      "tools": [{"type": "function", "name": "f"}]}, "tool_choice.tools[0].name"),
    ({"tool_choice": {"type": "allowed_tools", "tools": 5}}, "tool_choice.tools"),
    # Falsy, but not null: a mistake, not the default.
    ({"truncation": []}, "truncation"),
    ({"service_tier": 0}, "service_tier"),
    ({"text": {"format": []}}, "text.format"),
    ({"stream_options": {"include_obfuscation": []}}, "stream_options.include_obfuscation"),
]


# Nesting past the limit: as JSON text, a top-level field and the param of its 400.
DEEP = [
    ('"truncation": ' + deep_array(1000), "truncation"),
    ('"text": {"format": {"type": ' + deep_array(1000) + "}}", "text"),
    ('"reasoning": {"summary": ' + deep_array(1000) + "}", "reasoning"),
    ('"tool_choice": {"type": "function", "name": ' + deep_array(1000) + "}", "tool_choice"),
    ('"text": {"format": {"type": "json_schema", "name": "s", "schema": {"a": ' + deep_array(300) + "}}}", "text"),
    ('"tools": [{"type": "function", "name": "f", "parameters": {"a": ' + deep_array(300) + "}}]", "tools[0]"),
    ('"input": [{"type": "web_search_call", "action": ' + deep_array(300) + "}]", "input[0]"),
    ('"metadata": {"k": ' + deep_array(70) + "}", "metadata"),
    ('"future_field": ' + deep_array(200), "future_field"),
]


# Compaction blobs that are not what tether made, or not valid input once decoded.
BAD_BLOBS = [
    blob(b"[1]"),
    blob(b'[{"foo": 1}]'),
    blob(b'[{"type": "message", "role": "user", "content": 5}]'),
    blob(b'[{"type": "message", "role": "user", "content": "x", "id": [1]}]'),
    blob(b'{"not": "a list"}'),
    blob(b"not json"),
    blob(("[" + '{"type": "web_search_call", "action": ' + deep_array(300) + "}]").encode()),
    BLOB_PREFIX + "not base64!",
    BLOB_PREFIX + base64.b64encode(b"not zlib").decode(),
    BLOB_PREFIX + base64.b64encode(zlib.compress(b'[{"type": "message"}]')[:-6]).decode(),  # truncated stream
]
