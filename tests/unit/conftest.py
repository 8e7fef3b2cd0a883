"""Fixtures the unit ring shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.store.base import ResponseStore
from tether.store.memory import MemoryStore
from tether.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResponseStore]:
    """A real SQLite file, then the memory store: what a test that requests `store` runs against."""
    opened: ResponseStore = SQLiteStore(tmp_path / "responses.sqlite3") if request.param == "sqlite" else MemoryStore()
    await opened.open()
    yield opened
    await opened.close()
