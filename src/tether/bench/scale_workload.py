"""What each agent of the scale benchmark sends: a shipped agent workload, cut to a size two 1-thread
llama-server replicas get through in minutes.

Every agent shares the workload's instructions and tools (the prefix every Codex session of one agent
starts with, which the engines hold cached from a warm-up) and opens with the workload's first
request, preceded by a line that names its placement and agent: from there on no conversation
shares a prefix with another, so what an engine serves from its cache is the agent's own history.
Each later turn brings the workload's next tool outputs: as `function_call_output`s when the model
called tools, else (a small model rarely does) as a user message that carries them, so every agent
makes the same number of turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .modes import Item, tool_output, user_message
from .workloads import Workload


@dataclass(frozen=True, slots=True)
class ScaleShape:
    """How much of the workload each agent sends."""

    turns: int = 4  # model turns per agent
    gen_tokens: int = 32  # max_output_tokens of every turn
    prefix_chars: int = 8000  # of the instructions (shared by every agent)
    first_chars: int = 600  # of the first request's text
    output_chars: int = 300  # of each tool output


def agent_base(workload: Workload, shape: ScaleShape, model: str) -> dict[str, Any]:
    """What every request carries again: model, instructions, tools, and the short greedy answer."""
    return {"model": model, "instructions": workload.instructions[: shape.prefix_chars], "tools": workload.tools,
            "max_output_tokens": shape.gen_tokens, "temperature": 0}


def _first_text(workload: Workload) -> str:
    for item in workload.input:
        for part in item.get("content") or []:
            if part.get("type") == "input_text":
                return str(part["text"])
    return "Start the task."


def first_input(workload: Workload, shape: ScaleShape, placement: str, agent: int) -> list[Item]:
    text = _first_text(workload)[: shape.first_chars]
    return [user_message(f"Session {placement}-{agent}.\n{text}")]


def step_outputs(workload: Workload, turn: int, shape: ScaleShape) -> list[str]:
    """The tool outputs that follow model turn `turn` (the workload's tool turns, cycled), cut to size."""
    tool_turns = [t for t in workload.turns if t["outputs"]]
    if not tool_turns:
        return ["ok"]
    return [text[: shape.output_chars] for text in tool_turns[turn % len(tool_turns)]["outputs"]]


def next_items(calls: list[Item], outputs: list[str]) -> list[Item]:
    """The client's side of the next turn: an output per tool call, or the outputs as a user message."""
    if calls:
        return [tool_output(str(call["call_id"]), outputs[i % len(outputs)]) for i, call in enumerate(calls)]
    return [user_message("Tool output:\n" + "\n".join(outputs) + "\nWhat is the next step?")]
