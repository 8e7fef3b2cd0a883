"""The load benchmark runs end to end (no timing assertions), and its clients' result line survives a
pipe: after uvloop has run, a plain stdout write of more than 64 KiB lost the rest of the line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys, uvloop, asyncio
from tether.bench.load_client import write_all

async def idle() -> None:
    await asyncio.sleep(0)

uvloop.run(idle())
write_all(sys.stdout.fileno(), b"x" * 300_000 + b"\\n")
"""


def test_a_result_line_larger_than_a_pipe_arrives_whole() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
    time.sleep(1.0)  # the parent reads late, as the benchmark does with its second client
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert len(out) == 300_001


def test_load_smoke(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tether.bench.load", "--connections", "4", "--duration", "2", "--warmup", "0.5",
         "--out", str(tmp_path)],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "load.json").read_text())
    (point,) = result["points"]
    assert point["connections"] == 4 and point["errors"] == []
    assert point["turns"] > 0 and point["events"] >= point["turns"] * 5  # created .. completed per turn
    assert point["p99_ms"] >= point["p50_ms"] > 0
