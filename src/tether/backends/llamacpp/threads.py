"""How many CPU threads the engine uses: by default every core while that is fastest, one fewer while
another process takes a core.

llama.cpp's CPU backend (built with OpenMP here) meets at a barrier after every operation of the
graph, about a thousand times per token, and its waiting threads spin. When another process takes one
of the cores, the thread that lands there is descheduled at some barriers and the others spin until
it returns: measured on 2 cores, 2 threads then decode 20 to 70 times slower than 1 thread does, where
on an idle machine they are 1.5x (decode) to 2x (prefill) faster (BENCHMARKS.md, "Threads"). Making
the waits passive (`OMP_WAIT_POLICY=PASSIVE`) removes the collapse but costs 2.5x on an idle machine.

So `ThreadGovernor` picks, step by step, between all cores and one fewer: it mostly runs the current
choice, now and then runs one step with the other, and compares it with recent steps of the same size
(batch tokens). On all cores, a step much slower than the recent ones (a neighbour just arrived) makes
it try one fewer at once; a probe that loses backs the next one off, the longer the more it lost (up
to `PROBE_MAX` steps), so probing a collapsed setting costs about 2% of the time. An explicit
`--threads` is used as given, without the governor.
"""

from __future__ import annotations

import os
import statistics
from collections import deque

PROBE_START = 16  # steps between probes after a switch
PROBE_MAX = 2048  # the longest back-off between probes
LOSS_BUDGET = 50  # after a probe r times slower, the next comes r x this many steps later (2% of the time)
WIN = 0.9  # a probe must be this much faster (ratio of step times) to switch
SUDDEN = 3.0  # a step this many times slower than its recent ones triggers a probe
RECENT = 8  # step times remembered per (threads, batch size)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ThreadGovernor:
    def __init__(self, most: int, adaptive: bool = True) -> None:
        self.most = max(1, most)
        self.fewer = max(1, self.most - 1)
        self.adaptive = adaptive and self.most > 1
        self.current = self.most
        self.switches = 0
        self.probes = 0
        self._recent: dict[tuple[int, int], deque[float]] = {}
        self._backoff = PROBE_START
        self._until_probe = 1  # compare the two counts right away: the machine may be busy from the start
        self._reference: float | None = None

    @property
    def other(self) -> int:
        return self.fewer if self.current == self.most else self.most

    def threads_for(self, size: int) -> int:
        """The thread count for the next step, of `size` batch tokens."""
        if not self.adaptive or self._until_probe > 0 or not self._recent.get((self.current, size)):
            return self.current
        return self.other

    def record(self, threads: int, size: int, seconds: float) -> None:
        """The time a step of `size` tokens took with `threads` threads."""
        if not self.adaptive:
            return
        own = self._recent.setdefault((self.current, size), deque(maxlen=RECENT))
        if threads == self.current:
            sudden = len(own) >= 2 and seconds > SUDDEN * statistics.median(own)
            if sudden and self.current == self.most:
                self._until_probe = 0  # a neighbour arrived, maybe: see whether one thread fewer does better
                self._reference = seconds  # against this step, not the times from before the change
            else:
                self._until_probe -= 1
            own.append(seconds)
            return
        self.probes += 1
        reference = self._reference or (statistics.median(list(own)[-3:]) if own else None)
        self._reference = None
        if reference is not None and seconds < WIN * reference:
            self.current, self.switches = threads, self.switches + 1
            self._backoff = PROBE_START
            for key in [key for key in self._recent if key[0] == threads]:
                del self._recent[key]  # from before the machine changed: no reference any more
            self._recent[(threads, size)] = deque([seconds], maxlen=RECENT)
        else:
            ratio = seconds / reference if reference else 1.0
            self._backoff = min(PROBE_MAX, max(self._backoff * 2, int(LOSS_BUDGET * ratio)))
        self._until_probe = self._backoff


    def stats(self) -> dict[str, int | bool]:
        return {"most": self.most, "current": self.current, "adaptive": self.adaptive,
                "switches": self.switches, "probes": self.probes}
