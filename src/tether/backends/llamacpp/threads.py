"""How many CPU threads the engine uses, and how they wait.

llama.cpp's CPU backend (built with OpenMP here) meets at a barrier after every operation of the
graph, thousands of times per token. By default a waiting thread spins; when another process takes a
core, the spinning threads burn the time the descheduled one needs, and a step takes ten times longer
(measured: see BENCHMARKS.md, "Threads"). Waiting threads here yield the core after a short spin, so
a busy neighbour costs about its share of the CPU, not a collapse.
"""

from __future__ import annotations

import os

# OpenMP reads these once, when llama.cpp's library is loaded: `configure_openmp` runs before that.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_openmp() -> None:
    """Set the wait policy unless the user chose one (an environment variable wins)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    for key, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Every core this process may run on."""
    return available_cores()
