"""A turn's `GenerationParams`: the request's own settings combined with what its conversation set.

- tools: the request's `tools`, the preamble's `additional_tools`, then those added later in the
  conversation (the later ones marked `positional_tools`: rendered at their item); `tool_choice`
  filters them all;
- instructions: the request's `instructions`, then the preamble's system and developer messages;
- text format and reasoning effort: the latest `configuration_update` in the context, else the request's.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api.items import Item
from ..api.request import CreateRequest
from ..api.settings_values import format_schema
from ..api.tools import OfferedTool
from ..backends.base import GenerationParams
from .conversation_settings import NO_SETTINGS, ConversationSettings, model_view, settings_of_items


def _unique(tools: Iterable[OfferedTool]) -> tuple[OfferedTool, ...]:
    """The first definition of each name: a tool offered again later is still the one tool."""
    seen: set[str] = set()
    out: list[OfferedTool] = []
    for tool in tools:
        if tool.name not in seen:
            seen.add(tool.name)
            out.append(tool)
    return tuple(out)


def generation_params(request: CreateRequest, settings: ConversationSettings = NO_SETTINGS) -> GenerationParams:
    preamble = _unique((*request.offered_tools, *settings.leading_tools))
    offered = _unique((*preamble, *settings.added_tools))
    up_front = {tool.name for tool in preamble}
    choice = request.tool_choice
    if choice.allowed is not None:
        offered = tuple(tool for tool in offered if tool.name in choice.allowed)
    if choice.mode == "none":
        offered = ()
    texts = [text for text in (request.instructions, *settings.leading_texts) if text]
    fmt = settings.format_update if settings.format_update is not None else request.text.get("format")
    effort = (request.reasoning or {}).get("effort")
    if settings.effort_update is not None:
        effort = settings.effort_update[0]
    return GenerationParams(
        model=request.model,
        instructions="\n\n".join(texts) if texts else None,
        tools=offered,
        tool_choice=choice,
        parallel_tool_calls=request.parallel_tool_calls,
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        json_schema=format_schema(fmt),
        truncation=request.truncation,
        prompt_cache_key=request.prompt_cache_key,
        positional_tools=frozenset(tool.name for tool in offered if tool.name not in up_front),
        reasoning_effort=effort,
    )


def counted_context(request: CreateRequest, context: list[Item]) -> tuple[list[Item], GenerationParams]:
    """What a backend would render of a whole `context` (the model view) and the parameters it would
    render it with: for counting its tokens as a turn would."""
    settings = settings_of_items(context)
    return model_view(context, 0, settings.leading), generation_params(request, settings)
