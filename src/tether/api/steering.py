"""`response.steer` input: what may steer a response (user messages only), validated into items."""

from __future__ import annotations

from typing import Any

from .errors import APIError, invalid
from .items import Item, normalize_input

ALLOWED_PARTS = ("input_text", "input_image", "input_file")


def parse_steer_input(value: Any) -> list[Item]:
    """A string, or a non-empty array of user messages (`type`, `role`, `content` only)."""
    if isinstance(value, str):
        if not value:
            raise invalid("Steering input must not be empty.", "input", code="invalid_input")
        return normalize_input(value)
    if not isinstance(value, list) or not value:
        raise invalid("Steering input must be a string or a non-empty array of user messages.", "input",
                      code="invalid_input")
    for index, entry in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(entry, dict) or entry.get("role") != "user" or entry.get("type", "message") != "message":
            raise invalid(f"Invalid '{where}': steering accepts only messages with the 'user' role.", where,
                          code="invalid_input")
        if set(entry) - {"type", "role", "content"}:
            raise invalid(f"Invalid '{where}': a steering message may hold only 'type', 'role' and 'content'.",
                          where, code="invalid_input")
        content = entry.get("content")
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in ALLOWED_PARTS:
                    raise invalid(
                        f"Invalid '{where}.content[{part_index}]': steering content parts are "
                        "'input_text', 'input_image' or 'input_file'.",
                        f"{where}.content[{part_index}]", code="invalid_input",
                    )
    try:
        return normalize_input(value)
    except APIError as exc:
        raise invalid(exc.message, exc.param, code="invalid_input") from None
