"""What a turn asks of the engine (`TurnJob`), and what it gets back (`TurnResult`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ContextOverflow(Exception):
    """The prompt does not fit the context window."""


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int | None
    grammar: str | None = None
    seed: int | None = None  # None: a random seed (temperature > 0 only)


@dataclass(slots=True)
class TurnJob:
    """One turn for the engine thread. `emit` must be safe to call from that thread; it gets `("text", str)`
    pieces, then exactly one `("done", TurnResult)` or `("error", (code, message))`."""

    prompt: list[int]
    sampling: Sampling
    emit: Callable[[tuple[str, Any]], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: end after the next sampled token as if the model stopped there (steering): the KV state then
    #: holds exactly the tokens generated, so the next turn continues from it
    stop_soon: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class TurnResult:
    reason: str  # stop | length | cancelled
    generated: list[int]
    text: str
    cached_tokens: int  # prompt tokens reused when the turn started
    model_seconds: float  # this turn's own evaluation and sampling, not its waits for other turns
