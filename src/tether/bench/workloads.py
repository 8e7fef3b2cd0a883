"""Agent workloads: a first request, then model turns (text + tool calls) and the tool outputs the client
sends back. Shipped as JSON in `workloads/` (made by `make_workloads.py`); any file of that shape works."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .profiles import ModelProfile

SHIPPED = ("fix-failing-test", "add-feature", "refactor-module")


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    input: list[dict[str, Any]]
    turns: list[dict[str, Any]]  # {"text", "tool_calls": [{"name", "arguments"}], "outputs": [str]}

    @property
    def tool_calls(self) -> int:
        return sum(len(turn["tool_calls"]) for turn in self.turns)

    @property
    def model_turns(self) -> int:
        return len(self.turns)

    def base(self) -> dict[str, Any]:
        """What every request carries again (instructions are not inherited through previous_response_id)."""
        return {"model": self.model, "instructions": self.instructions, "tools": self.tools}

    def script(self, profile: ModelProfile) -> dict[str, Any]:
        """The scripted backend's script: the model side of this workload at the profile's speed."""
        turns = [{"text": t["text"], "tool_calls": t["tool_calls"]} if t["tool_calls"] else {"text": t["text"]}
                 for t in self.turns]
        return {"turns": turns, **profile.script_settings()}

    def outputs(self, turn: int) -> list[str]:
        return list(self.turns[turn]["outputs"]) if turn < len(self.turns) else []


def load(name_or_path: str) -> Workload:
    """A shipped workload by name, or a JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        raw = path.read_bytes()
    else:
        raw = resources.files("tether.bench").joinpath("workloads", f"{name_or_path}.json").read_bytes()
    data = orjson.loads(raw)
    return Workload(data["name"], data.get("model", "tether-scripted"), data["instructions"], data["tools"],
                    data["input"], data["turns"])
