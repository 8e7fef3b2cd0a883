"""Smoke test of the capacity benchmark: it runs end to end on both backends and writes sane JSON
(no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("backend", ["scripted", "upstream"])
def test_capacity_smoke(tmp_path: Path, backend: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tether.bench.capacity", "--connections", "4", "--turns", "25", "--tool-output-bytes",
         "500", "--backend", backend, "--out", str(tmp_path)],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "capacity.json").read_text())
    assert result["backend"] == backend
    assert result["turns"] == 100 and result["connections"] == 4
    # 100 turns, so the server's CPU time is many clock ticks (10 ms each) even on a fast machine.
    assert result["server_cpu_ms_per_turn"] > 0
    # 25 turns of 500-byte tool outputs: the conversation the lane holds is at least that big.
    assert result["conversation_json_bytes"] > 2 * 500
    assert result["rss_lanes_bytes"] > 0 and result["rss_idle_bytes"] > 0
