"""Generates the shipped workloads (`workloads/*.json`) deterministically: `python -m tether.bench.make_workloads`.

Each workload is a coding-agent session: a first request of about 9k tokens (instructions, tool
definitions, a user message with repository context), then model turns of a short text and one or
two tool calls, each answered with a tool output of 200 B to 20 KB, and a final summary.
Same seed, same bytes: the files are data, this script is how they were made.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path
from typing import Any

import orjson

OUT = Path(__file__).with_name("workloads")
WORDS = ("request response handler config cache session token buffer parser module router schema client server "
         "payload retry timeout stream queue worker event state item index error value result context field").split()
FUNCS = ("load save parse render validate resolve fetch update build merge flush close open emit apply".split())
RULES = [
    "Prefer small, reviewable changes; do not reformat code you did not change.",
    "Run the narrowest test that proves the change before running the whole suite.",
    "Read a file before editing it; never guess at its contents.",
    "Use apply_patch for edits; keep each patch to one concern.",
    "When a command fails, read its output and fix the cause instead of retrying blindly.",
    "Keep the user informed with one short sentence before each tool call.",
    "Never run destructive commands (rm -rf, git reset --hard) without being asked.",
    "Respect the repository's AGENTS.md conventions, including its test and lint commands.",
]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def python_source(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    while sum(len(line) + 1 for line in lines) < size:
        name = f"{rng.choice(FUNCS)}_{rng.choice(WORDS)}"
        args = ", ".join(rng.sample(WORDS, rng.randint(1, 3)))
        lines += [f"def {name}({args}):", f'    """{words(rng, rng.randint(4, 10)).capitalize()}."""']
        for _ in range(rng.randint(2, 6)):
            lines.append(f"    {rng.choice(WORDS)} = {rng.choice(FUNCS)}_{rng.choice(WORDS)}({rng.choice(WORDS)})")
        lines += [f"    return {rng.choice(WORDS)}", ""]
    return "\n".join(lines)[:size]


def grep_output(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"src/app/{rng.choice(WORDS)}.py:{rng.randint(1, 900)}:    {words(rng, rng.randint(3, 9))}")
    return "\n".join(lines)[:size]


def test_output(rng: random.Random, size: int) -> str:
    lines = ["============================= test session starts =============================="]
    while sum(len(line) + 1 for line in lines) < size:
        status = rng.choices(["PASSED", "FAILED", "ERROR"], [0.85, 0.12, 0.03])[0]
        lines.append(f"tests/test_{rng.choice(WORDS)}.py::test_{rng.choice(FUNCS)}_{rng.choice(WORDS)} {status}")
        if status != "PASSED" and rng.random() < 0.5:
            lines.append(f"E   AssertionError: expected {rng.choice(WORDS)} == {rng.choice(WORDS)}")
    return "\n".join(lines)[:size]


def tool_definitions() -> list[dict[str, Any]]:
    def tool(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
        schema = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        return {"type": "function", "name": name, "description": description, "parameters": schema, "strict": True}

    string = {"type": "string"}
    return [
        tool("shell", "Run a shell command in the workspace and return its combined stdout and stderr. " + " ".join(
            RULES[4:7]) + " Commands time out after 120 seconds; long-running servers must not be started.",
             {"command": {"type": "array", "items": string, "description": "argv, e.g. ['pytest', '-q']"},
              "workdir": {**string, "description": "working directory, relative to the repository root"},
              "timeout_ms": {"type": "integer", "description": "a shorter timeout, in milliseconds"}},
             ["command", "workdir", "timeout_ms"]),
        tool("read_file", "Read a text file, optionally a line range. Large files are truncated to 2,000 lines.",
             {"path": string, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
             ["path", "start_line", "end_line"]),
        tool("apply_patch", "Apply a patch in the apply_patch format: '*** Begin Patch', then '*** Update File: "
             "path' blocks with @@ context hunks, '*** Add File:' or '*** Delete File:', then '*** End Patch'. "
             "Context lines must match the file exactly; patches that do not apply are rejected whole.",
             {"patch": string}, ["patch"]),
        tool("grep", "Search the repository with ripgrep; returns matching lines as path:line:text.",
             {"pattern": string, "path": string, "glob": string}, ["pattern", "path", "glob"]),
        tool("list_dir", "List a directory, two levels deep, ignoring what .gitignore ignores.",
             {"path": string, "depth": {"type": "integer"}}, ["path", "depth"]),
        tool("write_file", "Create or overwrite a file with the given content.",
             {"path": string, "content": string}, ["path", "content"]),
        tool("update_plan", "Record the plan as a list of steps with statuses; shown to the user.",
             {"steps": {"type": "array", "items": {"type": "object", "properties": {
                 "step": string, "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}},
                 "required": ["step", "status"], "additionalProperties": False}}}, ["steps"]),
        tool("view_image", "Attach a local image file to the conversation.", {"path": string}, ["path"]),
    ]


def instructions(rng: random.Random, size: int) -> str:
    parts = ["You are a coding agent working in the user's repository through tools.", "", "# Rules"]
    parts += [f"- {rule}" for rule in RULES]
    section = 0
    while sum(len(p) + 1 for p in parts) < size:
        section += 1
        parts += ["", f"# Guidance {section}: {words(rng, 3)}"]
        for _ in range(rng.randint(4, 8)):
            parts.append(f"- {words(rng, rng.randint(10, 24)).capitalize()}.")
    return "\n".join(parts)[:size]


def first_message(rng: random.Random, task: str, size: int) -> dict[str, Any]:
    context = f"<environment_context>\n  <cwd>/work/repo</cwd>\n  <shell>bash</shell>\n</environment_context>\n" \
              f"<agents_md>\n{instructions(rng, size - 600)}\n</agents_md>\n"
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": context + task}]}


def output_size(rng: random.Random, low: int = 200, high: int = 20_000) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def step(rng: random.Random, index: int, calls: int) -> dict[str, Any]:
    """One model turn: a short sentence, then `calls` tool calls, with their outputs."""
    tool_calls, outputs = [], []
    for _ in range(calls):
        kind = rng.choices(["read_file", "grep", "shell", "apply_patch", "list_dir"], [0.35, 0.2, 0.2, 0.18, 0.07])[0]
        path = f"src/app/{rng.choice(WORDS)}.py"
        if kind == "read_file":
            args: dict[str, Any] = {"path": path, "start_line": 1, "end_line": 400}
            out = python_source(rng, output_size(rng, 1_000))
        elif kind == "grep":
            args = {"pattern": f"{rng.choice(FUNCS)}_{rng.choice(WORDS)}", "path": "src", "glob": "*.py"}
            out = grep_output(rng, output_size(rng, 200, 4_000))
        elif kind == "shell":
            args = {"command": ["pytest", "-q", f"tests/test_{rng.choice(WORDS)}.py"], "workdir": ".",
                    "timeout_ms": 120_000}
            out = test_output(rng, output_size(rng, 400, 12_000))
        elif kind == "apply_patch":
            body = "\n".join(f"+{line}" for line in python_source(rng, rng.randint(200, 1_500)).splitlines())
            args = {"patch": f"*** Begin Patch\n*** Update File: {path}\n@@\n{body}\n*** End Patch\n"}
            out = "Success. Updated the following files:\nM " + path
        else:
            args = {"path": "src", "depth": 2}
            out = "\n".join(f"src/app/{w}.py" for w in rng.sample(WORDS, 20))
        tool_calls.append({"name": kind, "arguments": args})
        outputs.append(out[:20_000])
    text = f"Step {index + 1}: {words(rng, rng.randint(6, 16))}."
    return {"text": text, "tool_calls": tool_calls, "outputs": outputs}


def workload(name: str, seed: int, tool_calls: int, task: str, first_tokens: int = 9_000) -> dict[str, Any]:
    rng = random.Random(seed)
    tools = tool_definitions()
    tools_chars = len(orjson.dumps(tools))
    instr = instructions(rng, first_tokens * 4 * 2 // 3 - tools_chars)
    message = first_message(rng, task, first_tokens * 4 - len(instr) - tools_chars)
    turns: list[dict[str, Any]] = []
    made = 0
    while made < tool_calls:
        calls = min(tool_calls - made, 2 if rng.random() < 0.15 else 1)
        turns.append(step(rng, len(turns), calls))
        made += calls
    turns.append({"text": f"Done. {words(rng, 40).capitalize()}.", "tool_calls": [], "outputs": []})
    return {"name": name, "seed": seed, "description": task, "model": "tether-scripted", "instructions": instr,
            "tools": tools, "input": [message], "turns": turns}


WORKLOADS = {
    "fix-failing-test": (11, 24, "Fix the failing test tests/test_router.py::test_retry_timeout."),
    "add-feature": (23, 42, "Add a --dry-run flag to the sync command, with tests and docs."),
    "refactor-module": (37, 58, "Split src/app/session.py into a cache module and a store module; keep behaviour."),
}


def smoke() -> dict[str, Any]:
    data = workload("smoke", 5, 3, "Say hello.", first_tokens=300)
    for turn in data["turns"]:
        turn["outputs"] = [out[:400] for out in turn["outputs"]]
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the bench workloads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    made = {name: workload(name, *spec) for name, spec in WORKLOADS.items()} | {"smoke": smoke()}
    for name, data in made.items():
        path = args.out / f"{name}.json"
        path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        calls = sum(len(t["tool_calls"]) for t in data["turns"])
        print(f"{path}: {calls} tool calls, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
