from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from typer.testing import CliRunner

from kubegate.cli import db
from kubegate.store.engine import HEAD_REVISION, Store, StoreError, normalize_url
from kubegate.store.migrations.run import head_revision
from kubegate.store.tables import GENESIS_HASH, chain_head, metadata


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_urls_map_to_async_drivers() -> None:
    assert normalize_url("sqlite:////var/lib/kubegate/k.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgres://u@db/k").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql+asyncpg://u@db/k").drivername == "postgresql+asyncpg"
    with pytest.raises(StoreError, match="needs a file path"):
        normalize_url("sqlite://")
    with pytest.raises(StoreError, match="not supported"):
        normalize_url("mysql://u@db/k")


async def test_postgresql_without_its_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if `pip install kubegate` without [postgres]
    with pytest.raises(StoreError, match=r"pip install 'kubegate\[postgres\]'"):
        await Store.open("postgresql://kubegate@127.0.0.1:9/kubegate")


def test_the_head_revision_is_alembics() -> None:
    """Store.migrate skips Alembic when the schema is at HEAD_REVISION: it must be the newest migration."""
    assert head_revision() == HEAD_REVISION


def test_a_store_at_head_opens_without_loading_alembic(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys; from kubegate.store.engine import Store\n"
        "async def main():\n    await (await Store.open(sys.argv[1])).close()\n"
        "asyncio.run(main()); print('alembic' in sys.modules)"
    )
    argv = [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'k.db'}"]
    loaded = [subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip() for _ in range(2)]
    assert loaded == ["True", "False"]  # the first open migrates a new file; the second finds it at head


async def _check_fresh(store: Store) -> None:
    assert await store.revision() == head_revision()
    async with store.read() as conn:
        head = (await conn.execute(sa.select(chain_head))).one()
    assert (head.id, head.seq, head.hash) == (1, 0, GENESIS_HASH)
    await store.ping()


async def test_sqlite_open_migrates_durably(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "kubegate.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        await _check_fresh(store)
        async with store.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        await store.close()
    again = await Store.open(f"sqlite:///{path}")  # migrating an up-to-date store changes nothing
    await _check_fresh(again)
    await again.close()


@pytest.mark.postgres
async def test_postgres_open_migrates_once_under_concurrent_replicas(pg_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(pg_url) for _ in range(3)))
    try:
        for store in stores:
            await _check_fresh(store)
        assert stores[0].dialect == "postgresql"
    finally:
        for store in stores:
            await store.close()


async def test_unreachable_postgres_is_a_store_error_without_password() -> None:
    with pytest.raises(StoreError) as caught:
        await Store.open(f"postgresql://kubegate:s3cret@127.0.0.1:{_closed_port()}/kubegate")
    assert "cannot open the store" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_ping_fails_when_the_sqlite_file_is_removed_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        path.rename(tmp_path / "moved.db")
        with pytest.raises(StoreError, match="is gone"):
            await store.ping()
        sqlite3.connect(path).close()
        with pytest.raises(StoreError, match="was replaced"):
            await store.ping()
    finally:
        await store.close()


def test_db_upgrade_command(tmp_path: Path) -> None:
    app = typer.Typer()
    db.register(app)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--store-url", url])
    assert result.exit_code == 0, result.output
    assert f"is at revision {head_revision()}" in result.output
    config = tmp_path / "kubegate.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'other.db'}'}}\n")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "other.db").exists()
    bad = CliRunner().invoke(app, ["db", "upgrade", "--store-url", f"postgresql://x@127.0.0.1:{_closed_port()}/x"])
    assert bad.exit_code == 2
    assert "cannot open the store" in bad.output


async def test_the_migrations_build_exactly_the_tables_kubegate_uses(store: Store) -> None:
    """tables.py (what the code queries) and the migrations (what a store gets) describe one schema."""

    def diff(conn: Connection) -> list[object]:
        return compare_metadata(MigrationContext.configure(conn), metadata)

    async with store.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_write_sync_is_one_durable_transaction(store: Store) -> None:
    """What the recorder commits through write_sync: all of it or none of it, durable when it returns
    (SQLite: BEGIN IMMEDIATE, synchronous=FULL on the writer thread's own connection)."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    def bump(conn: Connection) -> int:
        conn.execute(sa.update(chain_head).values(seq=chain_head.c.seq + 1))
        return int(conn.execute(sa.select(chain_head.c.seq)).scalar_one())

    def bump_then_fail(conn: Connection) -> None:
        bump(conn)
        raise RuntimeError("boom")

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        assert await store.write_sync(bump) == 1
        with pytest.raises(RuntimeError):
            await store.write_sync(bump_then_fail)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    async with store.read() as conn:
        assert (await conn.execute(sa.select(chain_head.c.seq))).scalar_one() == 1  # the failed one rolled back
    if store.dialect == "sqlite":
        assert "BEGIN IMMEDIATE" in statements
        assert await store.write_sync(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar()) == 2
