"""The response a turn's prompt-cache diagnosis compares with, found as parents are: the parent (or
`prompt_cache_options.comparison_response_id`) in the connection's cache, else in the store."""

from __future__ import annotations

import orjson

from ..api.request import CreateRequest
from .book import ResponseBook
from .cache_diagnostics import COMPARISON_NOT_FOUND, UNAVAILABLE, Baseline, CacheVerdict, judge
from .connection_cache import ConnectionCache
from .context import Context
from .parents import Parent
from .state import ResponseState

#: a Response object carries its echo; a parent rebuilt from the store keeps only id and output
ECHO_MARKER = "model"


async def _settings_of(state: ResponseState, book: ResponseBook, owner: str) -> Baseline | None:
    if ECHO_MARKER in state.response:
        return Baseline(state.response)
    if state.stored_response is not None:  # a hydrated parent, read with its chain
        return Baseline(orjson.loads(state.stored_response))
    record = await book.get(state.id, owner)  # its settings are in its stored record
    return Baseline(record.response) if record is not None else None


async def diagnose(
    request: CreateRequest,
    echo: dict[str, object],
    context: Context,
    owner: str,
    parent: Parent | None,
    book: ResponseBook,
    cache: ConnectionCache | None = None,
) -> CacheVerdict:
    """The verdict for a turn of `request` (its Response echoing `echo`) whose context is `context`."""
    comparison_id = request.prompt_cache_options.comparison_response_id
    if comparison_id is None:
        if parent is None:
            return UNAVAILABLE
        return judge(await _settings_of(parent.state, book, owner), echo)
    state: ResponseState | None = None
    if parent is not None and parent.state.id == comparison_id:
        state = parent.state
    elif cache is not None:
        state = cache.by_id.get(comparison_id)  # looked at, not used: no hit counted, no recency change
    if state is None:
        state = await book.hydrate(comparison_id, owner)
    if state is None:
        return COMPARISON_NOT_FOUND
    settings = await _settings_of(state, book, owner)
    if settings is None:
        return COMPARISON_NOT_FOUND
    return judge(Baseline(settings.response, state.context.to_list()), echo, context.to_list())
