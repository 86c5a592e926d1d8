"""Access requests, votes and grants in the store. Every change is one transaction that also runs the
caller's `on_change` hook (notification outbox rows, a PostgreSQL NOTIFY), so what is announced is
exactly what was committed, and each decision locks its request row first, so two reviewers on two
replicas never both miss the vote that completes an approval."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.approvals.model import AccessRequest, Grant, NewRequest, Vote, missing_approvals, new_request_id
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from kubegate.store.tables import access_requests, approval_votes, grants

OnChange = Callable[[AsyncConnection, AccessRequest, str], Awaitable[None]]
"""Called inside the transaction with the request as committed and the event: created, approved, ..."""

_ID_ATTEMPTS = 5


def _not_found(request_id: str) -> Refused:
    return Refused(
        404,
        f"access request {request_id} does not exist; list requests with `kubegate requests list`",
        reason="NotFound",
    )


class ApprovalRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, request_id: str) -> AccessRequest | None:
        async with self.store.read() as conn:
            return await self._load(conn, request_id)

    async def pending_for(self, fp: str) -> AccessRequest | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    sa.select(access_requests).where(
                        access_requests.c.fingerprint == fp, access_requests.c.state == "pending"
                    )
                )
            ).first()
            return await self._complete(conn, row) if row else None

    async def list(self, states: Sequence[str], limit: int) -> list[AccessRequest]:
        """Newest first; `states` empty means every state."""
        query = (
            sa.select(access_requests).order_by(access_requests.c.created_at.desc(), access_requests.c.id).limit(limit)
        )
        if states:
            query = query.where(access_requests.c.state.in_(list(states)))
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).all()
            return [await self._complete(conn, row) for row in rows]

    async def pending_counts(self, now: float) -> dict[str, int]:
        """Pending requests not yet expired, by kind (request, scope): what every replica is waiting on."""
        query = (
            sa.select(access_requests.c.kind, sa.func.count())
            .where(access_requests.c.state == "pending", access_requests.c.expires_at > now)
            .group_by(access_requests.c.kind)
        )
        async with self.store.read() as conn:
            return {kind: count for kind, count in (await conn.execute(query)).all()}

    async def _load(self, conn: AsyncConnection, request_id: str, *, lock: bool = False) -> AccessRequest | None:
        query = sa.select(access_requests).where(access_requests.c.id == request_id)
        if lock and self.store.dialect == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return await self._complete(conn, row) if row else None

    @staticmethod
    async def _complete(conn: AsyncConnection, row: sa.Row[tuple[object, ...]]) -> AccessRequest:
        votes = [
            Vote(v.reviewer, v.subject, tuple(v.groups), v.comment, v.at)
            for v in (
                await conn.execute(
                    sa.select(approval_votes).where(approval_votes.c.request_id == row.id).order_by(approval_votes.c.at)
                )
            )
        ]
        grant_row = (await conn.execute(sa.select(grants).where(grants.c.request_id == row.id))).first()
        return AccessRequest.from_row(row, votes, Grant.from_row(grant_row) if grant_row else None)

    # -- asking -----------------------------------------------------------------------------------

    async def create_or_join(self, new: NewRequest, now: float, on_change: OnChange) -> tuple[AccessRequest, bool]:
        """The pending request for this fingerprint, created if there is none. True when created."""
        insert = (postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert)(access_requests)
        for _ in range(_ID_ATTEMPTS):
            request_id = new_request_id()
            async with self.store.write() as conn:
                if new.fingerprint is not None:
                    await conn.execute(
                        sa.update(access_requests)
                        .where(
                            access_requests.c.fingerprint == new.fingerprint,
                            access_requests.c.state == "pending",
                            access_requests.c.expires_at <= now,
                        )
                        .values(state="expired", decided_at=now)
                    )
                identity = new.identity
                values = {
                    "id": request_id,
                    "kind": new.kind,
                    "state": "pending",
                    "fingerprint": new.fingerprint,
                    "username": identity.username,
                    "subject": identity.subject,
                    "issuer": identity.issuer,
                    "groups": list(identity.groups),
                    "claims": dict(identity.claims),
                    "connection": new.connection,
                    "method": new.method,
                    "path": new.path,
                    "query": new.query,
                    "info": new.info,
                    "content_type": new.content_type,
                    "body_sha256": new.body_sha256,
                    "body_bytes": new.body_bytes,
                    "kubectl_command": new.kubectl_command,
                    "summary": new.summary,
                    "scope": new.scope.as_dict() if new.scope else None,
                    "reason": new.reason,
                    "rules": [r.as_dict() for r in new.rules],
                    "mode": new.mode,
                    "session_id": new.session_id,
                    "server": new.server,
                    "created_at": now,
                    "expires_at": now + new.expires_in,
                }
                inserted = (await conn.execute(insert.values(values).on_conflict_do_nothing())).rowcount
                if inserted:
                    created = await self._load(conn, request_id)
                    assert created is not None
                    await on_change(conn, created, "created")
                    return created, True
                if new.fingerprint is not None:
                    row = (
                        await conn.execute(
                            sa.select(access_requests).where(
                                access_requests.c.fingerprint == new.fingerprint, access_requests.c.state == "pending"
                            )
                        )
                    ).first()
                    if row is not None:
                        return await self._complete(conn, row), False
        raise Refused(503, "kubegate could not create an access request id; try again", reason="ServiceUnavailable")

    # -- deciding ---------------------------------------------------------------------------------

    async def _pending(self, conn: AsyncConnection, request_id: str, now: float) -> AccessRequest:
        request = await self._load(conn, request_id, lock=True)
        if request is None:
            raise _not_found(request_id)
        state = request.effective_state(now)
        if state != "pending":
            raise Refused(
                409,
                f"access request {request_id} is already {state}"
                + (f" (by {request.decided_by})" if request.decided_by else "")
                + "; the requester can ask again",
                reason="Conflict",
            )
        return request

    async def approve(
        self, request_id: str, reviewer: Identity, comment: str, now: float, grant_lifetime: float, on_change: OnChange
    ) -> AccessRequest:
        """Add the reviewer's yes; when every rule has its `min_approvals`, approve and create the grant."""
        async with self.store.write() as conn:
            request = await self._pending(conn, request_id, now)
            _check_reviewer(request, reviewer, "approve")
            if any(v.reviewer == reviewer.username for v in request.votes):
                raise Refused(
                    409,
                    f"{reviewer.username} already approved access request {request_id}; "
                    f"{'; '.join(missing_approvals(request.rules, request.votes))}",
                    reason="Conflict",
                )
            vote = Vote(reviewer.username, reviewer.subject, tuple(reviewer.groups), comment, now)
            await conn.execute(
                sa.insert(approval_votes).values(
                    request_id=request_id,
                    reviewer=vote.reviewer,
                    subject=vote.subject,
                    groups=list(vote.groups),
                    comment=comment,
                    at=now,
                )
            )
            if missing_approvals(request.rules, (*request.votes, vote)):
                updated = await self._load(conn, request_id)
                assert updated is not None
                await on_change(conn, updated, "vote")
                return updated
            await conn.execute(
                sa.update(access_requests)
                .where(access_requests.c.id == request_id)
                .values(state="approved", decided_at=now, decided_by=reviewer.username, decision_reason=comment)
            )
            scope = request.scope
            await conn.execute(
                sa.insert(grants).values(
                    request_id=request_id,
                    kind="scope" if scope else "once",
                    username=request.username,
                    connection=request.connection,
                    fingerprint=request.fingerprint,
                    scope=scope.as_dict() if scope else None,
                    rules=[r.rule for r in request.rules],
                    created_at=now,
                    expires_at=now + (scope.duration if scope else grant_lifetime),
                    max_uses=None if scope else 1,
                    uses=0,
                )
            )
            approved = await self._load(conn, request_id)
            assert approved is not None
            await on_change(conn, approved, "approved")
            return approved

    async def deny(
        self, request_id: str, reviewer: Identity, reason: str, now: float, on_change: OnChange
    ) -> AccessRequest:
        async with self.store.write() as conn:
            request = await self._pending(conn, request_id, now)
            _check_reviewer(request, reviewer, "deny")
            await conn.execute(
                sa.update(access_requests)
                .where(access_requests.c.id == request_id)
                .values(state="denied", decided_at=now, decided_by=reviewer.username, decision_reason=reason)
            )
            denied = await self._load(conn, request_id)
            assert denied is not None
            await on_change(conn, denied, "denied")
            return denied

    async def revoke(
        self, request_id: str, who: Identity, reason: str, now: float, *, admin: bool, on_change: OnChange
    ) -> AccessRequest:
        """Withdraw a pending request or end a grant early: the requester, its reviewers, or an admin."""
        async with self.store.write() as conn:
            request = await self._load(conn, request_id, lock=True)
            if request is None:
                raise _not_found(request_id)
            if not (admin or request.requested_by(who) or request.reviewable_by(who)):
                raise Refused(
                    403,
                    f"{who.username} may not revoke access request {request_id}: only its requester, "
                    "its reviewers or a kubegate admin may",
                    reason="Forbidden",
                )
            grant = request.grant
            if request.state == "pending":
                await conn.execute(
                    sa.update(access_requests)
                    .where(access_requests.c.id == request_id)
                    .values(state="revoked", decided_at=now, decided_by=who.username, decision_reason=reason)
                )
            elif grant is not None and grant.state(now) == "active":
                await conn.execute(
                    sa.update(grants)
                    .where(grants.c.request_id == request_id)
                    .values(revoked_at=now, revoked_by=who.username, revoke_reason=reason)
                )
                await conn.execute(
                    sa.update(access_requests).where(access_requests.c.id == request_id).values(state="revoked")
                )
            else:
                state = grant.state(now) if grant is not None else request.effective_state(now)
                raise Refused(
                    409, f"access request {request_id} is {state}: there is nothing to revoke", reason="Conflict"
                )
            revoked = await self._load(conn, request_id)
            assert revoked is not None
            await on_change(conn, revoked, "revoked")
            return revoked

    async def expire(self, request_id: str, now: float, on_change: OnChange) -> AccessRequest | None:
        """Mark a pending request whose time ran out as expired; returns it as it now stands."""
        async with self.store.write() as conn:
            done = (
                await conn.execute(
                    sa.update(access_requests)
                    .where(
                        access_requests.c.id == request_id,
                        access_requests.c.state == "pending",
                        access_requests.c.expires_at <= now,
                    )
                    .values(state="expired", decided_at=now)
                )
            ).rowcount
            request = await self._load(conn, request_id)
            if done and request is not None:
                await on_change(conn, request, "expired")
            return request

    # -- using ------------------------------------------------------------------------------------

    async def claim_once(self, fp: str, username: str, rules: Sequence[str], now: float) -> Grant | None:
        """Take the single use of an approval of exactly this request, if one is active."""
        candidates = (
            sa.select(grants)
            .where(
                grants.c.kind == "once",
                grants.c.fingerprint == fp,
                grants.c.username == username,
                grants.c.revoked_at.is_(None),
                grants.c.expires_at > now,
                grants.c.uses < grants.c.max_uses,
            )
            .order_by(grants.c.created_at)
        )
        async with self.store.write() as conn:
            for row in (await conn.execute(candidates)).all():
                if not set(rules) <= set(row.rules):
                    continue
                taken = (
                    await conn.execute(
                        sa.update(grants)
                        .where(
                            grants.c.request_id == row.request_id,
                            grants.c.uses < grants.c.max_uses,
                            grants.c.revoked_at.is_(None),
                        )
                        .values(uses=grants.c.uses + 1, last_used_at=now)
                    )
                ).rowcount
                if taken:
                    return Grant.from_row(row)
        return None

    async def release_once(self, request_id: str) -> None:
        """Give a single use back: the request it let through never reached the cluster (an upgrade
        kubectl will retry over SPDY)."""
        async with self.store.write() as conn:
            await conn.execute(
                sa.update(grants)
                .where(grants.c.request_id == request_id, grants.c.uses > 0)
                .values(uses=grants.c.uses - 1)
            )

    async def use_scope(
        self, username: str, connection: str, info: RequestInfo, rules: Sequence[str], now: float
    ) -> Grant | None:
        """An active scope grant of this identity on this connection that covers the request."""
        query = (
            sa.select(grants)
            .where(
                grants.c.kind == "scope",
                grants.c.username == username,
                grants.c.connection == connection,
                grants.c.revoked_at.is_(None),
                grants.c.expires_at > now,
            )
            .order_by(grants.c.created_at)
        )
        async with self.store.write() as conn:
            for row in (await conn.execute(query)).all():
                grant = Grant.from_row(row)
                if grant.scope is not None and grant.scope.covers(info) and set(rules) <= set(grant.rules):
                    await conn.execute(
                        sa.update(grants)
                        .where(grants.c.request_id == grant.request_id)
                        .values(uses=grants.c.uses + 1, last_used_at=now)
                    )
                    return grant
        return None


def _check_reviewer(request: AccessRequest, reviewer: Identity, action: str) -> None:
    if request.requested_by(reviewer):
        raise Refused(
            403,
            f"{reviewer.username} asked for access request {request.id} and may not {action} it: "
            "nobody reviews their own request; ask one of " + _who(request),
            reason="Forbidden",
        )
    if not request.reviewable_by(reviewer):
        raise Refused(
            403,
            f"{reviewer.username} is not a reviewer of access request {request.id}: the policy names {_who(request)}",
            reason="Forbidden",
        )


def _who(request: AccessRequest) -> str:
    r = request.reviewers
    return ", ".join([*(f"group {g}" for g in r["groups"]), *(f"user {u}" for u in r["users"])]) or "no one"
