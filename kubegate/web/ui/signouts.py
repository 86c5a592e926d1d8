"""Server-side sign-out for the web UI: the cookie is sealed, so only the store can end it early.

A sign-out stores a digest of the session's secret (never the secret) until the session would have
expired; every page checks it. A store that cannot be read counts as signed out (fail closed).
"""

from __future__ import annotations

import hashlib
import time

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from kubegate.store.engine import Store, StoreError
from kubegate.store.tables import ui_signouts
from kubegate.web.ui.cookies import UISession


def _digest(session: UISession) -> str:
    return hashlib.sha256(session.csrf.encode()).hexdigest()


async def sign_out(store: Store, session: UISession) -> None:
    """Record the sign-out, and forget sign-outs whose sessions have expired anyway."""
    async with store.write() as conn:
        await conn.execute(sa.delete(ui_signouts).where(ui_signouts.c.expires_at < time.time()))
        await conn.execute(sa.delete(ui_signouts).where(ui_signouts.c.session_digest == _digest(session)))
        await conn.execute(
            sa.insert(ui_signouts).values(session_digest=_digest(session), expires_at=session.expires_at)
        )


async def is_signed_out(store: Store, session: UISession) -> bool:
    try:
        async with store.read() as conn:
            found = await conn.execute(
                sa.select(ui_signouts.c.session_digest).where(ui_signouts.c.session_digest == _digest(session))
            )
            return found.first() is not None
    except (SQLAlchemyError, StoreError, OSError):
        return True
