"""`prompt_cache_diagnostics` verdicts from the pure functions of `core/cache_diagnostics` (no server).

Every diagnostics object is also parsed with the SDK's own `PromptCacheDiagnostics` union, so the shape
is the public one."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses.response import PromptCacheDiagnostics
from pydantic import TypeAdapter

from tether.api.items import normalize_input
from tether.api.request import parse_create
from tether.api.response import request_echo
from tether.core.cache_diagnostics import (
    COMPARISON_NOT_FOUND,
    UNAVAILABLE,
    Baseline,
    CacheVerdict,
    judge,
    prompt_settings,
    settings_divergence,
)

SDK_DIAGNOSTICS: TypeAdapter[Any] = TypeAdapter(PromptCacheDiagnostics)
TOOL = {"type": "function", "name": "run", "parameters": {"type": "object", "properties": {}}}
SCHEMA = {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}


def echo(**body: Any) -> dict[str, Any]:
    """The settings a Response of this create body echoes."""
    return dict(request_echo(parse_create({"model": "m", "input": "hi", **body})).fields)


def sdk_checked(diagnostics: dict[str, Any]) -> dict[str, Any]:
    model = SDK_DIAGNOSTICS.validate_python(diagnostics)
    assert model.model_dump(exclude_none=True) == diagnostics
    return diagnostics


def test_a_continuation_with_the_same_settings_hits() -> None:
    verdict = judge(Baseline(echo(tools=[TOOL])), echo(tools=[TOOL]))
    assert verdict == CacheVerdict("cache_hit")
    assert sdk_checked(verdict.diagnostics(120)) == {"type": "cache_hit"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model": "other"}, "model_changed"),
        ({"prompt_cache_key": "k2"}, "prompt_cache_key_changed"),
        ({"tools": []}, "tools_changed"),
        ({"text": {"format": SCHEMA}}, "text_format_changed"),
        ({"reasoning": {"effort": "high"}}, "reasoning_effort_changed"),
        ({"text": {"verbosity": "low"}}, "verbosity_changed"),
        ({"instructions": "Be terse."}, "input_changed"),
        ({"service_tier": "flex"}, "service_tier_changed"),
    ],
)
def test_each_setting_that_shapes_the_prompt_is_a_miss_of_the_whole_prompt(change: dict[str, Any], reason: str) -> None:
    base = {"tools": [TOOL], "prompt_cache_key": "k1", "reasoning": {"effort": "low"}}
    verdict = judge(Baseline(echo(**base)), echo(**{**base, **change}))
    assert verdict.type == "cache_miss" and verdict.reason == reason
    # The divergence is before the first item: the whole prompt is affected.
    assert sdk_checked(verdict.diagnostics(300)) == {"type": "cache_miss", "reason": reason, "cache_missed_tokens": 300}


def test_the_first_divergence_in_prompt_order_is_the_reason() -> None:
    before = prompt_settings(echo(tools=[TOOL]))
    assert settings_divergence(before, prompt_settings(echo(tools=[TOOL]))) is None
    assert settings_divergence(before, prompt_settings(echo(model="x", tools=[]))) == "model_changed"
    verdict = judge(Baseline(echo(tools=[TOOL])), echo(model="x", tools=[], service_tier="flex"))
    assert verdict.reason == "model_changed"
    verdict = judge(Baseline(echo(tools=[TOOL])), echo(tools=[], service_tier="flex"))
    assert verdict.reason == "tools_changed"


def test_nothing_to_compare_with_is_unavailable() -> None:
    assert judge(None, echo()) is UNAVAILABLE
    # A record without the echoed settings (not a Response object) cannot be compared either.
    assert judge(Baseline({"id": "resp_1", "output": []}), echo()) is UNAVAILABLE
    assert sdk_checked(UNAVAILABLE.diagnostics(10)) == {"type": "unavailable"}
    assert sdk_checked(COMPARISON_NOT_FOUND.diagnostics(10)) == {"type": "comparison_response_not_found"}


def items(*raw: Any) -> list[dict[str, Any]]:
    return normalize_input(list(raw))


USER_A = {"role": "user", "content": "first question"}
ANSWER = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "an answer"}]}
USER_B = {"role": "user", "content": "second question"}


def test_an_explicit_comparison_whose_context_the_new_one_extends_hits() -> None:
    before = items(USER_A, ANSWER)
    now = items(USER_A, ANSWER, USER_B)  # re-sent history: new ids, same content
    verdict = judge(Baseline(echo(), before), echo(), now)
    assert verdict == CacheVerdict("cache_hit", explicit=True)


def test_an_explicit_comparison_diverging_mid_context_reports_the_reusable_prefix() -> None:
    before = items(USER_A, ANSWER, USER_B)
    now = items(USER_A, {"role": "user", "content": "a different turn"})
    verdict = judge(Baseline(echo(), before), echo(), now)
    assert verdict.type == "cache_miss" and verdict.reason == "input_changed"
    assert [item["content"][0]["text"] for item in verdict.prefix] == ["first question"]
    assert verdict.needs_prefix_tokens
    assert sdk_checked(verdict.diagnostics(100, 30)) == {
        "type": "cache_miss", "reason": "input_changed", "cache_missed_tokens": 70, "comparison_reusable_tokens": 30,
    }


def test_a_foreign_compaction_item_in_place_of_the_history_is_context_compacted() -> None:
    before = items(USER_A, ANSWER, USER_B)
    compaction = {"type": "compaction", "id": "cmp_other", "encrypted_content": "opaque-from-elsewhere"}
    now = items(USER_A, compaction, {"role": "user", "content": "next"})
    verdict = judge(Baseline(echo(), before), echo(), now)
    assert verdict.reason == "context_compacted"
    assert sdk_checked(verdict.diagnostics(40, 10))["cache_missed_tokens"] == 30


def test_the_lite_shape_compares_equal_to_the_classic_shape() -> None:
    instructions = "You are a coding agent."
    classic = Baseline(echo(instructions=instructions, tools=[TOOL]), items(USER_A))
    lite_items = items(
        {"type": "additional_tools", "role": "developer", "tools": [TOOL]},
        {"role": "developer", "content": instructions},
        USER_A,
        USER_B,
    )
    verdict = judge(classic, echo(), lite_items)
    assert verdict == CacheVerdict("cache_hit", explicit=True)
    # ...and a different tool in the Lite preamble is a tools change, as it would be top-level.
    other = {**TOOL, "name": "other"}
    changed = items({"type": "additional_tools", "role": "developer", "tools": [other]},
                    {"role": "developer", "content": instructions}, USER_A)
    assert judge(classic, echo(), changed).reason == "tools_changed"


def test_settings_items_in_the_context_are_no_miss() -> None:
    """A configuration_update or an additional_tools item leaves the prefix as it was."""
    before = items(USER_A, ANSWER)
    now = items(
        USER_A, ANSWER,
        {"type": "configuration_update", "text": {"format": SCHEMA}, "reasoning": {"effort": "high"}},
        {"type": "additional_tools", "role": "developer", "tools": [TOOL]},
        USER_B,
    )
    assert judge(Baseline(echo(), before), echo(), now).type == "cache_hit"
