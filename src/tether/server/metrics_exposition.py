"""What `/metrics` answers: this process's metrics, or under `--workers N` the whole server's.

With several workers a scrape reaches whichever worker the kernel picked for its connection, so each
worker answers for all of them: the supervisor gives every worker one `PROMETHEUS_MULTIPROC_DIR`, where
prometheus_client keeps each process's values in a file of its own, and a scrape adds them up
(counters and histograms summed, gauges by the mode each one declares in `core.metrics`). Collectors
that read live state at scrape time (the embedded engine's, `core.metrics.PROCESS_COLLECTORS`) cannot
be shared that way: they report the answering worker's own figures.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import REGISTRY

from ..core.metrics import PROCESS_COLLECTORS

#: where prometheus_client keeps the workers' values (set by the supervisor, read at import)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def exposition() -> bytes:
    """The Prometheus text for a scrape of this process."""
    folder = multiprocess_dir()
    if folder is None:
        return generate_latest(REGISTRY) + generate_latest(PROCESS_COLLECTORS)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry) + generate_latest(PROCESS_COLLECTORS)


def forget_process(pid: int, folder: str) -> None:
    """In the supervisor, when a worker has exited: its live gauges stop counting (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
