"""The shared store: PostgreSQL over psycopg 3 (async, pooled), for several tether processes or replicas.

Same semantics as the SQLite store: every read is scoped by owner, a chain is hydrated in one query
with the owner checked on every hop, items are found by id, and `save` returns only once its
transaction is committed. The schema is versioned (`pg_schema`) and migrated when the store opens.

`--store postgresql://USER:PASSWORD@HOST:PORT/DB` takes any libpq URL; two extra query parameters size
the connection pool of each process: `pool_min_size` (default 1) and `pool_max_size` (default 8).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from ..api.items import Item
from .base import ChainLink, ResponseStore, StoredResponse, chain_of_rows
from .pg_schema import MIGRATIONS, Migration, migrate

log = logging.getLogger("tether.store")
T = TypeVar("T")

POOL_OPTIONS = {"pool_min_size": 1, "pool_max_size": 8}

# One statement, so one round trip and no BEGIN/COMMIT of its own: the response, its items, and the count
# of deletions as this statement's snapshot saw it. A stored response is replaced only by its own owner
# (ids are server-made: defence in depth).
SAVE = """
WITH saved AS (
    INSERT INTO responses
        (id, owner, created_at, previous_response_id, status, response, input_items, output, placement, runner)
    VALUES (%(id)s, %(owner)s, %(created_at)s, %(previous_response_id)s, %(status)s, %(response)s, %(input_items)s,
        %(output)s, %(placement)s, %(runner)s)
    ON CONFLICT (id) DO UPDATE SET
        created_at = EXCLUDED.created_at, previous_response_id = EXCLUDED.previous_response_id,
        status = EXCLUDED.status, response = EXCLUDED.response, input_items = EXCLUDED.input_items,
        output = EXCLUDED.output, placement = EXCLUDED.placement, runner = EXCLUDED.runner
    WHERE responses.owner = EXCLUDED.owner
), saved_items AS (
    INSERT INTO items (owner, id, response_id, item)
    SELECT %(owner)s, item.id, %(id)s, item.body FROM unnest(%(item_ids)s::text[], %(items)s::bytea[]) AS item(id, body)
    ON CONFLICT (owner, id) DO UPDATE SET response_id = EXCLUDED.response_id, item = EXCLUDED.item
)
SELECT n FROM deletions
"""

# Walks previous_response_id from the head, carrying each row's columns, newest first; a hop to a
# response that is missing or another owner's ends the walk with a non-null previous id on the last
# row. The depth bound stops a corrupted cycle.
CHAIN_QUERY = """
WITH RECURSIVE chain AS (
    SELECT id, previous_response_id, status, input_items, output, placement, response, 0 AS depth
    FROM responses WHERE id = %(id)s AND owner = %(owner)s
    UNION ALL
    SELECT r.id, r.previous_response_id, r.status, r.input_items, r.output, r.placement, NULL::bytea,
        chain.depth + 1
    FROM responses r JOIN chain ON r.id = chain.previous_response_id
    WHERE r.owner = %(owner)s AND chain.depth < 100000
)
SELECT id, previous_response_id, status, input_items, output, placement, response, (SELECT n FROM deletions)
FROM chain ORDER BY depth
"""


def split_pool_options(url: str) -> tuple[str, dict[str, int]]:
    """The libpq URL without tether's pool parameters, and those parameters (libpq refuses unknown ones)."""
    parts = urlsplit(url)
    kept: list[str] = []  # libpq's own parameters, exactly as written (re-encoding could change them)
    options = dict(POOL_OPTIONS)
    for segment in parts.query.split("&") if parts.query else []:
        key, _, value = segment.partition("=")
        if unquote(key) in POOL_OPTIONS:
            value = unquote(value)
            if not value.isascii() or not value.isdigit() or int(value) < 1:
                raise ValueError(f"{unquote(key)} must be a positive whole number, got {value!r}")
            options[unquote(key)] = int(value)
        else:
            kept.append(segment)
    if options["pool_min_size"] > options["pool_max_size"]:
        raise ValueError("pool_min_size must not exceed pool_max_size")
    return urlunsplit(parts._replace(query="&".join(kept))), options


def redacted(url: str) -> str:
    """The URL as it may be logged: without its password."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(ResponseStore):
    def __init__(self, url: str, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self.conninfo, options = split_pool_options(url)
        self.shown = redacted(url)
        self.migrations = migrations
        self.pool_min_size = options["pool_min_size"]
        self.pool_max_size = options["pool_max_size"]
        self._pool: AsyncConnectionPool | None = None

    async def open(self) -> None:
        # Migrate over a connection of its own first, so that an unreachable server or a refused login
        # fails the start with libpq's own reason rather than a pool timeout.
        try:
            async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                applied = await migrate(conn, self.migrations)
        except psycopg.OperationalError as exc:
            raise RuntimeError(f"cannot open the PostgreSQL store {self.shown}: {exc}".strip()) from exc
        if applied:
            log.warning("PostgreSQL store %s: applied schema migrations %s", self.shown, applied)
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self.conninfo,
            min_size=self.pool_min_size,
            max_size=self.pool_max_size,
            kwargs={"autocommit": True},
            open=False,
            name="tether-store",
        )
        await pool.open(wait=True, timeout=30.0)
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "store not opened"
        return self._pool

    async def _retried(self, operation: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run `operation` on a pooled connection; once more on a fresh one if the first was broken
        (the server restarted, or a proxy closed it while it sat idle). Only for idempotent work."""
        try:
            async with self.pool.connection() as conn:
                return await operation(conn)
        except psycopg.OperationalError as exc:
            log.warning("PostgreSQL store: %s; retrying once on a new connection", exc)
        # The other idle connections are likely dead too (a restart drops them all): test them first.
        await self.pool.check()
        async with self.pool.connection() as conn:
            return await operation(conn)

    async def save(self, record: StoredResponse) -> int:
        """Upsert the response and its items in one statement (one round trip, its own transaction)."""
        items = record.items_by_id()  # one row per id: a statement may not update the same row twice
        params = {**record.columns(), "item_ids": list(items), "items": [orjson.dumps(item) for item in items.values()]}

        async def write(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(SAVE, params)
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        # An upsert of the same record is idempotent, so a retry after a lost reply is safe.
        return await self._retried(write)

    async def deletions(self) -> int:
        async def read(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute("SELECT n FROM deletions")
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        return await self._retried(read)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        async def read(conn: psycopg.AsyncConnection[Any]) -> Any:
            async with conn.cursor(binary=True) as cursor:
                await cursor.execute(
                    "SELECT response, input_items, placement, runner FROM responses WHERE id = %s AND owner = %s",
                    (response_id, owner),
                )
                return await cursor.fetchone()

        row = await self._retried(read)
        if row is None:
            return None
        return StoredResponse(orjson.loads(row[0]), orjson.loads(row[1]), owner, placement=row[2], runner=row[3])

    async def get_chain(self, response_id: str, owner: str) -> list[ChainLink] | None:
        """One query for the whole chain, owner checked on every hop; only items are decoded."""

        async def read(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            async with conn.cursor(binary=True) as cursor:
                # Never a prepared statement: its cached generic plan, made while the table was small, walked
                # a 300-hop chain in 35 ms where a plan made for the call takes 3 ms (0.2 ms of planning).
                await cursor.execute(CHAIN_QUERY, {"id": response_id, "owner": owner}, prepare=False)
                return await cursor.fetchall()

        return chain_of_rows(await self._retried(read))

    async def delete(self, response_id: str, owner: str) -> bool:
        # Not retried: had the first attempt committed, a second would answer "not found".
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "DELETE FROM responses WHERE id = %s AND owner = %s RETURNING id", (response_id, owner)
            )
            if await cursor.fetchone() is None:
                return False
            await conn.execute("DELETE FROM items WHERE response_id = %s AND owner = %s", (response_id, owner))
            await conn.execute("UPDATE deletions SET n = n + 1")
            return True

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        async def read(conn: psycopg.AsyncConnection[Any]) -> Any:
            async with conn.cursor(binary=True) as cursor:
                await cursor.execute("SELECT item FROM items WHERE owner = %s AND id = %s", (owner, item_id))
                return await cursor.fetchone()

        row = await self._retried(read)
        if row is None:
            return None
        item: Item = orjson.loads(row[0])
        return item
