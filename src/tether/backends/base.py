"""The backend interface: a `Backend` makes `BackendSession`s, one per conversation (lane).

A session holds what the engine derived from the conversation so far (rendered messages, token ids,
KV state). Each turn it is handed only the items it has not seen yet, plus this turn's parameters,
and streams `Delta`s back. After a successful turn the turn engine hands the session the output items it
assembled from those deltas (`commit`): the one copy of the turn's output, so the next turn again needs
only the new items and no backend re-derives what it produced. A failed or cancelled turn leaves the session unusable
(`broken`), and the turn engine starts a fresh one from the full context when it needs to.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api.items import Item
from ..api.tools import OfferedTool, ToolChoice


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What one turn asks of the model, besides the conversation itself."""

    model: str
    instructions: str | None = None
    tools: tuple[OfferedTool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    json_schema: dict[str, Any] | None = None
    #: "auto": drop the oldest turns when the context overflows; "disabled": fail instead
    truncation: str = "disabled"
    #: the request's `prompt_cache_key`: one value per conversation, which an engine pool keeps on one replica
    prompt_cache_key: str | None = None
    #: names among `tools` that an `additional_tools` item later in the conversation offers: a renderer
    #: describes those at that item (so the prefix before it stays as it was), not with the others up front
    positional_tools: frozenset[str] = frozenset()
    #: the effective effort: the latest `configuration_update` in the context, else the request's own
    reasoning_effort: str | None = None

    @property
    def preamble_tools(self) -> tuple[OfferedTool, ...]:
        """The tools a renderer describes before the conversation (the system part of the prompt)."""
        if not self.positional_tools:
            return self.tools
        return tuple(tool for tool in self.tools if tool.name not in self.positional_tools)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of the `index`-th tool call; `call_id` and `name` come with its first piece."""

    index: int
    arguments: str = ""
    name: str | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a turn. `reason` is `stop` or `length`; token counts are the engine's own."""

    reason: str
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    #: seconds the model itself took (prefill and decode), so the server's own time can be told apart
    model_seconds: float = 0.0


Delta = TextDelta | ReasoningDelta | ToolCallDelta | Finished


class BackendError(Exception):
    """A model failure after the response started: becomes `response.failed` with this code."""

    def __init__(self, message: str, code: str = "server_error") -> None:
        super().__init__(message)
        self.code = code


class BackendSession(abc.ABC):
    """One conversation's engine state. Not safe for two turns at once: the turn engine serializes."""

    def __init__(self) -> None:
        #: how many context items this session holds (input and output)
        self.items_seen = 0
        #: set when a turn failed or was cancelled mid-way: the state no longer matches the context
        self.broken = False
        #: items taken by `warm` and not rendered yet
        self.pending: list[Item] = []

    @abc.abstractmethod
    def generate(self, new_items: Sequence[Item], params: GenerationParams) -> AsyncIterator[Delta]:
        """Render `new_items` after what the session holds, then stream the model's answer.

        Implementations call `take_new(new_items)` first to get the items to render.
        """

    async def warm(self, new_items: Sequence[Item], params: GenerationParams) -> int:
        """Take `new_items` without generating (a `generate: false` warm-up). Returns prompt tokens."""
        self.pending.extend(new_items)
        self.items_seen += len(new_items)
        return 0

    def take_new(self, new_items: Sequence[Item]) -> list[Item]:
        """The items to render this turn: those queued by `warm`, then `new_items`; counts them."""
        self.items_seen += len(new_items)
        if self.pending:
            items = [*self.pending, *new_items]
            self.pending = []
            return items
        return list(new_items)

    def commit(self, output: Sequence[Item]) -> None:
        """After a successful turn: the output items the turn engine assembled from this turn's deltas
        (the parallel-tool-call rule already applied). The session appends them to what it holds."""
        self.items_seen += len(output)

    def stop_soon(self) -> bool:
        """Ask the running `generate` to end at its next token boundary with a normal `Finished`
        (its state then matching exactly what it produced), for steering. False if unsupported:
        the turn engine then cancels the generation and the session is not reused."""
        return False

    def fork(self) -> BackendSession | None:
        """A copy holding the same state, for a fork of the conversation; None if not cheap."""
        return None

    @property
    def placement(self) -> str | None:
        """Where the engine holds this conversation (an upstream replica's URL), recorded with the
        response so that a continuation rebuilt from the store goes back there (`Backend.session_for`)."""
        return None

    def release(self) -> None:  # noqa: B027 (optional hook)
        """Free engine state (a KV sequence, a pinned connection); the session is not used again."""


class Backend(abc.ABC):
    """A model engine shared by every connection of the process."""

    name: str = "backend"

    @abc.abstractmethod
    def new_session(self) -> BackendSession:
        """A fresh, empty session."""

    def session_for(self, placement: str | None) -> BackendSession:
        """A fresh session for a conversation the engine held at `placement` (a parent's recorded
        `BackendSession.placement`); backends with one place ignore it."""
        return self.new_session()

    @abc.abstractmethod
    def count_tokens(self, items: Sequence[Item], params: GenerationParams) -> int:
        """Prompt tokens for this context, as `POST /v1/responses/input_tokens` reports them."""

    def model_ids(self) -> list[str]:
        return []

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Load the model or open connections; called once at server start."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release everything."""

    def stats(self) -> dict[str, Any]:
        return {}
