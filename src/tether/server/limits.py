"""What keeps a flood of connections from taking the process down: the soft file-descriptor limit
raised to the hard one at start, a connection cap below it (refused with 503, HTTP and WebSocket
alike), and descriptor exhaustion logged once per interval instead of a traceback per failed accept."""

from __future__ import annotations

import logging
import resource
import time

#: descriptors kept free for what the server itself opens (the store, upstream connections, logs)
FD_RESERVE = 128
EXHAUSTION_LOG_INTERVAL_S = 10.0
#: what such records say: a failed accept, or uvicorn refusing past its connection cap
EXHAUSTION_MARKERS = ("Too many open files", "out of system resource", "Exceeded concurrency limit")


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def default_max_connections(fd_limit: int) -> int:
    """Connections tether accepts when `--max-connections` is not given: what the descriptors allow."""
    return max(64, fd_limit - FD_RESERVE)


class ExhaustionLogFilter(logging.Filter):
    """Lets one descriptor-exhaustion record through per interval, saying how many it held back."""

    def __init__(self, interval_s: float = EXHAUSTION_LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last = float("-inf")
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]}"
        if not any(marker in text for marker in EXHAUSTION_MARKERS):
            return True
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._held_back += 1
            return False
        if self._held_back:
            record.msg = f"{record.msg} ({self._held_back} more like it in the last {self.interval_s:g} s)"
        self._last, self._held_back = now, 0
        record.exc_info = None  # the message says it all; a traceback per accept is what flooded the log
        record.exc_text = None
        return True


def install_exhaustion_filter() -> ExhaustionLogFilter:
    """On the loggers that report failed accepts (asyncio's, uvicorn's) and tether's own."""
    exhaustion = ExhaustionLogFilter()
    for name in ("asyncio", "uvicorn.error", "uvicorn", "tether"):
        logging.getLogger(name).addFilter(exhaustion)
    return exhaustion
