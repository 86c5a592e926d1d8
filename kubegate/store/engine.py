"""Open the store: the right async driver for the URL, durable SQLite settings, migrations to head.

SQLite (the embedded default) runs in WAL mode with synchronous=FULL, so a commit is on disk when it
returns: the recorder's commit-before-forward promise depends on it. Write transactions on SQLite begin
IMMEDIATE (take the write lock first) so two writers never deadlock upgrading a read lock.

`write_sync` runs a whole write transaction as one synchronous function: on SQLite in one thread of
its own with a plain sqlite3 connection, so the transaction costs one hand-off between threads
instead of two or three per statement through aiosqlite (those hand-offs, not the fsync, were most
of the recorder's commit time); on PostgreSQL on the asyncpg connection, where each statement is a
network round trip anyway.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from kubegate.store.tables import chain_head

# The newest migration (kubegate/store/migrations/versions); tests/store/test_engine.py checks it
# against Alembic's own view, so a new migration cannot be forgotten here.
HEAD_REVISION = "0006"
MIGRATION_LOCK_KEY = 0x6B756265  # pg_advisory_xact_lock key: one replica migrates at a time
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 5.0
T = TypeVar("T")


class StoreError(Exception):
    """The store cannot do what was asked; the message says why and never holds a password."""


def describe(exc: BaseException) -> str:
    """A short, password-free account of a database failure, for Status messages and logs."""
    if isinstance(exc, StoreError):
        return str(exc)
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "the database did not answer in time"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def normalize_url(url: str) -> URL:
    """Map `sqlite:///PATH` and `postgresql://...` to their asyncio drivers (aiosqlite, asyncpg)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store url is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StoreError("store url sqlite:/// needs a file path (sqlite:///var/lib/kubegate/kubegate.db)")
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise StoreError(f"store url scheme {parsed.drivername!r} is not supported: use sqlite:/// or postgresql://")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's begin event issue BEGIN itself (DEFERRED or IMMEDIATE), as its docs advise.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


def _current_revision(conn: Connection) -> str | None:
    """The schema's revision as Alembic records it, read without loading Alembic."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


class Store:
    """The database kubegate records into. Use `Store.open(url)`; `engine` is a SQLAlchemy AsyncEngine."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._sqlite_file: Path | None = None
        self._sqlite_identity: tuple[int, int] | None = None
        self._sync_engine: Engine | None = None
        self._sync_thread: ThreadPoolExecutor | None = None

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect, and (unless migrate=False) bring the schema to the newest revision."""
        parsed = normalize_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = Path(parsed.database or "").expanduser()
            if not migrate and not path.exists():
                raise StoreError(f"there is no database at {path}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory of {path}: {describe(exc)}") from exc
            engine = create_async_engine(parsed.set(database=str(path)))
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        else:
            try:
                importlib.import_module("asyncpg")
            except ModuleNotFoundError as exc:
                raise StoreError("a PostgreSQL store needs asyncpg: pip install 'kubegate[postgres]'") from exc
            engine = create_async_engine(
                parsed,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                connect_args={"timeout": PG_CONNECT_TIMEOUT_S},
            )
        store = cls(engine, parsed)
        try:
            if migrate:
                await store.migrate()
            else:
                await store.ping()
            if store.dialect == "sqlite":
                store._remember_sqlite_file(Path(parsed.database or "").expanduser())
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, Exception):
                raise StoreError(f"cannot open the store at {store.display_url}: {describe(exc)}") from exc
            raise
        return store

    def _remember_sqlite_file(self, path: Path) -> None:
        st = path.stat()
        self._sqlite_file, self._sqlite_identity = path, (st.st_dev, st.st_ino)

    def _check_sqlite_file(self) -> None:
        """Refuse writes an open descriptor would still accept but that would be lost or unwanted:
        a database file that was removed or replaced, or one an operator made read-only."""
        if self._sqlite_file is None:
            return
        try:
            st = self._sqlite_file.stat()
        except OSError as exc:
            raise StoreError(f"the database file {self._sqlite_file} is gone: {describe(exc)}") from exc
        if (st.st_dev, st.st_ino) != self._sqlite_identity:
            raise StoreError(f"the database file {self._sqlite_file} was replaced since kubegate opened it")
        if not os.access(self._sqlite_file, os.W_OK):
            raise StoreError(f"the database file {self._sqlite_file} is read-only")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends (SQLite: BEGIN IMMEDIATE)."""
        self._check_sqlite_file()
        async with self._writer.begin() as conn:
            yield conn

    async def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """fn(connection) in one write transaction, committed when it returns (see the module docstring)."""
        if self.dialect != "sqlite":
            async with self.write() as conn:
                return await conn.run_sync(fn)
        self._check_sqlite_file()
        if self._sync_engine is None or self._sync_thread is None:
            engine = sa.create_engine(self.engine.url.set(drivername="sqlite"), poolclass=sa.pool.SingletonThreadPool)
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            self._sync_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="kubegate-store-writer")
        engine = self._sync_engine

        def transaction() -> T:
            with engine.begin() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._sync_thread, transaction)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(self) -> None:
        async with self.write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            if await conn.run_sync(_current_revision) == HEAD_REVISION:
                return
            from kubegate.store.migrations.run import upgrade

            await conn.run_sync(upgrade)

    async def revision(self) -> str | None:
        async with self.read() as conn:
            return await conn.run_sync(_current_revision)

    async def ping(self) -> None:
        """Raise StoreError unless the store can be read and (SQLite) its file still written."""
        try:
            self._check_sqlite_file()
            async with self.read() as conn:
                if (await conn.execute(sa.select(chain_head.c.seq))).first() is None:
                    raise StoreError("the chain head row is missing: run kubegate db upgrade")
        except StoreError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(f"the store at {self.display_url} is unusable: {describe(exc)}") from exc

    async def close(self) -> None:
        if self._sync_thread is not None and self._sync_engine is not None:
            await asyncio.get_running_loop().run_in_executor(self._sync_thread, self._sync_engine.dispose)
            self._sync_thread.shutdown()
        await self.engine.dispose()
