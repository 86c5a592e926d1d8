"""Stores for tests: SQLite in a temp folder, or a fresh PostgreSQL database per test.

PostgreSQL is the server at KUBEGATE_TEST_POSTGRES (default the one our machines and CI run); with no
server the postgres tests fail, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("KUBEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own for one test, dropped afterwards."""
    base = make_url(PG_URL)
    name = f"kubegate_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
