"""The function tools offered to the model and their implementations.

File tools stay inside the workspace (see `Workspace`); the shell tool runs in it and asks first unless
the user said `--yes`. A tool never raises to the loop: every failure becomes a tool output the model
can read and act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .patch import apply_patch
from .workspace import ToolError, Workspace

OUTPUT_CAP = 16_000  # characters of tool output sent back to the model
READ_CAP = 100_000
LIST_CAP = 500
DEFAULT_SHELL_TIMEOUT = 60.0
MAX_SHELL_TIMEOUT = 600.0
SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"})

#: asks whether a shell command may run: (allowed, reason shown to the model when not)
Approver = Callable[[str], tuple[bool, str]]


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False},
        "strict": False,
    }


TOOL_SPECS: list[dict[str, Any]] = [
    _function("shell", "Run a shell command (/bin/sh) in the working directory; returns the exit code and output.",
              {"command": {"type": "string"},
               "timeout_s": {"type": "number", "description": f"default {DEFAULT_SHELL_TIMEOUT:g}"}},
              ["command"]),
    _function("read_file", "Read a text file; optionally a range of lines (1-based, inclusive).",
              {"path": {"type": "string"}, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
              ["path"]),
    _function("write_file", "Create or overwrite a text file with the given content.",
              {"path": {"type": "string"}, "content": {"type": "string"}}, ["path", "content"]),
    _function("apply_patch", "Edit files with a patch in the '*** Begin Patch' format (Add/Update/Delete File, "
              "'@@' hunks of ' ', '-', '+' lines, '*** End Patch').", {"patch": {"type": "string"}}, ["patch"]),
    _function("list_files", "List files under a directory (recursive, skips .git and caches).",
              {"path": {"type": "string", "description": "default '.'"}}, []),
]


@dataclass(slots=True)
class ToolOutcome:
    output: str  # what the model reads
    brief: str  # one line for the progress display
    ok: bool
    seconds: float


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


class ToolBox:
    def __init__(self, workspace: Workspace, approve: Approver) -> None:
        self.workspace = workspace
        self.approve = approve

    async def run(self, name: str, arguments: str) -> ToolOutcome:
        started = time.perf_counter()
        try:
            args = orjson.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ToolError("the arguments must be a JSON object")
            handler = getattr(self, f"tool_{name}", None) if name in TOOL_NAMES else None
            if handler is None:
                raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(sorted(TOOL_NAMES))}")
            output, brief = await handler(**args)
            ok = True
        except orjson.JSONDecodeError as exc:
            output, brief, ok = f"error: the arguments are not valid JSON ({exc})", "bad JSON arguments", False
        except TypeError as exc:
            output, brief, ok = f"error: wrong arguments for {name}: {exc}", "wrong arguments", False
        except ToolError as exc:
            output, brief, ok = f"error: {exc}", str(exc).splitlines()[0][:100], False
        except OSError as exc:
            output, brief, ok = f"error: {exc}", str(exc)[:100], False
        return ToolOutcome(cap(output), brief, ok, time.perf_counter() - started)

    async def tool_shell(self, command: str, timeout_s: float = DEFAULT_SHELL_TIMEOUT) -> tuple[str, str]:
        if not isinstance(command, str) or not command.strip():
            raise ToolError("'command' must be a non-empty string")
        allowed, reason = self.approve(command)
        if not allowed:
            raise ToolError(f"the command was not run: {reason}")
        timeout = max(1.0, min(float(timeout_s), MAX_SHELL_TIMEOUT))
        code, output = await asyncio.to_thread(_run_shell, command, str(self.workspace.root), timeout)
        if code is None:
            return f"timed out after {timeout:g} s\n{output}", f"timed out after {timeout:g} s"
        last = output.strip().splitlines()[-1][:80] if output.strip() else ""
        return f"exit code {code}\n{output}", f"exit {code}" + (f": {last}" if last else "")

    async def tool_read_file(self, path: str, start_line: int | None = None,
                             end_line: int | None = None) -> tuple[str, str]:
        real = self.workspace.resolve(path)
        if not real.is_file():
            raise ToolError(f"{path}: no such file")
        lines = real.read_text(errors="replace").splitlines(keepends=True)
        first = max(1, int(start_line or 1))
        last = min(len(lines), int(end_line or len(lines)))
        text = "".join(lines[first - 1 : last])
        return cap(text, READ_CAP), f"{last - first + 1 if lines else 0} lines"

    async def tool_write_file(self, path: str, content: str) -> tuple[str, str]:
        if not isinstance(content, str):
            raise ToolError("'content' must be a string")
        real = self.workspace.resolve(path)
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(content)
        size = len(content.encode())
        return f"wrote {size} bytes to {self.workspace.show(real)}", f"wrote {size} bytes"

    async def tool_apply_patch(self, patch: str) -> tuple[str, str]:
        if not isinstance(patch, str):
            raise ToolError("'patch' must be a string")
        changed = apply_patch(patch, self.workspace.resolve)
        return "applied:\n" + "\n".join(changed), ", ".join(changed)

    async def tool_list_files(self, path: str = ".") -> tuple[str, str]:
        real = self.workspace.resolve(path)
        if not real.is_dir():
            raise ToolError(f"{path}: not a directory")
        found: list[str] = []
        for folder, dirs, files in os.walk(real):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                found.append(os.path.relpath(os.path.join(folder, name), real))
                if len(found) >= LIST_CAP:
                    return "\n".join(found) + f"\n... (first {LIST_CAP} files)", f"{LIST_CAP}+ files"
        return "\n".join(found) or "(no files)", f"{len(found)} files"


TOOL_NAMES = frozenset(spec["name"] for spec in TOOL_SPECS)


def _run_shell(command: str, cwd: str, timeout: float) -> tuple[int | None, str]:
    """(exit code or None on timeout, stdout and stderr interleaved); a timeout kills the whole group."""
    process = subprocess.Popen(command, shell=True, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        return None, out.decode(errors="replace")
    return process.returncode, out.decode(errors="replace")
