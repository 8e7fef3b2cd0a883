"""The garbage collector set for a process that is a server (`tether serve`, each of its `--workers`).

A turn allocates thousands of short-lived dicts and lists (its events, parsed input, the Response) and
almost none of them end up in reference cycles, while CPython's default (a young collection every 700
allocations) then walks them again and again, and every older collection also walks what lives as long
as the process (modules, the app, the engine). Under the load benchmark's 1,000 agent loops, tuning
both cut the server's CPU per turn by about a quarter (`python -m tether.bench.load`, BENCHMARKS.md).
Not applied to a server started inside another program's process (`TetherServer.start`): the collector
is that program's to set.
"""

from __future__ import annotations

import gc

#: allocations before a young collection, then young and middle collections before the next older one
#: (CPython's default: 700, 10, 10)
SERVING_THRESHOLDS = (100_000, 50, 100)


def tune_for_serving() -> None:
    """Once start-up is done: what exists now lives as long as the process, so the collector stops
    walking it (`gc.freeze`), and collections run far less often."""
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
