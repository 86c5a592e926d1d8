"""The background task that signs a checkpoint of the chain head every interval and puts it on each anchor.

A checkpoint is made only when the chain moved since the last one. It is numbered and inserted while
the chain head is locked, so replicas sharing a PostgreSQL store make one sequence between them; then
each anchor gets it, and one that fails is retried on the next round (the table says who has what).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kubegate.audit.anchors import Anchor, AnchorError
from kubegate.audit.checkpoint import Checkpoint, digest, signed_document
from kubegate.audit.signing import Signer
from kubegate.recording.chain import lock_head
from kubegate.store.engine import Store, describe
from kubegate.store.tables import chain_anchors

log = logging.getLogger(__name__)
RETRY_WINDOW = 100
"""How many of the newest checkpoints each round re-offers to anchors that lack them."""


class Anchoring:
    def __init__(
        self,
        store: Store,
        signer: Signer,
        anchors: Sequence[Anchor],
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.signer = signer
        self.anchors = list(anchors)
        self.interval = interval
        self.clock = clock
        self.problems: dict[str, str] = {}
        """The last failure of each anchor that has not taken every checkpoint; shown by /readyz."""

    def _make(self, now: float, conn: Connection) -> int | None:
        seq, head = lock_head(conn)
        last = conn.execute(
            sa.select(chain_anchors.c.number, chain_anchors.c.seq, chain_anchors.c.document)
            .order_by(chain_anchors.c.number.desc())
            .limit(1)
        ).first()
        if seq == 0 or (last is not None and last.seq == seq):
            return None
        number = last.number + 1 if last is not None else 1
        cp = Checkpoint(
            number=number,
            seq=seq,
            hash=head,
            events=seq,
            time=now,
            previous=digest(last.document) if last is not None else "",
        )
        conn.execute(
            sa.insert(chain_anchors).values(
                number=number,
                seq=seq,
                hash=head,
                created_at=now,
                key_id=self.signer.key_id,
                document=signed_document(cp, self.signer),
                delivered=[],
            )
        )
        return number

    async def checkpoint(self) -> int | None:
        """Sign and store a checkpoint of the head if the chain moved; its number, or None."""
        return await self.store.write_sync(lambda conn: self._make(self.clock(), conn))

    async def deliver(self) -> None:
        """Give every anchor each recent checkpoint it does not have yet."""
        async with self.store.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(chain_anchors.c.number, chain_anchors.c.document, chain_anchors.c.delivered)
                    .order_by(chain_anchors.c.number.desc())
                    .limit(RETRY_WINDOW)
                )
            ).all()
        failed: set[str] = set()
        for row in reversed(rows):
            delivered: set[str] = set(row.delivered or [])
            for anchor in self.anchors:
                if anchor.name in delivered:
                    continue
                try:
                    await anchor.put(row.number, row.document)
                except AnchorError as exc:
                    self.problems[anchor.name] = str(exc)
                    failed.add(anchor.name)
                    log.error("checkpoint %d was not anchored on %s: %s", row.number, anchor.name, exc)
                    continue
                delivered.add(anchor.name)
                await self._mark(row.number, delivered)
        self.problems = {name: why for name, why in self.problems.items() if name in failed}

    async def _mark(self, number: int, delivered: set[str]) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                sa.update(chain_anchors).where(chain_anchors.c.number == number).values(delivered=sorted(delivered))
            )

    async def round(self) -> None:
        await self.checkpoint()
        await self.deliver()

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception as exc:
                self.problems["store"] = describe(exc)
                log.error("checkpointing the audit chain failed: %s", describe(exc))
            await asyncio.sleep(self.interval)

    def status(self) -> dict[str, Any]:
        return {
            "anchors": [a.name for a in self.anchors],
            "key_id": self.signer.key_id,
            **({"problems": dict(self.problems)} if self.problems else {}),
        }
