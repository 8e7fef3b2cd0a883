"""Prompt-cache controls a client sends: `prompt_cache_options` on a create and `prompt_cache_breakpoint`
on input content parts (openai 3.57).

tether's engines keep a conversation's whole prefix (a live session, a KV sequence, a pinned replica),
so breakpoints and the implicit/explicit `mode` change nothing in what is reused: they are validated,
kept as sent (a breakpoint stays on its content part, in the stored input items too) and echoed.
`prewarm: true` prepares the prompt without generating, as `generate: false` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import invalid
from .values import is_one_of, shown

MODES = ("implicit", "explicit")
TTLS = ("30m", "12h")
DEFAULT_MODE = "implicit"
DEFAULT_TTL = "30m"
#: content parts that may mark the end of a reusable prefix
BREAKPOINT_PARTS = frozenset({"input_text", "input_image", "input_file"})


@dataclass(frozen=True, slots=True)
class PromptCacheOptions:
    mode: str = DEFAULT_MODE
    ttl: str = DEFAULT_TTL
    prewarm: bool = False
    comparison_response_id: str | None = None

    def echo(self) -> dict[str, Any]:
        """The Response's `prompt_cache_options`: the options applied (`prewarm` is not echoed: the SDK
        model has no such field)."""
        return {"mode": self.mode, "ttl": self.ttl, "comparison_response_id": self.comparison_response_id}


def _choice(raw: dict[str, Any], key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not is_one_of(value, choices):
        supported = ", ".join(f"'{choice}'" for choice in choices)
        raise invalid(f"Invalid value for '{where}.{key}': {shown(value)}. Supported values are: {supported}.",
                      f"{where}.{key}")
    return str(value)


def parse_prompt_cache_options(raw: Any, param: str = "prompt_cache_options") -> PromptCacheOptions:
    """The options of a create body (the defaults when absent or null)."""
    if raw is None:
        return PromptCacheOptions()
    if not isinstance(raw, dict):
        raise invalid(f"Invalid '{param}': expected an object.", param)
    prewarm = raw.get("prewarm")
    if prewarm is not None and not isinstance(prewarm, bool):
        raise invalid(f"Invalid type for '{param}.prewarm': expected a boolean.", f"{param}.prewarm")
    comparison = raw.get("comparison_response_id")
    if comparison is not None and (not isinstance(comparison, str) or not comparison):
        raise invalid(f"Invalid '{param}.comparison_response_id': expected a response id.",
                      f"{param}.comparison_response_id")
    return PromptCacheOptions(
        mode=_choice(raw, "mode", MODES, DEFAULT_MODE, param),
        ttl=_choice(raw, "ttl", TTLS, DEFAULT_TTL, param),
        prewarm=bool(prewarm),
        comparison_response_id=comparison,
    )


def check_breakpoint(part: dict[str, Any], where: str) -> None:
    """A content part's `prompt_cache_breakpoint`, when it has one: `{mode: "explicit", ttl?}`."""
    breakpoint_ = part.get("prompt_cache_breakpoint")
    if breakpoint_ is None:
        return
    param = f"{where}.prompt_cache_breakpoint"
    if not is_one_of(part.get("type"), BREAKPOINT_PARTS):
        raise invalid(f"Invalid '{param}': only input text, image and file parts can carry a cache breakpoint.",
                      param)
    if not isinstance(breakpoint_, dict):
        raise invalid(f"Invalid '{param}': expected an object.", param)
    if breakpoint_.get("mode") != "explicit":
        raise invalid(f"Invalid value for '{param}.mode': {shown(breakpoint_.get('mode'))}. Supported values are: "
                      "'explicit'.", f"{param}.mode")
    if breakpoint_.get("ttl") is not None:
        _choice(breakpoint_, "ttl", TTLS, DEFAULT_TTL, param)
