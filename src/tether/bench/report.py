"""Shared report helpers: the machine note and JSON output."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console


def machine_note() -> str:
    cores = os.cpu_count() or 0
    return f"{platform.system()} {platform.machine()}, {cores} cores visible, Python {platform.python_version()}"


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def wide_console() -> Console:
    """A console that does not squeeze tables to 80 columns when the output is a pipe or a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)
