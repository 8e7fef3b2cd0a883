"""Smoke tests of the benchmark programs: they run end to end and write sane JSON (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODES = {"ws_cached", "ws_plain", "http_stored", "http_full"}


def test_turn_cost_smoke(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tether.bench.turn_cost", "--lengths", "200,2000", "--repeats", "1", "--out",
         str(tmp_path)],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "turn_cost.json").read_text())
    assert set(result["modes"]) == MODES
    for mode in result["modes"].values():
        assert [p["target_tokens"] for p in mode["points"]] == [200, 2000]
        for point in mode["points"]:
            assert point["median_server_ms"] > 0 and point["median_client_ms"] > 0
            assert point["context_tokens"] >= point["target_tokens"]
    assert (tmp_path / "turn_cost.png").stat().st_size > 0


def test_tether_bench_smoke(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tether.cli", "bench", "--smoke", "--out", str(tmp_path)],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {row["network"] for row in result["summary"]} == {"loopback", "wan"}
    for row in result["summary"]:
        assert set(row["modes"]) == MODES
        for figures in row["modes"].values():
            assert figures["rollout_s"] > 0 and figures["bytes_sent"] > 0 and figures["turns"] >= 2
    assert len(result["rollouts"]) == 2 * len(MODES)
    for name in ("turn_latency.png", "turn_overhead.png", "rollout_time.png"):
        assert (tmp_path / name).stat().st_size > 0
