"""Response persistence behind one interface (`base`): memory and SQLite."""

from __future__ import annotations

from .base import ResponseStore, StoredResponse


def open_store(spec: str) -> ResponseStore:
    """`memory` or `sqlite:PATH`."""
    if spec == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if spec.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(spec.removeprefix("sqlite:"))
    raise ValueError(f"unknown store {spec!r}: use 'memory' or 'sqlite:PATH'")


__all__ = ["ResponseStore", "StoredResponse", "open_store"]
