"""Asking the user before a shell command runs."""

from __future__ import annotations

import sys
from typing import TextIO

from .tools import Approver

NON_INTERACTIVE = (
    "the user must approve each shell command, and this session cannot ask (stdin is not a terminal and "
    "tether agent was started without --yes). Do the task with the file tools, or tell the user what to run."
)


def make_approver(yes: bool, stdin: TextIO | None = None, stdout: TextIO | None = None) -> Approver:
    def approve(command: str) -> tuple[bool, str]:
        if yes:
            return True, ""
        source = stdin or sys.stdin
        try:
            interactive = source.isatty()
        except (OSError, ValueError):  # closed, or replaced by a test harness
            interactive = False
        if not interactive:
            return False, NON_INTERACTIVE
        out = stdout or sys.stdout
        out.write(f"  run `{command}`? [y/N] ")
        out.flush()
        answer = source.readline().strip().lower()
        if answer in ("y", "yes"):
            return True, ""
        return False, "the user declined to run it"

    return approve
