"""`tether bench scale --smoke`: two real llama-server replicas, tether's pool in front, every placement
end to end; the JSON says what the engines served from their caches (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_llamaserver_pool import needs_llama_server

pytestmark = pytest.mark.llamaserver
PLACEMENTS = ["ws_affinity", "http_affinity", "round_robin"]


def test_scale_bench_smoke(tmp_path: Path) -> None:
    needs_llama_server()
    done = subprocess.run([sys.executable, "-m", "tether.cli", "bench", "scale", "--smoke", "--out", str(tmp_path)],
                          timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-12000:]
    result = json.loads((tmp_path / "scale.json").read_text())
    rows = {row["placement"]: row for row in result["summary"]["rows"]}
    assert list(rows) == PLACEMENTS
    agents, turns = result["settings"]["agents"], result["settings"]["shape"]["turns"]
    for name, row in rows.items():
        assert row["turns"] == agents * turns
        mine = [s for s in result["samples"] if s["placement"] == name]
        assert len(mine) == agents * turns
        assert all(0 <= s["cached_tokens"] <= s["prompt_tokens"] and s["output_tokens"] > 0 for s in mine)
        # Every request reached a replica, and the replicas' own counter of evaluated prompt tokens
        # agrees with the usage they reported turn by turn.
        assert sum(row["requests_per_replica"].values()) == agents * turns
        assert row["engine_evaluated_prompt_tokens"] == sum(s["prompt_tokens"] - s["cached_tokens"] for s in mine)
    for name in PLACEMENTS:
        assert sorted(rows[name]["requests_per_replica"].values()) == [turns, turns]  # the load is even
        samples = {(s["agent"], s["turn"]): s for s in result["samples"] if s["placement"] == name}
        for (agent, turn), sample in samples.items():
            if not turn:
                continue
            previous = samples[(agent, turn - 1)]
            if name == "round_robin":
                # The next request went to the other replica, which holds only the shared prefix.
                assert sample["replica"] != previous["replica"]
                assert sample["cached_tokens"] < previous["prompt_tokens"]
            else:
                # Pinned to one replica, a conversation finds its own history in that replica's cache:
                # all of the previous turn's prompt, more than the shared prefix.
                assert sample["cached_tokens"] >= previous["prompt_tokens"]
    assert {t["placement"] for t in result["summary"]["targets"]} == {"ws_affinity", "http_affinity"}
    assert (tmp_path / "scale.png").stat().st_size > 0
    assert "| round_robin |" in (tmp_path / "scale.md").read_text()
