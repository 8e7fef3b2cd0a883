"""A `tether serve` subprocess for benchmarks: start it on a free port, read its metrics and CPU time."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SUM = re.compile(r'^tether_turn_server_seconds_sum\{transport="(\w+)"\} (\S+)$', re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (fields 14 and 15 of /proc/PID/stat)."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def server_seconds(self) -> dict[str, float]:
        """`tether_turn_server_seconds_sum` by transport label."""
        text = httpx.get(self.url + "/metrics", timeout=10.0).text
        return {match[1]: float(match[2]) for match in _SUM.finditer(text)}


def script_file(script: dict[str, Any], directory: Path) -> Path:
    path = directory / "script.json"
    path.write_bytes(orjson.dumps(script))
    return path


@contextlib.contextmanager
def tether_server(script: dict[str, Any], *, sqlite: bool = True, wait_s: float = 60.0) -> Iterator[ServerProcess]:
    """A scripted tether server (SQLite store in a temporary folder) on a free loopback port."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        store = f"sqlite:{directory / 'responses.sqlite3'}" if sqlite else "memory"
        log_path = directory / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tether.cli", "serve", "--backend", "scripted", "--script",
                 str(script_file(script, directory)), "--store", store, "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TETHER_DATA_DIR": str(directory)},
            )
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_healthy(server, wait_s)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_healthy(server: ServerProcess, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tether server exited early:\n{server.log_path.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"tether server did not start:\n{server.log_path.read_text(errors='replace')}")
