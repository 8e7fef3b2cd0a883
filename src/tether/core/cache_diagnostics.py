"""`prompt_cache_diagnostics`: why a turn's prompt could or could not reuse the cached prompt of the
response it is compared with (its parent, or `prompt_cache_options.comparison_response_id`). Pure
functions over the two responses' echoed settings and, for an explicit comparison, their contexts.

The verdict follows the public API's rules, so a client reads the same answer from tether as from
OpenAI: a prompt is reusable up to its first divergence. The settings that shape the prompt come first,
in the API's order (model, prompt_cache_key, tools, text format, reasoning effort, verbosity); then
the prompt itself (instructions, then the items the model reads); then the service tier. A continuation
of its parent (`previous_response_id`) extends the parent's context by construction, so only the
settings can make it miss. Settings a `configuration_update` item changes, and tools an
`additional_tools` item adds, leave the prefix as it was: they are no miss. `cache_missed_tokens` is
the turn's prompt after the divergence; what the engine really served from its cache is
`usage.input_tokens_details.cached_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..api.items import Item, item_text
from .conversation_settings import model_view, settings_of_items

MISS_REASONS = (
    "model_changed",
    "prompt_cache_key_changed",
    "tools_changed",
    "text_format_changed",
    "reasoning_effort_changed",
    "verbosity_changed",
    "context_compacted",
    "input_changed",
    "service_tier_changed",
)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The response a turn is compared with: its Response object (or stored record) for the settings it
    echoed; for an explicit comparison, also its whole context (input and output, oldest first)."""

    response: Mapping[str, Any]
    context: Sequence[Item] | None = None

    @property
    def explicit(self) -> bool:
        return self.context is not None


@dataclass(frozen=True, slots=True)
class CacheVerdict:
    """The diagnosis, before the turn's token counts are known. `prefix` holds the items the model reads
    before an input divergence (their tokens are the reusable part)."""

    type: str
    reason: str | None = None
    prefix: tuple[Item, ...] = ()
    explicit: bool = False

    @property
    def needs_prefix_tokens(self) -> bool:
        return self.type == "cache_miss" and self.reason in ("input_changed", "context_compacted") and bool(self.prefix)

    def diagnostics(self, input_tokens: int, prefix_tokens: int = 0) -> dict[str, Any]:
        """The Response's `prompt_cache_diagnostics` for a prompt of `input_tokens`, `prefix_tokens` of
        them before the divergence."""
        if self.type != "cache_miss":
            return {"type": self.type}
        reusable = min(prefix_tokens, input_tokens)
        out: dict[str, Any] = {
            "type": "cache_miss",
            "reason": self.reason,
            "cache_missed_tokens": max(0, input_tokens - reusable),
        }
        if self.explicit:
            out["comparison_reusable_tokens"] = reusable
        return out


UNAVAILABLE = CacheVerdict("unavailable")
#: the verdict of almost every agent turn, made once
CACHE_HIT = CacheVerdict("cache_hit")
CACHE_HIT_EXPLICIT = CacheVerdict("cache_hit", explicit=True)
COMPARISON_NOT_FOUND = CacheVerdict("comparison_response_not_found")


def _field(response: Mapping[str, Any], key: str, inner: str | None = None) -> Any:
    value = response.get(key)
    if inner is None:
        return value
    return value.get(inner) if isinstance(value, dict) else None


#: (reason, setting) in the order a divergence is looked for: what opens the prompt first
SETTINGS = (
    ("model_changed", "model"),
    ("prompt_cache_key_changed", "prompt_cache_key"),
    ("tools_changed", "tools"),
    ("text_format_changed", "text_format"),
    ("reasoning_effort_changed", "reasoning_effort"),
    ("verbosity_changed", "verbosity"),
    ("input_changed", "instructions"),
)
#: echoed settings a Response must carry to be compared at all (a record without them: `unavailable`)
REQUIRED_FIELDS = ("model", "tools", "text")


def prompt_settings(response: Mapping[str, Any], context: Sequence[Item] | None = None) -> dict[str, Any]:
    """The settings that shape a prompt, from a Response's echo. With its `context`, the preamble of
    the conversation counts as what it renders as: its system and developer messages as instructions,
    its `additional_tools` as tools (so the "Responses Lite" shape compares equal to the classic one)."""
    tools = list(response.get("tools") or [])
    instructions = [response["instructions"]] if response.get("instructions") else []
    if context is not None:
        for item in context[: settings_of_items(context).leading]:
            if item.get("type") == "additional_tools":
                tools.extend(item.get("tools") or [])
            elif item.get("type") == "message":
                instructions.append(item_text(item))
    return {
        "model": response.get("model"),
        "prompt_cache_key": response.get("prompt_cache_key"),
        "tools": tools,
        "text_format": _field(response, "text", "format"),
        "reasoning_effort": _field(response, "reasoning", "effort"),
        "verbosity": _field(response, "text", "verbosity"),
        "instructions": instructions,
        "service_tier": response.get("service_tier"),
    }


def settings_divergence(before: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """The first setting (of `prompt_settings`) that shapes the prompt and differs, as a miss reason
    (other instructions: `input_changed`, they open the prompt); None when all match."""
    for reason, key in SETTINGS:
        if before.get(key) != now.get(key):
            return reason
    return None


def _item_key(item: Item) -> bytes:
    """What the model reads of an item (not its id: re-sent history matches)."""
    return orjson.dumps([item.get("type"), item.get("role"), item.get("name"), item.get("call_id"), item_text(item)])


def _seen_by_model(context: Sequence[Item]) -> list[Item]:
    return model_view(context, 0, settings_of_items(context).leading)


def _compaction_ids(context: Sequence[Item]) -> set[Any]:
    return {item.get("id") for item in context if item.get("type") == "compaction"}


def judge(baseline: Baseline | None, now: Mapping[str, Any], context: Sequence[Item] | None = None) -> CacheVerdict:
    """The verdict for a turn whose Response echoes `now` and whose whole context is `context` (needed
    only for an explicit comparison), against `baseline` (None: nothing to compare with)."""
    if baseline is None or any(key not in baseline.response for key in REQUIRED_FIELDS):
        return UNAVAILABLE
    explicit = baseline.explicit and context is not None
    before = prompt_settings(baseline.response, baseline.context if explicit else None)
    after = prompt_settings(now, context if explicit else None)
    reason = settings_divergence(before, after)
    if reason is not None:
        return CacheVerdict("cache_miss", reason, explicit=explicit)
    if explicit and baseline.context is not None and context is not None:
        verdict = _context_divergence(baseline.context, context)
        if verdict is not None:
            return verdict
    if before["service_tier"] != after["service_tier"]:
        return CacheVerdict("cache_miss", "service_tier_changed", explicit=explicit)
    return CACHE_HIT_EXPLICIT if explicit else CACHE_HIT


def _context_divergence(before: Sequence[Item], now: Sequence[Item]) -> CacheVerdict | None:
    """A miss where the first item the model reads differs (None when one context extends the other)."""
    seen_before, seen_now = _seen_by_model(before), _seen_by_model(now)
    common = 0
    for old, new in zip(seen_before, seen_now, strict=False):
        if _item_key(old) != _item_key(new):
            break
        common += 1
    if common == min(len(seen_before), len(seen_now)):
        return None  # one is a prefix of the other: the whole shorter prompt is reusable
    compacted = bool(_compaction_ids(now) - _compaction_ids(before))
    reason = "context_compacted" if compacted else "input_changed"
    return CacheVerdict("cache_miss", reason, prefix=tuple(seen_now[:common]), explicit=True)
