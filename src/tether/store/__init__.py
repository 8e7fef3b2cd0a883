"""Response persistence behind one interface (`base`): memory, SQLite and PostgreSQL."""

from __future__ import annotations

from .base import ResponseStore, StoredResponse

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(spec: str) -> ResponseStore:
    """`memory`, `sqlite:PATH` or `postgresql://...` (a libpq URL)."""
    if spec == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if spec.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(spec.removeprefix("sqlite:"))
    if spec.startswith(POSTGRES_SCHEMES):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise ImportError("a PostgreSQL store needs psycopg: pip install 'tether[postgres]'") from exc
        return PostgresStore(spec)
    raise ValueError(f"unknown store {spec!r}: use 'memory', 'sqlite:PATH' or 'postgresql://...'")


__all__ = ["ResponseStore", "StoredResponse", "open_store"]
