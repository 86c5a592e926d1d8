"""Temporary RBAC bindings: the Kubernetes role a policy names, bound to one caller only while in use.

kubegate never edits the cluster's permanent RBAC. When a decision names a role, it makes sure, with its
own credentials (never impersonating), that a RoleBinding (or a ClusterRoleBinding for a cluster-wide
rule) binds the caller's Kubernetes user to it, and pushes the binding's expiry forward while the caller
keeps using it. Everything kubegate makes carries the `managed-by` label AND the `expires-at`
annotation; the reaper deletes only objects with both, only once expired, and only the version it saw
(resourceVersion precondition), so several replicas can reap at once and a binding renewed meanwhile
survives.

Binding names are a hash of (kind, namespace, user, role), so every replica computes the same name and
two callers or two roles never share one.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import orjson

from kubegate.kube.status import Refused
from kubegate.upstream.connection import Connection

log = logging.getLogger(__name__)

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API = f"/apis/{RBAC_GROUP}/v1"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubegate"
EXPIRES_AT = "kubegate.dev/expires-at"
IDENTITY = "kubegate.dev/identity"
SESSION = "kubegate.dev/session"
RENEW_EVERY_SECONDS = 60.0  # at most one renewal per binding per minute (or per half TTL if shorter)
_ATTEMPTS = 3  # a binding changed or vanished between read and write this often: give up and say so
_PAGE = 500

Scope = Literal["namespace", "cluster"]
Action = Literal["created", "renewed", "cached", "skipped"]


class BindingError(Exception):
    """A binding could not be made or renewed; `code` and `reason` become the refusal's Status."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """One temporary binding: which kind, where, its deterministic name, whom and to which role."""

    kind: Literal["RoleBinding", "ClusterRoleBinding"]
    namespace: str
    name: str
    user: str
    role_kind: Literal["ClusterRole", "Role"]
    role: str

    @property
    def resource(self) -> str:
        return "rolebindings" if self.kind == "RoleBinding" else "clusterrolebindings"

    @property
    def collection_path(self) -> str:
        where = f"/namespaces/{quote(self.namespace, safe='')}" if self.namespace else ""
        return f"{RBAC_API}{where}/{self.resource}"

    @property
    def object_path(self) -> str:
        return f"{self.collection_path}/{quote(self.name, safe='')}"

    @property
    def key(self) -> str:
        return f"{self.resource}/{self.namespace}/{self.name}"

    def describe(self) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else ""
        return f'{self.kind} "{self.name}"{where}'

    def role_ref(self) -> dict[str, str]:
        return {"apiGroup": RBAC_GROUP, "kind": self.role_kind, "name": self.role}

    def subject(self) -> dict[str, str]:
        return {"apiGroup": RBAC_GROUP, "kind": "User", "name": self.user}

    def manifest(self, annotations: dict[str, str]) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": annotations,
        }
        if self.namespace:
            metadata["namespace"] = self.namespace
        return {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": self.kind,
            "metadata": metadata,
            "roleRef": self.role_ref(),
            "subjects": [self.subject()],
        }


def binding_for(user: str, role: str, scope: Scope, namespace: str) -> BindingSpec | None:
    """The binding that gives `user` the policy's `role` for a request in `namespace` ("" = cluster-wide).

    `role` names a ClusterRole, or a namespaced Role as `Role/<name>`. A namespace-scoped rule gives
    nothing to a cluster-wide request (no binding: the cluster decides on its permanent RBAC alone).
    Raises ValueError for a rule that cannot be served (a Role bound cluster-wide).
    """
    role_kind: Literal["ClusterRole", "Role"] = "ClusterRole"
    kind_prefix, slash, role_name = role.partition("/")
    if slash and kind_prefix in ("Role", "ClusterRole"):
        role_kind = "Role" if kind_prefix == "Role" else "ClusterRole"
        role = role_name
    if not role:
        raise ValueError("the policy rule's role names no role")
    if scope == "cluster":
        if role_kind == "Role":
            raise ValueError(
                f"the policy rule binds Role {role!r} cluster-wide, but a Role exists in one "
                "namespace only: use a ClusterRole or role_scope: namespace"
            )
        kind: Literal["RoleBinding", "ClusterRoleBinding"] = "ClusterRoleBinding"
        namespace = ""
    elif not namespace:
        return None
    else:
        kind = "RoleBinding"
    canonical = orjson.dumps([kind, namespace, user, role_kind, role])
    digest = base64.b32encode(hashlib.sha256(canonical).digest()[:10]).decode().lower()
    return BindingSpec(kind, namespace, f"kubegate-{digest}", user, role_kind, role)


def rfc3339(when: float) -> str:
    return dt.datetime.fromtimestamp(math.ceil(when), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class Ensured:
    """What `ensure` did: created or renewed (cluster calls made), cached (none needed), or skipped
    (the namespace does not exist, so there is nothing to bind in)."""

    spec: BindingSpec
    action: Action
    expires_at: float


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    renewed_at: float = -math.inf
    expires_at: float = -math.inf


def _is_ours(spec: BindingSpec, obj: dict[str, Any]) -> bool:
    """Made by kubegate, and for exactly this grant: label, expiry annotation, role and sole subject."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    if parse_rfc3339((meta.get("annotations") or {}).get(EXPIRES_AT)) is None:
        return False
    ref = obj.get("roleRef") or {}
    if (ref.get("kind"), ref.get("name")) != (spec.role_kind, spec.role):
        return False
    subjects = [(s.get("kind"), s.get("name"), s.get("namespace") or "") for s in obj.get("subjects") or []]
    return subjects == [("User", spec.user, "")]


class TemporaryBindings:
    """The temporary bindings of one connection: ensure before forwarding, reap when expired.

    What was ensured is remembered in memory, so a busy caller costs the cluster one renewal per binding
    per minute, not one call per request.
    """

    def __init__(
        self, connection: Connection, ttl: float | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.connection = connection
        self.ttl = ttl if ttl is not None else connection.config.binding_ttl
        self.renew_every = min(RENEW_EVERY_SECONDS, self.ttl / 2)
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    async def ensure(self, spec: BindingSpec, identity: str, session: str) -> Ensured:
        """Make sure `spec` exists and will not expire for at least half its TTL."""
        entry = self._entries.setdefault(spec.key, _Entry())
        async with entry.lock:
            now = self.clock()
            if now - entry.renewed_at < self.renew_every and entry.expires_at > now:
                return Ensured(spec, "cached", entry.expires_at)
            expires_at = now + self.ttl
            annotations = {IDENTITY: identity, SESSION: session, EXPIRES_AT: rfc3339(expires_at)}
            action = await self._apply(spec, annotations)
            if action != "skipped":
                entry.renewed_at, entry.expires_at = now, expires_at
            return Ensured(spec, action, expires_at)

    async def _apply(self, spec: BindingSpec, annotations: dict[str, str]) -> Action:
        for _ in range(_ATTEMPTS):
            status, found = await self._call("GET", spec.object_path)
            if status == 404:
                status, answer = await self._call("POST", spec.collection_path, spec.manifest(annotations))
                if status in (200, 201):
                    return "created"
                if status == 409:  # another replica made it first: renew theirs
                    continue
                if status == 404 and (answer.get("details") or {}).get("kind") == "namespaces":
                    return "skipped"
                raise self._failed("create", spec, status, answer)
            if status != 200:
                raise self._failed("get", spec, status, found)
            if not _is_ours(spec, found):
                raise BindingError(
                    409,
                    f"kubegate needs the temporary {spec.describe()} on connection "
                    f"{self.connection.name!r} to give user {spec.user!r} the {spec.role_kind} "
                    f"{spec.role!r}, but a binding of that name exists that kubegate did not make "
                    "for this purpose, and kubegate never changes bindings it did not make: "
                    "ask a cluster administrator to remove or rename it",
                    "Conflict",
                )
            patch = {"metadata": {"resourceVersion": found["metadata"]["resourceVersion"], "annotations": annotations}}
            status, answer = await self._call("PATCH", spec.object_path, patch, "application/merge-patch+json")
            if status == 200:
                return "renewed"
            if status not in (404, 409):  # 404: reaped meanwhile; 409: renewed by another replica
                raise self._failed("patch", spec, status, answer)
        raise BindingError(
            503,
            f"the temporary {spec.describe()} on connection {self.connection.name!r} kept "
            "changing while kubegate renewed it; try again",
            "ServiceUnavailable",
        )

    def _failed(self, verb: str, spec: BindingSpec, status: int, answer: dict[str, Any]) -> BindingError:
        said = str(answer.get("message") or f"HTTP {status}")
        what = (
            f"kubegate could not {verb} the temporary {spec.describe()} that gives user {spec.user!r} the "
            f"{spec.role_kind} {spec.role!r} on connection {self.connection.name!r}"
        )
        if status != 403:
            return BindingError(
                502, f"{what}, so the request was not forwarded. The cluster said: {said}", "BadGateway"
            )
        if verb == "create" and "cannot create" not in said:
            role_resource = "clusterroles" if spec.role_kind == "ClusterRole" else "roles"
            where = f' in namespace "{spec.namespace}"' if spec.role_kind == "Role" else ""
            missing = f'bind on {role_resource}.{RBAC_GROUP} "{spec.role}"{where}'
        else:
            where = f' in namespace "{spec.namespace}"' if spec.namespace else " (cluster-wide)"
            missing = f"{verb} on {spec.resource}.{RBAC_GROUP}{where}"
        return BindingError(
            403,
            f"{what}: kubegate's own identity lacks the permission {missing}, so the "
            "request was refused. Grant it as deploy/rbac.yaml shows, or change the policy "
            f"rule's role. The cluster said: {said}",
            "Forbidden",
        )

    async def reap(self, now: float | None = None) -> int:
        """Delete expired bindings that kubegate made (label and annotation both); returns how many.

        A binding whose version changed since it was listed (renewed) is left alone (409), one already
        gone (404) is fine: several replicas may reap at once.
        """
        now = self.clock() if now is None else now
        deleted = 0
        for resource in ("rolebindings", "clusterrolebindings"):
            for item in await self._list_managed(resource):
                meta = item.get("metadata") or {}
                if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
                    continue
                expires_at = parse_rfc3339((meta.get("annotations") or {}).get(EXPIRES_AT))
                if expires_at is None or expires_at > now:
                    continue
                where = f"/namespaces/{quote(meta['namespace'], safe='')}" if meta.get("namespace") else ""
                key = f"{resource}/{meta.get('namespace', '')}/{meta['name']}"
                options = {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "preconditions": {"resourceVersion": meta.get("resourceVersion"), "uid": meta.get("uid")},
                }
                status, answer = await self._call(
                    "DELETE", f"{RBAC_API}{where}/{resource}/{quote(meta['name'], safe='')}", options
                )
                if status in (200, 202):
                    deleted += 1
                    self._entries.pop(key, None)
                elif status == 404:
                    self._entries.pop(key, None)
                elif status != 409:
                    log.warning(
                        "connection %s: cannot delete expired %s %s/%s: %s",
                        self.connection.name,
                        resource,
                        meta.get("namespace", ""),
                        meta["name"],
                        answer.get("message", status),
                    )
        for key, entry in list(self._entries.items()):
            if entry.expires_at <= now and not entry.lock.locked():
                del self._entries[key]
        return deleted

    async def _list_managed(self, resource: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = f"labelSelector={quote(f'{MANAGED_BY_LABEL}={MANAGED_BY}', safe='')}&limit={_PAGE}"
            if token:
                query += f"&continue={quote(token, safe='')}"
            status, answer = await self._call("GET", f"{RBAC_API}/{resource}?{query}")
            if status != 200:
                raise BindingError(
                    502,
                    f"kubegate could not list {resource} on connection "
                    f"{self.connection.name!r} to reap expired ones: "
                    f"{answer.get('message') or f'HTTP {status}'}",
                    "BadGateway",
                )
            items += answer.get("items") or []
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    async def run_reaper(self, interval: float | None = None) -> None:
        """Reap now and then every `interval` seconds (default: the renewal period) until cancelled."""
        every = interval if interval is not None else max(1.0, self.renew_every)
        while True:
            try:
                if count := await self.reap():
                    log.info("connection %s: deleted %d expired temporary bindings", self.connection.name, count)
            except Exception as exc:  # a reaper that dies silently would leave grants behind: log and go on
                log.warning("connection %s: reaping temporary bindings failed: %s", self.connection.name, exc)
            await asyncio.sleep(every)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        """One call as kubegate itself (no impersonation), through the connection's upstream client."""
        conn = self.connection
        try:
            status, answer = await conn.client.call(method, path, identity=None, body=body, content_type=content_type)
        except Refused as exc:
            raise BindingError(
                exc.code,
                f"{exc.message} (managing the temporary bindings of connection "
                f"{conn.name!r}), so the request was not forwarded",
                exc.reason or "BadGateway",
            ) from exc
        return status, answer if isinstance(answer, dict) else {}
