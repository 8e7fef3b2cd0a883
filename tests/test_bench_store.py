"""Smoke tests of the store benchmarks on a real PostgreSQL: `turn_cost --store` and `store_ops` run end to
end, write sane JSON, and really used the store they were given (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from .pg_support import EmbeddedPostgres


def stored_responses(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM responses").fetchone()
    return int(row[0]) if row else 0


def test_turn_cost_on_postgresql(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    subprocess.run(
        [sys.executable, "-m", "tether.bench.turn_cost", "--lengths", "200", "--repeats", "1", "--out", str(tmp_path),
         "--store", url],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "turn_cost.json").read_text())
    assert result["store"] == "postgresql"
    [point] = result["modes"]["http_stored"]["points"]
    assert point["median_server_ms"] > 0
    assert stored_responses(url) >= 2  # the store:true mode's turns went to this database


def test_store_ops_on_sqlite_and_postgresql(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    subprocess.run(
        [sys.executable, "-m", "tether.bench.store_ops", "--turns", "5", "--stores", f"sqlite,{url}",
         "--out", str(tmp_path)],
        check=True, timeout=180, capture_output=True,
    )
    result = json.loads((tmp_path / "store_ops.json").read_text())
    assert list(result["stores"]) == ["sqlite", url]
    for point in result["stores"].values():
        assert len(point["save_ms"]) == len(point["chain_ms"]) == 5
        assert point["median_save_ms"] > 0 and point["median_chain_ms"] > 0
    assert stored_responses(url) == 5
