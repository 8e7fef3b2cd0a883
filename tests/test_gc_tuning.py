"""The garbage collector is tuned in a server's own process (`TetherServer.serve`, what `tether serve`
and each of `--workers` run) and left alone when a server runs inside another program
(`TetherServer.start`, the agent's embedded server)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from tether.backends.scripted import Script, ScriptedBackend
from tether.server.config import ServerConfig
from tether.server.gc_tuning import SERVING_THRESHOLDS
from tether.server.run import TetherServer
from tether.store.memory import MemoryStore

SERVE_THEN_REPORT = textwrap.dedent("""
    import gc, threading, time
    from tether.backends.scripted import Script, ScriptedBackend
    from tether.server.config import ServerConfig
    from tether.server.run import TetherServer
    from tether.store.memory import MemoryStore

    backend = ScriptedBackend(Script.from_dict({"turns": [{"text": "hi"}]}))
    server = TetherServer(ServerConfig(port=0), backend, MemoryStore(), announce=False)

    def report_then_stop():
        deadline = time.monotonic() + 30
        while not server._uvicorn.started and time.monotonic() < deadline:
            time.sleep(0.01)
        # started is set inside uvicorn's start-up, the tuning just after it: give that a moment
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("thresholds", *gc.get_threshold(), "frozen", gc.get_freeze_count() > 0, flush=True)
        server._uvicorn.should_exit = True

    threading.Thread(target=report_then_stop, daemon=True).start()
    server.serve()
""")


def test_a_served_process_runs_with_the_serving_thresholds_and_a_frozen_start_up() -> None:
    done = subprocess.run([sys.executable, "-c", SERVE_THEN_REPORT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("thresholds"))
    assert line.split() == ["thresholds", *map(str, SERVING_THRESHOLDS), "frozen", "True"]


def test_a_server_started_inside_another_program_leaves_its_collector_alone() -> None:
    before = gc.get_threshold()
    server = TetherServer(ServerConfig(port=0), ScriptedBackend(Script.from_dict({"turns": [{"text": "hi"}]})),
                          MemoryStore(), announce=False).start()
    try:
        assert gc.get_threshold() == before
    finally:
        server.stop()
