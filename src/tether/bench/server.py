"""A `tether serve` subprocess for benchmarks: start it on a free port, read its metrics and CPU time."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from ..processes import free_port, serving_process

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SUM = re.compile(r'^tether_turn_server_seconds_sum\{transport="(\w+)"\} (\S+)$', re.MULTILINE)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class ServerProcess:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory of the server process now (VmRSS of /proc/PID/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def server_seconds(self) -> dict[str, float]:
        """`tether_turn_server_seconds_sum` by transport label."""
        text = httpx.get(self.url + "/metrics", timeout=10.0).text
        return {match[1]: float(match[2]) for match in _SUM.finditer(text)}


def script_file(script: dict[str, Any], directory: Path) -> Path:
    path = directory / "script.json"
    path.write_bytes(orjson.dumps(script))
    return path


@contextlib.contextmanager
def tether_server(
    script: dict[str, Any], *, sqlite: bool = True, wait_s: float = 60.0, serve_args: Sequence[str] = ()
) -> Iterator[ServerProcess]:
    """A scripted tether server (SQLite store in a temporary folder) on a free loopback port; `serve_args`
    are further `tether serve` flags."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        store = f"sqlite:{directory / 'responses.sqlite3'}" if sqlite else "memory"
        log_path = directory / "server.log"
        command = [sys.executable, "-m", "tether.cli", "serve", "--backend", "scripted", "--script",
                   str(script_file(script, directory)), "--store", store, "--port", str(port), *serve_args]
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TETHER_DATA_DIR": str(directory)}
        with serving_process(command, log_path, url + "/health", wait_s=wait_s, env=env) as process:
            yield ServerProcess(url, process, log_path)


