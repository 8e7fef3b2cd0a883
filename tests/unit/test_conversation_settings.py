"""What a conversation's items set (`core/conversation_settings`), the turn's parameters built from it
(`core/turn_params`) and how the renderers place tools added mid-conversation: no server."""

from __future__ import annotations

from typing import Any

import pytest

from tether.api.errors import APIError
from tether.api.items import normalize_input
from tether.api.request import parse_create
from tether.backends.chat_render import render_items, with_system
from tether.backends.llamacpp.chat_format import ChatTemplate, PromptRenderer
from tether.core.context import EMPTY
from tether.core.conversation_settings import model_view, settings_of, settings_of_items
from tether.core.turn_params import generation_params

RUN = {"type": "function", "name": "run", "description": "Run a command.",
       "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
GREP = {"type": "function", "name": "grep", "description": "Search files.",
        "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}}}
SCHEMA = {"type": "json_schema", "name": "answer", "schema": {"type": "object", "properties": {"x": {}}}}


def items(*raw: Any) -> list[dict[str, Any]]:
    return normalize_input(list(raw))


def request(**body: Any) -> Any:
    return parse_create({"model": "m", **body})


LITE = [
    {"type": "additional_tools", "role": "developer", "tools": [RUN]},
    {"role": "developer", "content": "You are an agent."},
    {"role": "user", "content": "list files"},
]


def test_the_preamble_is_the_leading_run_of_developer_messages_and_tools() -> None:
    settings = settings_of_items(items(*LITE))
    assert settings.leading == 2 and not settings.leading_open
    assert settings.leading_texts == ("You are an agent.",)
    assert [tool.name for tool in settings.leading_tools] == ["run"]
    assert settings.added_tools == ()


def test_lite_and_classic_give_the_same_parameters_and_items() -> None:
    lite_items = items(*LITE)
    lite = generation_params(request(input=LITE), settings_of_items(lite_items))
    classic_items = items({"role": "user", "content": "list files"})
    classic = generation_params(request(instructions="You are an agent.", tools=[RUN], input="list files"),
                                settings_of_items(classic_items))
    assert lite == classic
    assert lite.positional_tools == frozenset()
    lite_view = model_view(lite_items, 0, settings_of_items(lite_items).leading)
    assert [item["content"] for item in lite_view] == [item["content"] for item in classic_items]


def test_tools_added_later_are_offered_but_described_where_they_were_added() -> None:
    context = items(*LITE, {"type": "message", "role": "assistant", "content": "ok"},
                    {"type": "additional_tools", "role": "developer", "tools": [GREP]},
                    {"role": "user", "content": "now search"})
    settings = settings_of_items(context)
    params = generation_params(request(input="x"), settings)
    assert [tool.name for tool in params.tools] == ["run", "grep"]
    assert params.positional_tools == frozenset({"grep"})
    assert [tool.name for tool in params.preamble_tools] == ["run"]
    view = model_view(context, 0, settings.leading)
    assert [item["type"] for item in view] == ["message", "message", "additional_tools", "message"]


def test_a_tool_choice_filters_added_tools_too() -> None:
    context = items({"role": "user", "content": "x"}, {"type": "additional_tools", "role": "developer",
                                                       "tools": [GREP, RUN]})
    settings = settings_of_items(context)
    allowed = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "grep"}]}
    params = generation_params(request(input=context, tool_choice=allowed), settings)
    assert [tool.name for tool in params.tools] == ["grep"]
    assert generation_params(request(input="x", tool_choice="none"), settings).tools == ()


def test_the_latest_configuration_update_sets_the_format_and_effort() -> None:
    context = items(
        {"role": "user", "content": "x"},
        {"type": "configuration_update", "text": {"format": SCHEMA}, "reasoning": {"effort": "high"}},
        {"role": "user", "content": "y"},
        {"type": "configuration_update", "reasoning": {"effort": "low"}},
    )
    params = generation_params(request(input="x", reasoning={"effort": "medium"}), settings_of_items(context))
    assert params.json_schema == SCHEMA["schema"]
    assert params.reasoning_effort == "low"
    back_to_text = items(*context, {"type": "configuration_update", "text": {"format": {"type": "text"}}})
    params = generation_params(request(input="x", text={"format": SCHEMA}), settings_of_items(back_to_text))
    assert params.json_schema is None
    # Without updates, the request's own settings.
    params = generation_params(request(input="x", text={"format": SCHEMA}, reasoning={"effort": "medium"}))
    assert params.json_schema == SCHEMA["schema"] and params.reasoning_effort == "medium"


def test_settings_folded_along_a_chain_equal_those_of_the_whole_list() -> None:
    turns = [items(*LITE), items({"type": "message", "role": "assistant", "content": "ok"}),
             items({"type": "additional_tools", "role": "developer", "tools": [GREP]},
                   {"type": "configuration_update", "reasoning": {"effort": "high"}})]
    context = EMPTY
    for turn in turns:
        context = context.extend(turn)
        settings_of(context)  # folded per node, as a continuation would
    whole = settings_of_items([item for turn in turns for item in turn])
    assert settings_of(context) == whole
    # A chain nobody folded yet (one rebuilt from the store) folds to the same.
    fresh = EMPTY
    for turn in turns:
        fresh = fresh.extend(turn)
    assert settings_of(fresh) == whole


def test_hidden_items_never_reach_a_backend() -> None:
    context = items({"role": "user", "content": "x"}, {"type": "configuration_update", "reasoning": {"effort": "low"}},
                    {"type": "compaction_trigger"})
    assert [item["type"] for item in model_view(context, 0, 0)] == ["message"]


def test_upstream_messages_keep_their_prefix_when_tools_are_added() -> None:
    first = items({"role": "user", "content": "list files"})
    params = generation_params(request(instructions="sys", tools=[RUN], input="x"), settings_of_items(first))
    before: list[dict[str, Any]] = []
    render_items(before, first)
    later = items({"type": "additional_tools", "role": "developer", "tools": [GREP]},
                  {"role": "user", "content": "search"})
    after = list(before)
    render_items(after, later)
    assert after[: len(before)] == before
    note = after[len(before)]
    assert note["role"] == "system" and '"name":"grep"' in note["content"]
    assert with_system(after, params.instructions)[0] == {"role": "system", "content": "sys"}


# ChatML (tools described in the system message) and a template that takes `tools=` natively.
NATIVE_TOOLS = ("{% if tools %}[tools {{ tools|map(attribute='function.name')|join(',') }}]{% endif %}"
                "{% for m in messages %}<{{m.role}}>{{m.content}}{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.mark.parametrize("template", [None, NATIVE_TOOLS])
def test_the_llamacpp_prompt_before_an_added_tool_is_unchanged(template: str | None) -> None:
    """The embedded engine re-prefills nothing: the new prompt extends the old one's text."""
    renderer = PromptRenderer(ChatTemplate(template))
    first = items({"role": "user", "content": "list files"})
    base = request(instructions="sys", tools=[RUN], input="x")
    text_before = renderer.render(first, generation_params(base, settings_of_items(first)))
    context = [*first, *items({"type": "message", "role": "assistant", "content": "done"},
                              {"type": "additional_tools", "role": "developer", "tools": [GREP]},
                              {"role": "user", "content": "search"})]
    settings = settings_of_items(context)
    text_after = renderer.render(model_view(context, 0, settings.leading), generation_params(base, settings))
    # The first prompt ends with the generation prompt, which the answer continued: all of it is kept.
    assert text_after.startswith(text_before)
    assert "grep" in text_after[len(text_before):] and "grep" not in text_before


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "additional_tools", "role": "user", "tools": []}, "input[0].role"),
        ({"type": "additional_tools", "role": "developer"}, "input[0].tools"),
        ({"type": "additional_tools", "role": "developer", "tools": [{"type": "function", "name": "bad name"}]},
         "input[0].tools[0].name"),
        ({"type": "configuration_update", "reasoning": {"effort": "extreme"}}, "input[0].reasoning.effort"),
        ({"type": "configuration_update", "text": {"format": {"type": "json_object"}}}, "input[0].text.format.type"),
        ({"type": "configuration_update", "text": {"format": {"type": "json_schema", "name": "x"}}},
         "input[0].text.format.schema"),
        ({"type": "configuration_update", "text": "json"}, "input[0].text"),
        ({"role": "user", "content": [{"type": "input_text", "text": "x",
                                       "prompt_cache_breakpoint": {"mode": "auto"}}]},
         "input[0].content[0].prompt_cache_breakpoint.mode"),
        ({"role": "user", "content": [{"type": "input_text", "text": "x",
                                       "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "1h"}}]},
         "input[0].content[0].prompt_cache_breakpoint.ttl"),
    ],
)
def test_bad_items_name_their_param(item: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_create({"model": "m", "input": [item]})
    assert caught.value.status == 400 and caught.value.param == param


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ("prewarm", "prompt_cache_options"),
        ({"mode": "always"}, "prompt_cache_options.mode"),
        ({"ttl": "24h"}, "prompt_cache_options.ttl"),
        ({"prewarm": "yes"}, "prompt_cache_options.prewarm"),
        ({"comparison_response_id": 7}, "prompt_cache_options.comparison_response_id"),
    ],
)
def test_bad_prompt_cache_options_name_their_param(options: Any, param: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_create({"model": "m", "input": "x", "prompt_cache_options": options})
    assert caught.value.status == 400 and caught.value.param == param


def test_prewarm_overrides_generate_over_http_too() -> None:
    parsed = parse_create({"model": "m", "input": "x", "prompt_cache_options": {"prewarm": True, "ttl": "12h"}})
    assert parsed.generate is False
    assert parsed.prompt_cache_options.echo() == {"mode": "implicit", "ttl": "12h", "comparison_response_id": None}
