"""Which process runs a background response, and whether that process still lives.

A background response is on record while it runs, with its runner: `host:pid:start`, where `start`
is the process's start time in clock ticks since boot (so a recycled pid is not taken for the old
process). A reader on the same host can then tell a run still going from one that died with its
process (SIGKILL, OOM, power loss). A runner on another host is taken to be alive: its own shutdown
records what it leaves unfinished."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[19]  # field 22: starttime


HOST = socket.gethostname()
RUNNER = f"{HOST}:{os.getpid()}:{_start_ticks(os.getpid()) or 0}"


def runner_alive(runner: str | None) -> bool:
    """Whether the process named by `runner` may still be running its response."""
    if runner is None:
        return False
    parts = runner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid, start = parts
    if host != HOST:
        return True
    if not pid.isdecimal():
        return False
    return _start_ticks(int(pid)) == start
