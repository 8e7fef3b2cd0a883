"""The agent loop: send the task, run the tool calls the model makes, send their outputs, until it answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..client import AsyncTetherClient, TetherError
from .display import Display
from .report import AgentReport, ToolRecord
from .tools import TOOL_SPECS, ToolBox

INSTRUCTIONS = """You are a coding agent working in a local directory. Use the tools to inspect and change files and \
to run commands; paths are relative to the working directory. Edit files with apply_patch (the '*** Begin Patch' \
format) or write_file. After changing code, run its tests. When the task is done, answer with a short summary \
and no tool call."""


@dataclass(slots=True)
class AgentSettings:
    model: str
    max_turns: int = 30
    warm_up: bool = True
    instructions: str = INSTRUCTIONS


def describe_call(name: str, arguments: str) -> str:
    """A short view of a call's arguments for the progress line."""
    try:
        args: Any = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments[:60]
    if not isinstance(args, dict):
        return arguments[:60]
    key = {"shell": "command", "apply_patch": None}.get(name, "path")
    if key is None:
        files = [line.split(": ", 1)[1] for line in str(args.get("patch", "")).splitlines()
                 if line.startswith("*** ") and ": " in line]
        return " ".join(files)
    value = str(args.get(key, ""))
    return value if len(value) <= 60 else value[:57] + "..."


async def run_agent(task: str, client: AsyncTetherClient, tools: ToolBox, settings: AgentSettings,
                    display: Display) -> AgentReport:
    report = AgentReport()
    started = time.perf_counter()
    conversation = client.conversation(model=settings.model, instructions=settings.instructions,
                                       tools=TOOL_SPECS, store=False, tool_choice="auto", parallel_tool_calls=True)
    try:
        if settings.warm_up:
            warm = await conversation.warm_up()
            report.warm_up = warm.stats if warm else None
            display.warm_up(report.warm_up)
        new_items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": task}]
        for number in range(1, settings.max_turns + 1):
            result = await conversation.send(new_items)
            report.turns.append(result.stats)
            display.turn(number, result.stats)
            calls = result.function_calls
            if not calls:
                report.final_text = result.output_text
                report.outcome = str(result.response.status or "unknown")
                display.final(report.final_text)
                break
            new_items = []
            for call in calls:
                outcome = await tools.run(call.name, call.arguments)
                record = ToolRecord(number, call.name, outcome.ok, outcome.seconds, outcome.brief)
                report.tools.append(record)
                display.tool(record, describe_call(call.name, call.arguments))
                new_items.append({"type": "function_call_output", "call_id": call.call_id, "output": outcome.output})
        else:
            report.outcome = f"max turns reached ({settings.max_turns})"
    except TetherError as exc:
        report.outcome = f"error: {type(exc).__name__}: {exc}"
        display.line(f"agent stopped: {report.outcome}")
    finally:
        report.transport = conversation.transport
        report.wall_s = time.perf_counter() - started
        await conversation.close()
    return report
