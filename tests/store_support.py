"""The stores a test can run a server on (`--store` value), and a way to read back what each has written,
so the same test body checks memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

STORED_KINDS = ("sqlite", "postgresql")  # the stores that persist


@dataclass
class StoreUnderTest:
    kind: str  # "memory" | "sqlite" | "postgresql"
    spec: str  # the `--store` value
    _written: Callable[[], bytes]

    def written(self) -> bytes:
        """Everything this store has put on disk (SQLite) or in its tables (PostgreSQL) so far."""
        return self._written()


def sqlite_bytes(path: Path) -> bytes:
    """The database as it is on disk now, including the write-ahead log."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def store_for(kind: str, request: pytest.FixtureRequest, directory: Path) -> StoreUnderTest:
    """A fresh store of `kind`; PostgreSQL gets a new database on the session's server."""
    if kind == "memory":
        return StoreUnderTest(kind, "memory", lambda: b"")
    if kind == "sqlite":
        db = directory / "db" / "responses.sqlite3"
        return StoreUnderTest(kind, f"sqlite:{db}", lambda: sqlite_bytes(db))
    if kind == "postgresql":
        postgres = request.getfixturevalue("postgres")
        url = postgres.create_database()
        return StoreUnderTest(kind, url, lambda: postgres.contents(url))
    raise ValueError(kind)
