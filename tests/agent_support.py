"""The scripted coding task the agent tests play: write a buggy module and its test, run it, read the failure,
patch the bug, run it again, answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .support import write_script

TASK = "Write mod.py with add(a, b) and a test for it, run the test and fix any bug."
TEST_COMMAND = f"{sys.executable} test_mod.py"
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TEST_FILE = ("from mod import add\n\nresult = add(2, 3)\n"
             "assert result == 5, f'add(2, 3) returned {result}'\nprint('ok')\n")
PATCH = ("*** Begin Patch\n*** Update File: mod.py\n@@ def add(a, b):\n"
         "-    return a - b\n+    return a + b\n*** End Patch")
FINAL = "Fixed add() in mod.py: it subtracted. The test passes now."

TASK_TURNS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "arguments": {"path": "mod.py", "content": BUGGY}},
                    {"name": "write_file", "arguments": {"path": "test_mod.py", "content": TEST_FILE}}]},
    {"tool_calls": [{"name": "shell", "arguments": {"command": TEST_COMMAND}}]},
    {"tool_calls": [{"name": "read_file", "arguments": {"path": "mod.py"}}]},
    {"tool_calls": [{"name": "apply_patch", "arguments": {"patch": PATCH}}]},
    {"tool_calls": [{"name": "shell", "arguments": {"command": TEST_COMMAND}}]},
    {"text": FINAL},
]


def task_script(tmp_path: Path, turns: list[dict[str, Any]] | None = None) -> Path:
    return write_script(tmp_path, turns or TASK_TURNS)
