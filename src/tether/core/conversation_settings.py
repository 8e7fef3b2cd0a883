"""What a conversation's own items set, at their positions: the tools `additional_tools` items add, the
latest `configuration_update`, and the conversation's preamble.

The preamble is the leading run of system and developer messages and `additional_tools` items, before
anything else. Backends render it up front, as they render a request's `instructions` and `tools`:
that is what makes the "Responses Lite" shape (instructions as a developer message, tools in an
`additional_tools` item) give the very prompt of the classic shape. An `additional_tools` item after
the conversation started is rendered where it stands, so the prefix before it is never rewritten.

Settings are folded once per context node (`Context.settings` holds them), so a continuation costs its
new items only; a context rebuilt from the store folds its links once, on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..api.conversation_items import item_tools
from ..api.items import Item, item_text
from ..api.tools import OfferedTool
from .context import Context

#: message parts the preamble can hold as text (a leading message with an image stays a message)
TEXT_PARTS = frozenset({"input_text", "output_text"})
#: items no model reads: settings, the compaction trigger, compaction items (tether's are unpacked on input)
HIDDEN_KINDS = frozenset({"configuration_update", "compaction_trigger", "compaction"})


def _is_preamble_message(item: Item) -> bool:
    if item.get("type") != "message" or item.get("role") not in ("system", "developer"):
        return False
    return all(isinstance(part, dict) and part.get("type") in TEXT_PARTS for part in item.get("content") or [])


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    #: how many items, from the first, form the preamble
    leading: int = 0
    #: no other item came yet: the preamble may still grow
    leading_open: bool = True
    leading_texts: tuple[str, ...] = ()
    leading_tools: tuple[OfferedTool, ...] = ()
    #: tools of the `additional_tools` items after the preamble, in order
    added_tools: tuple[OfferedTool, ...] = ()
    #: the latest `configuration_update` values: (effort,) once an update set it; a text.format
    effort_update: tuple[str | None] | None = None
    format_update: dict[str, Any] | None = None

    def extend(self, items: Iterable[Item]) -> ConversationSettings:
        """These settings with `items` appended to the conversation (self when they change nothing)."""
        settings = self
        for item in items:
            kind = item.get("type")
            if settings.leading_open:
                if _is_preamble_message(item):
                    settings = replace(settings, leading=settings.leading + 1,
                                       leading_texts=(*settings.leading_texts, item_text(item)))
                    continue
                if kind == "additional_tools":
                    settings = replace(settings, leading=settings.leading + 1,
                                       leading_tools=(*settings.leading_tools, *item_tools(item)))
                    continue
                if kind in HIDDEN_KINDS:
                    settings = replace(settings, leading=settings.leading + 1)
                else:
                    settings = replace(settings, leading_open=False)
            if kind == "additional_tools":
                settings = replace(settings, added_tools=(*settings.added_tools, *item_tools(item)))
            elif kind == "configuration_update":
                settings = _updated(settings, item)
        return settings


def _updated(settings: ConversationSettings, item: Item) -> ConversationSettings:
    reasoning = item.get("reasoning")
    if isinstance(reasoning, dict):
        settings = replace(settings, effort_update=(reasoning.get("effort"),))
    text = item.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        settings = replace(settings, format_update=text["format"])
    return settings


NO_SETTINGS = ConversationSettings()


def settings_of(context: Context) -> ConversationSettings:
    """The settings of `context`, folded from the nearest node that knows its own (iteratively: a chain
    rebuilt from the store can be thousands of links long)."""
    unfolded: list[Context] = []
    node: Context | None = context
    while node is not None and node.settings is None:
        unfolded.append(node)
        node = node.parent
    settings = node.settings if node is not None and node.settings is not None else NO_SETTINGS
    for pending in reversed(unfolded):
        settings = settings.extend(pending.items)
        pending.settings = settings
    return settings


def settings_of_items(items: Iterable[Item]) -> ConversationSettings:
    return NO_SETTINGS.extend(items)


def model_view(items: Iterable[Item], start: int, leading: int) -> list[Item]:
    """What a backend renders of `items` (which begin at position `start` of the conversation): the
    preamble's items and the items no model reads are left out; the preamble reaches the backend
    through the turn's parameters (`turn_params.generation_params`)."""
    return [
        item
        for position, item in enumerate(items, start)
        if position >= leading and item.get("type") not in HIDDEN_KINDS
    ]
