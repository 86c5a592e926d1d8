"""Check the stored chain against the signed checkpoints an external anchor holds.

The internal walk (kubegate.recording.chain.verify) finds edits inside a chain; it cannot see a chain
rewritten whole, or cut short with its head row moved back, because such a chain is consistent in
itself. The anchored checkpoints can: each names the hash the event at its seq had when it was signed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.audit.checkpoint import Checkpoint, CheckpointError, check_signature, digest, parse
from kubegate.audit.signing import Keyring
from kubegate.store.tables import chain_anchors, chain_head, events


@dataclass(frozen=True, slots=True)
class AnchorProblem:
    kind: str  # rewritten | truncated | missing-anchor | signature
    message: str


@dataclass(frozen=True, slots=True)
class AnchorReport:
    checkpoints: int
    last: Checkpoint | None
    unanchored: int
    """Events after the last anchored checkpoint: nothing outside the database vouches for them yet."""
    problem: AnchorProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(cp: Checkpoint) -> str:
    return f"checkpoint {cp.number} (signed {_when(cp.time)}, {cp.events} events)"


async def delivered(conn: AsyncConnection, anchor: str) -> list[int]:
    """The checkpoints this store says were written to `anchor`, in order."""
    recorded = (await conn.execute(sa.select(chain_anchors.c.number, chain_anchors.c.delivered))).all()
    return sorted(r.number for r in recorded if anchor in (r.delivered or []))


async def check(
    conn: AsyncConnection, found: dict[int, bytes], keys: Keyring, *, anchor: str, where: str
) -> AnchorReport:
    """Compare the chain in `conn` with the checkpoints `found` on anchor `anchor` (named `where`)."""
    checkpoints: list[Checkpoint] = []

    def report(problem: AnchorProblem | None = None, unanchored: int = 0) -> AnchorReport:
        return AnchorReport(len(checkpoints), checkpoints[-1] if checkpoints else None, unanchored, problem)

    previous = ""
    for number in sorted(found):
        try:
            signed = parse(found[number])
        except CheckpointError as exc:
            return report(AnchorProblem("signature", f"checkpoint {number} on {where} cannot be read: {exc}"))
        wrong = check_signature(signed, keys)
        if wrong is None and signed.checkpoint.number != number:
            wrong = f"it says it is checkpoint {signed.checkpoint.number}"
        if wrong is not None:
            return report(AnchorProblem("signature", f"checkpoint {number} on {where} is not genuine: {wrong}"))
        expected = len(checkpoints) + 1
        if number != expected:
            gap = f"checkpoint {expected}" if number == expected + 1 else f"checkpoints {expected}..{number - 1}"
            return report(
                AnchorProblem(
                    "missing-anchor", f"{gap} missing from {where}: checkpoint {number} follows a missing one"
                )
            )
        if signed.checkpoint.previous != previous:
            return report(
                AnchorProblem(
                    "missing-anchor",
                    f"checkpoint {number} on {where} does not follow "
                    f"checkpoint {number - 1} there: an anchored checkpoint was replaced",
                )
            )
        checkpoints.append(signed.checkpoint)
        previous = digest(signed.document)

    head = (await conn.execute(sa.select(chain_head.c.seq).where(chain_head.c.id == 1))).scalar() or 0
    lost = [number for number in await delivered(conn, anchor) if number not in found]
    if lost:
        return report(
            AnchorProblem(
                "missing-anchor",
                f"checkpoint {lost[0]} was written to {where} but is not "
                "there: the anchor lost it or kubegate is configured to read another place",
            )
        )
    if not checkpoints:
        if head == 0:
            return report()
        return report(
            AnchorProblem(
                "missing-anchor",
                f"no checkpoint on {where} vouches for the chain's {head} "
                "events: anchoring never ran, or it wrote elsewhere",
            )
        )

    last = checkpoints[-1]
    if head < last.seq:
        return report(
            AnchorProblem(
                "truncated",
                f"the chain was truncated: it ends at event {head}, but "
                f"{_describe(last)} on {where} vouches for events through {last.seq}: "
                f"events {head + 1}..{last.seq} were removed",
            )
        )
    for cp in checkpoints:  # the first checkpoint that disagrees says how far back the rewrite goes
        stored = (await conn.execute(sa.select(events.c.hash).where(events.c.seq == cp.seq))).scalar()
        if stored is not None and stored != cp.hash:
            return report(
                AnchorProblem(
                    "rewritten",
                    f"the chain was rewritten: event {cp.seq} is not the one "
                    f"{_describe(cp)} on {where} vouches for (hash {stored[:12]}, signed "
                    f"{cp.hash[:12]}); the stored chain holds together, so it was rebuilt "
                    "from that event or earlier",
                )
            )
    return report(unanchored=head - last.seq)
