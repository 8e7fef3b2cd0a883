"""The one limit on how deeply a request's JSON may nest, for HTTP bodies and WebSocket frames alike.

orjson reads 1,024 levels but writes only 254, and every value a client sends may be written back
out (the Response echoes `tools` and `text`, input items are stored and listed, events wrap the
response two levels deeper). A request nested past what can be written would fail after the work
was done, as a 500 or a cut stream. So deeper input is refused up front, with a 400 that names the
field. 64 levels is far beyond any real JSON Schema or tool-call payload, and leaves the writer and
recursive consumers (schema-to-grammar conversion, pydantic) a wide margin.
"""

from __future__ import annotations

from typing import Any

from .errors import invalid

MAX_JSON_DEPTH = 64
PATH_SHOWN_CHARS = 160

PathPart = str | int


def too_deep(value: Any, depth: int = 1, limit: int = MAX_JSON_DEPTH) -> tuple[PathPart, ...] | None:
    """The path to the first array or object of `value` that sits deeper than `limit` levels, where
    `value` itself sits at level `depth` (a body is level 1); None when all of it fits.

    Iterative, so a value nested thousands deep cannot exhaust the interpreter's stack; only the
    containers are visited, so the walk costs little next to parsing the JSON."""
    # Each entry: (container, its level, the entry it sits in, its key there): the path is rebuilt
    # only on failure, so the common case allocates one tuple per container and no strings.
    stack: list[tuple[Any, int, Any, PathPart]] = []
    if isinstance(value, (dict, list)):
        stack.append((value, depth, None, ""))
    while stack:
        entry = stack.pop()
        container, level, _, _ = entry
        if level > limit:
            return _path_of(entry)
        children = container.items() if isinstance(container, dict) else enumerate(container)
        for key, child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, level + 1, entry, key))
    return None


#: longer texts are not counted: they (a Codex turn re-sending its tools) hold more brackets anyway
COUNTED_CHARS = 16 * 1024


def fits_by_bracket_count(text: str | bytes) -> bool:
    """Whether JSON `text` cannot nest deeper than `MAX_JSON_DEPTH`, judged by counting its opening
    brackets (each level opens one, so a depth never exceeds the count; brackets inside strings only
    make the count larger). Two scans in C: a small agent turn's frame skips the walk of `too_deep`.
    False for a text longer than `COUNTED_CHARS` (the walk decides)."""
    if len(text) > COUNTED_CHARS:
        return False
    if isinstance(text, str):
        return text.count("{") + text.count("[") <= MAX_JSON_DEPTH
    return text.count(b"{") + text.count(b"[") <= MAX_JSON_DEPTH


def _path_of(entry: tuple[Any, int, Any, PathPart]) -> tuple[PathPart, ...]:
    parts: list[PathPart] = []
    node: Any = entry
    while node is not None and node[2] is not None:
        parts.append(node[3])
        node = node[2]
    return tuple(reversed(parts))


def join_path(parts: tuple[PathPart, ...], base: str = "") -> str:
    """`('input', 3, 'content')` as `input[3].content`, the API's way of naming a parameter."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def refuse_deep_nesting(body: Any, text: str | bytes | None = None) -> None:
    """Raise a 400 when a request body (or a WebSocket frame) nests deeper than `MAX_JSON_DEPTH`.
    `text`, the JSON `body` was parsed from when the caller has it, spares the walk when its bracket
    count shows the limit cannot be crossed (`fits_by_bracket_count`).

    `param` names the top-level field, with the element when the field is an array of objects
    (`input[3]`, `tools[0]`): the parameter a client wrote, not a path as long as the limit. The
    message shows where inside it the limit was crossed."""
    if text is not None and fits_by_bracket_count(text):
        return
    path = too_deep(body)
    if path is None:
        return
    head = path[:1]
    if len(path) >= 2 and isinstance(path[1], int) and isinstance(body[path[0]][path[1]], dict):
        head = path[:2]
    param = join_path(head) or None
    where = join_path(path)
    if len(where) > PATH_SHOWN_CHARS:
        where = where[:PATH_SHOWN_CHARS] + "..."
    raise invalid(
        f"Invalid '{param or 'body'}': JSON nested more than {MAX_JSON_DEPTH} levels deep (at {where}); "
        f"this server accepts at most {MAX_JSON_DEPTH} levels of nesting.",
        param,
    )
