"""What one turn cost: the time spent waiting on the server, time to first event, bytes sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import Response


@dataclass(slots=True)
class TurnStats:
    transport: str = ""  # "ws" | "http": the transport that produced the response
    #: True when the request carried `previous_response_id` and only the new items
    incremental: bool = False
    #: items in the request's `input` of the attempt that succeeded
    input_items_sent: int = 0
    #: JSON bytes of every frame / body sent for this turn, retries included (before compression)
    bytes_sent: int = 0
    #: seconds from starting the turn (opening a socket if one is needed, then sending) to the terminal event,
    #: every attempt and reconnect included
    server_wait_s: float = 0.0
    #: seconds from sending the (successful) request to its first event
    first_event_s: float | None = None
    #: seconds from the first output delta to the terminal event: the model's visible generation time
    model_s: float = 0.0
    #: attempts it took (1 unless a reconnect or fallback was needed)
    attempts: int = 1
    #: why a later attempt was needed, in order (e.g. "previous_response_not_found", "upgrade refused: 426")
    recoveries: list[str] = field(default_factory=list)
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0

    def add_usage(self, response: Response) -> None:
        usage = response.usage
        if usage is None:
            return
        self.input_tokens = usage.input_tokens
        self.output_tokens = usage.output_tokens
        details = usage.input_tokens_details
        self.cached_tokens = details.cached_tokens if details is not None else 0


@dataclass(slots=True)
class TurnReply:
    response: Response
    events: list[Any]
    stats: TurnStats

    @property
    def output_text(self) -> str:
        return self.response.output_text

    @property
    def function_calls(self) -> list[Any]:
        return [item for item in self.response.output if item.type == "function_call"]
