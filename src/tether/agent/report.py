"""What an agent run did and cost: per-turn stats, tool calls, and the totals of the final summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..client.stats import TurnStats


@dataclass(frozen=True, slots=True)
class ToolRecord:
    turn: int
    name: str
    ok: bool
    seconds: float
    brief: str


@dataclass(slots=True)
class AgentReport:
    transport: str = ""
    turns: list[TurnStats] = field(default_factory=list)
    tools: list[ToolRecord] = field(default_factory=list)
    warm_up: TurnStats | None = None
    wall_s: float = 0.0
    final_text: str = ""
    outcome: str = ""  # "completed", "max turns reached", or "error: ..."

    @property
    def completed(self) -> bool:
        return self.outcome == "completed"

    @property
    def server_wait_s(self) -> float:
        """Request sent -> terminal event, summed over turns (the warm-up included)."""
        return sum(t.server_wait_s for t in self._all())

    @property
    def model_s(self) -> float:
        """First output delta -> terminal event, summed: the part of the server wait the model was visibly busy."""
        return sum(t.model_s for t in self._all())

    @property
    def tool_s(self) -> float:
        return sum(t.seconds for t in self.tools)

    @property
    def bytes_sent(self) -> int:
        return sum(t.bytes_sent for t in self._all())

    def tool_counts(self) -> Counter[str]:
        return Counter(t.name for t in self.tools)

    def _all(self) -> list[TurnStats]:
        return ([self.warm_up] if self.warm_up else []) + self.turns
