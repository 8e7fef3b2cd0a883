"""The default store: one SQLite file (WAL), written from a single worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from ..api.items import Item
from .base import ResponseStore, StoredResponse

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    response BLOB NOT NULL,
    input_items BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    response_id TEXT NOT NULL,
    item BLOB NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id);
"""


class SQLiteStore(ResponseStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        assert self._conn is not None, "store not opened"
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _save_sync(self, record: StoredResponse) -> None:
        assert self._conn is not None, "store not opened"
        items = [
            (record.owner, str(item["id"]), record.id, orjson.dumps(item))
            for item in [*record.input_items, *record.response.get("output", [])]
            if item.get("id")
        ]
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.owner,
                        int(record.response.get("created_at") or 0),
                        orjson.dumps(record.response),
                        orjson.dumps(record.input_items),
                    ),
                )
                conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", items)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def save(self, record: StoredResponse) -> None:
        await asyncio.to_thread(self._save_sync, record)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT response, input_items FROM responses WHERE id = ? AND owner = ?", (response_id, owner)
        )
        if not rows:
            return None
        return StoredResponse(orjson.loads(rows[0][0]), orjson.loads(rows[0][1]), owner)

    def _delete_sync(self, response_id: str, owner: str) -> bool:
        assert self._conn is not None, "store not opened"
        with self._lock:
            cursor = self._conn.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner))
            if cursor.rowcount:
                self._conn.execute("DELETE FROM items WHERE response_id = ?", (response_id,))
            return cursor.rowcount > 0

    async def delete(self, response_id: str, owner: str) -> bool:
        return await asyncio.to_thread(self._delete_sync, response_id, owner)

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT item FROM items WHERE owner = ? AND id = ?", (owner, item_id)
        )
        return orjson.loads(rows[0][0]) if rows else None
