"""`tether serve --workers N`: N server processes on one port, each with its own event loop, sharing the store.

A supervisor process reserves the port, starts N workers (each a whole `tether serve`: its own backend,
store connection, WebSocket connections and connection caches) and restarts one that dies. Each worker
binds its own listening socket to the port with SO_REUSEPORT, so the kernel spreads new connections
over the workers evenly, whatever each is doing, and a WebSocket stays on the worker that accepted it
for its whole life. What crosses workers goes through the store: a chain stored by one worker continues
on any other, over HTTP or a new WebSocket, which is why a shared store (SQLite or PostgreSQL, never
memory) is required.

The supervisor forwards SIGTERM/SIGINT to the workers once, so each drains its WebSocket connections
as a single `tether serve` would, and waits for them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from .config import ServerConfig
from .metrics_exposition import MULTIPROCESS_ENV, forget_process

#: set in a worker's environment: the (host, port) to bind with SO_REUSEPORT, as JSON
BIND_ENV = "TETHER_WORKER_BIND"
#: set in a worker's environment: the `tether serve` arguments, as JSON
ARGS_ENV = "TETHER_WORKER_ARGS"
#: set in a worker's environment: the supervisor's pid
PARENT_ENV = "TETHER_WORKER_PARENT"
#: set in a worker's environment: the pipe on which it says it is serving
READY_ENV = "TETHER_WORKER_READY_FD"
#: how long workers get to drain at shutdown, on top of their own grace period, before SIGKILL
STOP_MARGIN_S = 10.0


def refusal(workers: int, store_spec: str) -> str | None:
    """Why `--workers` cannot be honoured with these settings, or None."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers == 1:
        return None
    if store_spec == "memory":
        return ("--workers needs a store the workers share (sqlite:PATH or postgresql://...): "
                "with --store memory a chain would be lost when its next request reaches another worker")
    if not hasattr(socket, "SO_REUSEPORT") or not sys.platform.startswith("linux"):
        return "--workers needs SO_REUSEPORT load balancing (Linux); run one tether process per port instead"
    return None


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)  # proto is TCP: asyncio then sets TCP_NODELAY on accepted sockets
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def worker_sockets() -> list[socket.socket] | None:
    """In a worker: its own socket on the shared port. None in a plain `tether serve`.

    The socket is only bound here: asyncio calls listen() once the app has started (store open, model
    loaded), so a starting worker takes no connections it cannot serve yet. That moment is what the
    supervisor is told as "ready"."""
    bind = os.environ.get(BIND_ENV)
    if not bind:
        return None
    host, port = json.loads(bind)
    sock = reuseport_socket(host, int(port))
    ready_fd = os.environ.get(READY_ENV)
    if ready_fd:
        threading.Thread(target=_report_ready, args=(sock, int(ready_fd)), name="tether-ready", daemon=True).start()
    return [sock]


def _report_ready(sock: socket.socket, ready_fd: int) -> None:
    try:
        while not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            time.sleep(0.05)
        os.write(ready_fd, b"r")
    except OSError:
        pass  # the socket closed before it listened: the worker is exiting, and its exit says so
    finally:
        os.close(ready_fd)


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready_pipe: int  # read end: one byte arrives once the worker serves, EOF if it dies first; -1 once read
    ready: bool = False


class Supervisor:
    """Starts the workers; a worker that dies after it served is replaced, one that dies before it served
    stops the whole server (a bad flag, an unreachable store, a missing model would only loop)."""

    def __init__(self, count: int, args: argparse.Namespace, grace_s: float) -> None:
        self.count = count
        self.args = args
        self.grace_s = grace_s
        self.stopping = threading.Event()
        self.workers: list[Worker] = []
        self.metrics_dir = ""

    def run(self) -> int:
        defaults = ServerConfig()
        host = self.args.host or defaults.host
        port = self.args.port if self.args.port is not None else defaults.port
        try:
            # Held (never listening) for the supervisor's life: resolves port 0 once, and keeps the port
            # ours while a worker is replaced.
            reservation = reuseport_socket(host, port)
        except OSError as exc:
            print(f"tether: cannot bind {host}:{port}: {exc}", file=sys.stderr, flush=True)
            return 1
        # The workers' metrics, each in files of its own, so that whichever worker a scrape reaches
        # answers for all of them (server/metrics_exposition.py).
        self.metrics_dir = tempfile.mkdtemp(prefix="tether-metrics-")
        with reservation, contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, self.metrics_dir, True)
            port = reservation.getsockname()[1]
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stopping.set())
            self.workers = [self._spawn(index, host, port) for index in range(self.count)]
            try:
                status = self._watch(host, port)
            finally:
                self._stop_all()
        return status

    def _spawn(self, index: int, host: str, port: int) -> Worker:
        settings = {**vars(self.args), "workers": 1, "host": host, "port": port}
        read_end, write_end = os.pipe()
        env = {**os.environ, BIND_ENV: json.dumps([host, port]), ARGS_ENV: json.dumps(settings),
               PARENT_ENV: str(os.getpid()), READY_ENV: str(write_end), MULTIPROCESS_ENV: self.metrics_dir}
        # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which then stops each
        # worker once (a second signal would make uvicorn skip the drain).
        process = subprocess.Popen([sys.executable, "-m", "tether.server.workers"], env=env,
                                   start_new_session=True, pass_fds=(write_end,))
        os.close(write_end)
        return Worker(index, process, read_end)

    def _watch(self, host: str, port: int) -> int:
        announced = False
        while not self.stopping.is_set():
            waiting = {w.ready_pipe: w for w in self.workers if w.ready_pipe >= 0}
            readable, _, _ = select.select(list(waiting), [], [], 0.5)
            for fd in readable:
                worker = waiting[fd]
                worker.ready = os.read(fd, 1) == b"r"
                os.close(fd)
                worker.ready_pipe = -1
                if not worker.ready:
                    worker.process.wait()  # closed without a word: it died while starting
            if not announced and all(w.ready for w in self.workers):
                announced = True
                shown = f"[{host}]" if ":" in host else host
                print(f"tether: {self.count} workers serving http://{shown}:{port} (supervisor pid {os.getpid()})",
                      flush=True)
            for slot, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None or self.stopping.is_set():
                    continue
                if not worker.ready:
                    print(f"tether: worker {worker.index} (pid {worker.process.pid}) exited with status {code} "
                          "before it served; stopping", file=sys.stderr, flush=True)
                    return code or 1
                print(f"tether: worker {worker.index} (pid {worker.process.pid}) exited with status {code}; "
                      "starting another", file=sys.stderr, flush=True)
                forget_process(worker.process.pid, self.metrics_dir)
                self.workers[slot] = self._spawn(worker.index, host, port)
        return 0

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.ready_pipe >= 0:
                os.close(worker.ready_pipe)
            if worker.process.poll() is None:
                worker.process.terminate()
        deadline = time.monotonic() + self.grace_s + STOP_MARGIN_S
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def serve_workers(args: argparse.Namespace, store_spec: str) -> int:
    """`tether serve` with `args.workers` workers on `store_spec`, until a signal stops them."""
    from ..store import open_store

    problem = refusal(args.workers, store_spec)
    if problem is None:
        try:
            open_store(store_spec)  # only parses the spec: a bad one is refused before any worker starts
        except (ValueError, ImportError) as exc:
            problem = str(exc)
    if problem is not None:
        print(f"tether: {problem}", file=sys.stderr, flush=True)
        return 2
    workers_args = argparse.Namespace(**{**vars(args), "store": store_spec})
    return Supervisor(args.workers, workers_args, ServerConfig().shutdown_grace_seconds).run()


def _die_with_the_supervisor() -> None:
    """Linux: have the kernel send SIGTERM when the supervisor dies (even by SIGKILL): no orphans."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != os.environ.get(PARENT_ENV):  # it died before prctl took effect
        sys.exit(1)


def worker_main() -> int:
    _die_with_the_supervisor()
    settings: dict[str, Any] = json.loads(os.environ[ARGS_ENV])
    from ..cli import run_serve

    return run_serve(argparse.Namespace(**settings))


if __name__ == "__main__":
    sys.exit(worker_main())
