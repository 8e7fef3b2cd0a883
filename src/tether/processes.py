"""Child processes for the tests and the benchmarks (tether, engines, peers): a free loopback port, start
and wait until they serve, and always stop them. One home, so a test and a benchmark start a server the
same way."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it does not exit within 20 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def wait_serving(
    process: subprocess.Popen[Any], ready_url: str, log_path: Path, wait_s: float, *, any_status: bool = False
) -> None:
    """Until `ready_url` answers 200 (or anything at all, with `any_status`: a 401 also means serving)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log_path.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            status = httpx.get(ready_url, timeout=1.0).status_code
            if any_status or status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"process did not start in {wait_s:.0f}s:\n{log_path.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def serving_process(
    command: list[str],
    log_path: Path,
    ready_url: str,
    *,
    wait_s: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    any_status: bool = False,
) -> Iterator[subprocess.Popen[Any]]:
    """Runs `command` (output to `log_path`) from the moment it serves `ready_url` until the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_serving(process, ready_url, log_path, wait_s, any_status=any_status)
        yield process
    finally:
        stop(process)
