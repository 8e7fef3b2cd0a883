"""The bracket count that lets a small frame skip the nesting walk: it must never let a too-deep value
through, at the limit, one past it, and with brackets hidden in strings."""

from __future__ import annotations

import random

import orjson
import pytest

from tether.api.client_events import CreateEvent, InvalidEvent, decode_client_event
from tether.api.nesting import COUNTED_CHARS, MAX_JSON_DEPTH, fits_by_bracket_count, too_deep


def nested(depth: int) -> object:
    """`depth` levels: alternately arrays and objects."""
    value: object = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("as_bytes", [False, True])
def test_the_limit_fits_and_one_more_level_does_not(as_bytes: bool) -> None:
    for depth, fits in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)):
        text = orjson.dumps(nested(depth))
        assert fits_by_bracket_count(text if as_bytes else text.decode()) is fits
        assert (too_deep(nested(depth)) is None) is fits


def test_the_count_never_passes_what_the_walk_refuses() -> None:
    rng = random.Random(7)
    for _ in range(300):
        depth = rng.randint(1, 2 * MAX_JSON_DEPTH)
        body = {"type": "response.create", "model": "m", "input": nested(depth),
                "tools": [{"p": "[" * rng.randint(0, 40)}]}
        text = orjson.dumps(body).decode()
        if fits_by_bracket_count(text):
            assert too_deep(body) is None, depth


def test_brackets_inside_strings_fall_back_to_the_walk() -> None:
    """Many brackets in a string: the count cannot vouch for the frame, the walk accepts it."""
    text = orjson.dumps({"type": "response.create", "model": "m", "input": "[" * 500}).decode()
    assert not fits_by_bracket_count(text)
    event = decode_client_event(text, 0.0)
    assert isinstance(event, CreateEvent) and event.error is None


@pytest.mark.parametrize("kind", ["response.create", "response.steer"])
def test_a_frame_one_level_too_deep_is_still_refused(kind: str) -> None:
    field = "input"
    body = {"type": kind, "model": "m", "previous_response_id": "resp_1", field: [nested(MAX_JSON_DEPTH - 1)]}
    event = decode_client_event(orjson.dumps(body).decode(), 0.0)
    error = event.error if isinstance(event, (CreateEvent, InvalidEvent)) else None
    assert error is not None and error.param is not None and error.param.startswith("input")
    assert "nested more than" in error.message


def test_a_long_text_is_left_to_the_walk() -> None:
    text = orjson.dumps({"type": "response.create", "model": "m", "input": "x" * COUNTED_CHARS}).decode()
    assert not fits_by_bracket_count(text)
    event = decode_client_event(text, 0.0)
    assert isinstance(event, CreateEvent) and event.error is None
