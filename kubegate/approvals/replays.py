"""Signed requests seen once, remembered in the store so a replay is refused by every replica.

A signature covers its timestamp, so the same signature is the same request; it only needs remembering
while its timestamp would still be accepted. Rows past that are removed by the next request.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kubegate.store.engine import Store
from kubegate.store.tables import slack_replays


async def first_sight(store: Store, signature: str, *, now: float, keep_until: float) -> bool:
    """Remember `signature` until `keep_until`; False if it was remembered already (a replay)."""
    digest = hashlib.sha256(signature.encode()).hexdigest()
    insert = (postgresql.insert if store.dialect == "postgresql" else sqlite.insert)(slack_replays)
    async with store.write() as conn:
        await conn.execute(sa.delete(slack_replays).where(slack_replays.c.expires_at < now))
        inserted = await conn.execute(
            insert.values(signature_digest=digest, expires_at=keep_until).on_conflict_do_nothing()
        )
        return bool(inserted.rowcount)
