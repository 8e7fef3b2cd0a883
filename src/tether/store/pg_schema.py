"""The PostgreSQL store's versioned schema: the ordered list of migrations and the code that applies
the missing ones at start.

Every process of a deployment runs `migrate` when it opens the store; a transaction-scoped advisory
lock makes concurrent starts apply each migration exactly once, and `schema_version` records what was
applied. A database migrated by a newer tether (a version this code does not know) is refused rather
than written with an older idea of the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


class SchemaTooNew(RuntimeError):
    """The database's schema is newer than any migration this tether knows."""


# Documents are kept as the bytes orjson wrote (BYTEA), not JSONB: the server never queries inside them,
# and neither side then pays for a JSON parse on the way in or out.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "responses and their items",
        """
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            previous_response_id TEXT,
            status TEXT NOT NULL,
            response BYTEA NOT NULL,
            input_items BYTEA NOT NULL,
            output BYTEA NOT NULL,
            placement TEXT
        );
        CREATE TABLE items (
            owner TEXT NOT NULL,
            id TEXT NOT NULL,
            response_id TEXT NOT NULL,
            item BYTEA NOT NULL,
            PRIMARY KEY (owner, id)
        );
        CREATE INDEX items_by_response ON items (response_id);
        """,
    ),
    # The process running a background response, so another process can tell a live run from a dead one.
    Migration(2, "the runner of a background response", "ALTER TABLE responses ADD COLUMN runner TEXT"),
    # How many deletions were ever committed: a process that keeps recent chains in memory serves one
    # only while this number is what it was when the chain was read (`core/recent.py`).
    Migration(
        3,
        "the count of deletions",
        """
        CREATE TABLE deletions (id INTEGER PRIMARY KEY CHECK (id = 0), n BIGINT NOT NULL);
        INSERT INTO deletions VALUES (0, 0);
        """,
    ),
)

# Any fixed 64-bit number, the same in every process: it names the lock, nothing else.
MIGRATION_LOCK = 0x7E7E_5C4E_0001

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def check_order(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3, ... in order; got {versions}")


async def current_version(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(
    conn: psycopg.AsyncConnection[Any], migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Bring the schema up to the last of `migrations` in one transaction; returns the versions applied."""
    check_order(migrations)
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(VERSION_TABLE)
        version = await current_version(conn)
        known = migrations[-1].version if migrations else 0
        if version > known:
            raise SchemaTooNew(
                f"the database's schema is at version {version}, newer than this tether knows ({known}): "
                "upgrade tether, or point it at another database"
            )
        for migration in migrations:
            if migration.version <= version:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
            applied.append(migration.version)
    return applied
