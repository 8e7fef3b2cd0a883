"""The default store: one SQLite file (WAL), written from a single worker thread.

Several processes may share the file (`--workers N`): WAL lets readers run beside the one writer, and
a writer waits for the lock (busy timeout) instead of failing; a write transaction takes the lock up
front (`BEGIN IMMEDIATE`), where the busy timeout applies, rather than upgrading a read lock, where it
would not."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from ..api.items import Item
from .base import ChainLink, ResponseStore, StoredResponse, chain_of_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    previous_response_id TEXT,
    status TEXT NOT NULL,
    response BLOB NOT NULL,
    input_items BLOB NOT NULL,
    output BLOB NOT NULL,
    placement TEXT,
    runner TEXT
);
CREATE TABLE IF NOT EXISTS items (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    response_id TEXT NOT NULL,
    item BLOB NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id);
-- How many deletions were ever committed: a process keeping recent chains in memory serves one only
-- while this number is what it was when the chain was read (core/recent.py).
CREATE TABLE IF NOT EXISTS deletions (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
INSERT OR IGNORE INTO deletions VALUES (0, 0);
"""
#: columns added after the first schema, with their types: added to an older file when it is opened
ADDED_COLUMNS = (("placement", "TEXT"), ("runner", "TEXT"))


#: how long a write waits for another process's transaction before it fails
BUSY_TIMEOUT_S = 30.0

# Follows previous_response_id from the head, newest first; every hop must belong to the owner.
# The depth bound stops a corrupted cycle.
CHAIN_QUERY = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT id, 0 FROM responses WHERE id = ? AND owner = ?
    UNION ALL
    SELECT r.previous_response_id, chain.depth + 1
    FROM responses r JOIN chain ON r.id = chain.id
    WHERE r.owner = ? AND r.previous_response_id IS NOT NULL AND chain.depth < 100000
)
SELECT r.id, r.previous_response_id, r.status, r.input_items, r.output, r.placement,
    CASE WHEN chain.depth = 0 THEN r.response END, (SELECT n FROM deletions)
FROM chain JOIN responses r ON r.id = chain.id AND r.owner = ?
ORDER BY chain.depth
"""


SAVE_RESPONSE = (
    "INSERT OR REPLACE INTO responses (id, owner, created_at, previous_response_id, status, response, input_items,"
    " output, placement, runner) VALUES (:id, :owner, :created_at, :previous_response_id, :status, :response,"
    " :input_items, :output, :placement, :runner)"
)


class SQLiteStore(ResponseStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        present = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
        for name, kind in ADDED_COLUMNS:
            if name not in present:
                conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        assert self._conn is not None, "store not opened"
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _save_sync(self, record: StoredResponse) -> int:
        assert self._conn is not None, "store not opened"
        items = [(record.owner, item_id, record.id, orjson.dumps(item))
                 for item_id, item in record.items_by_id().items()]
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(SAVE_RESPONSE, record.columns())
                conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", items)
                deletions = int(conn.execute("SELECT n FROM deletions").fetchone()[0])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return deletions

    async def save(self, record: StoredResponse) -> int:
        return await asyncio.to_thread(self._save_sync, record)

    async def deletions(self) -> int:
        rows = await asyncio.to_thread(self._run, "SELECT n FROM deletions")
        return int(rows[0][0])

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT response, input_items, placement, runner FROM responses WHERE id = ? AND owner = ?",
            (response_id, owner),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredResponse(orjson.loads(row[0]), orjson.loads(row[1]), owner, placement=row[2], runner=row[3])

    async def get_chain(self, response_id: str, owner: str) -> list[ChainLink] | None:
        """One query for the whole chain, owner checked on every hop; only items are decoded."""
        return chain_of_rows(await asyncio.to_thread(self._run, CHAIN_QUERY, (response_id, owner, owner, owner)))

    def _delete_sync(self, response_id: str, owner: str) -> bool:
        assert self._conn is not None, "store not opened"
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner))
                if cursor.rowcount:
                    conn.execute("DELETE FROM items WHERE response_id = ?", (response_id,))
                    conn.execute("UPDATE deletions SET n = n + 1")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return cursor.rowcount > 0

    async def delete(self, response_id: str, owner: str) -> bool:
        return await asyncio.to_thread(self._delete_sync, response_id, owner)

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT item FROM items WHERE owner = ? AND id = ?", (owner, item_id)
        )
        return orjson.loads(rows[0][0]) if rows else None
