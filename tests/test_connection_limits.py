"""Connection floods: the file-descriptor limit raised at start, `--max-connections` refused with 503
(HTTP and WebSocket), and descriptor exhaustion logged once per interval, not once per failed accept."""

from __future__ import annotations

import logging
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tether.server.limits import ExhaustionLogFilter

from .support import RunningServer, start_server, write_script


def fd_limit(soft: int, hard: int) -> Callable[[], None]:
    """Sets the server child's descriptor limit before tether starts (this process keeps its own)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def scripted(tmp_path: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> RunningServer:
    script = write_script(tmp_path, [{"text": "ok"}])
    return start_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory", *args,
                        preexec_fn=preexec_fn)


def soft_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files limit")


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 4096:
        pytest.skip("this machine's hard limit leaves nothing to raise")
    server = scripted(tmp_path, preexec_fn=fd_limit(256, hard))
    try:
        assert soft_limit_of(server.process.pid) == hard
    finally:
        server.stop()


def test_past_max_connections_http_and_websocket_get_503(tmp_path: Path) -> None:
    server = scripted(tmp_path, "--max-connections", "3")
    held = []
    try:
        for _ in range(3):
            held.append(connect(server.ws_url))
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url)
        assert refused.value.response.status_code == 503
        assert b"server_is_overloaded" in refused.value.response.body
        assert httpx.get(server.url + "/livez", timeout=10).status_code == 503
        for ws in held:
            ws.close()
        held.clear()
        deadline = time.monotonic() + 10
        while httpx.get(server.url + "/livez", timeout=10).status_code != 200:  # room again
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for ws in held:
            ws.close()
        server.stop()


def test_descriptor_exhaustion_is_logged_once_per_interval_not_per_accept(tmp_path: Path) -> None:
    # A hard limit of 80 that the server cannot raise, and a connection cap above it: accepts fail.
    server = scripted(tmp_path, "--max-connections", "1000", preexec_fn=fd_limit(80, 80))
    sockets: list[socket.socket] = []
    try:
        for _ in range(150):
            sockets.append(socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))))
        time.sleep(3)  # the event loop retries the failed accept about once a second
        log = server.log()
        assert log.count("Traceback") <= 1, log[-2000:]
        assert len(log.splitlines()) < 20, log[-2000:]
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_the_exhaustion_filter_lets_one_record_through_per_interval() -> None:
    exhaustion = ExhaustionLogFilter(interval_s=3600)
    records = [logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "socket.accept() out of system resource",
                                 None, None) for _ in range(1000)]
    passed = [record for record in records if exhaustion.filter(record)]
    other = logging.LogRecord("tether", logging.ERROR, __file__, 1, "something else", None, None)
    assert len(passed) == 1 and exhaustion.filter(other)
