"""Writes to the store the way kube-apiserver's registry does them: identity checks, validation,
admission (namespace exists, RBAC escalation prevention), defaulting, field ownership, dry run.

The HTTP handlers and `SandboxCluster.seed` both come through here, so seeded objects look exactly
like objects kubectl created.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from . import defaults, managedfields
from .errors import MODIFIED, already_exists, bad_request, conflict, forbidden, namespace_not_found, not_found
from .kinds import Kind, find
from .logs import LOG_ANNOTATION, LogBook
from .rbac import RBAC_GROUP, Attributes, Authorizer, User
from .store import Store, clone
from .validation import validate

NAMESPACES = "/namespaces"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Write:
    """Who writes, and how: the parts of a request every write path needs."""

    user: User
    manager: str
    dry_run: bool = False
    subresource: str = ""


def _same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        c = clone(o)
        c.get("metadata", {}).pop("resourceVersion", None)
        c.get("metadata", {}).pop("managedFields", None)
        return c

    return strip(a) == strip(b)


def _compact(rule: dict[str, Any]) -> str:
    def q(values: list[str]) -> str:
        return "[" + " ".join(f'"{v}"' for v in values) + "]"

    parts = [
        f"{label}:{q(rule[key])}"
        for key, label in (
            ("apiGroups", "APIGroups"),
            ("resources", "Resources"),
            ("resourceNames", "ResourceNames"),
            ("nonResourceURLs", "NonResourceURLs"),
            ("verbs", "Verbs"),
        )
        if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


class Resources:
    def __init__(self, store: Store, authz: Authorizer, logs: LogBook) -> None:
        self.store = store
        self.authz = authz
        self.logs = logs

    # identity of the written object

    def identify(self, kind: Kind, namespace: str, obj: dict[str, Any], url_name: str = "") -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {kind.kind})")
        if obj.get("apiVersion", kind.api_version) != kind.api_version:
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({kind.api_version})"
            )
        if obj.get("kind", kind.kind) != kind.kind:
            raise bad_request(f"the object provided is unrecognized (must be of type {kind.kind}): kind {obj['kind']}")
        obj = clone(obj)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if url_name and meta.get("name") and meta["name"] != url_name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({url_name})"
            )
        if url_name:
            meta["name"] = url_name
        return obj

    # admission

    def _admit_namespace(self, kind: Kind, namespace: str) -> None:
        if kind.namespaced and self.store.get(NAMESPACES, "", namespace) is None:
            raise namespace_not_found(namespace)

    def _admit_rbac(self, kind: Kind, obj: dict[str, Any], user: User) -> None:
        """RBAC escalation prevention: bind/escalate, or already hold every permission granted."""
        if kind.group != RBAC_GROUP:
            return
        namespace = obj["metadata"].get("namespace", "")
        if kind.resource in ("rolebindings", "clusterrolebindings"):
            ref = obj.get("roleRef") or {}
            role_resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            bind = Attributes(user, "bind", True, RBAC_GROUP, "v1", namespace, role_resource, name=ref.get("name", ""))
            if self.authz.authorize(bind).allowed:
                return
            key = f"{RBAC_GROUP}/{role_resource}"
            role = self.store.get(key, namespace if role_resource == "roles" else "", ref.get("name", ""))
            rules = (role or {}).get("rules") or []
        else:
            verb_resource = "roles" if kind.resource == "roles" else "clusterroles"
            escalate = Attributes(
                user, "escalate", True, RBAC_GROUP, "v1", namespace, verb_resource, name=obj["metadata"]["name"]
            )
            if self.authz.authorize(escalate).allowed:
                return
            rules = obj.get("rules") or []
        missing = self.authz.covers(user, namespace, rules)
        if missing:
            groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
            raise forbidden(
                RBAC_GROUP,
                kind.resource,
                obj["metadata"]["name"],
                f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions not '
                "currently held:\n" + "\n".join(_compact(r) for r in missing),
            )

    # writes

    def create(
        self, kind: Kind, namespace: str, body: dict[str, Any], w: Write, managed: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create `body`; `managed` is a ready object from server-side apply (fields already tracked)."""
        obj = self.identify(kind, namespace, managed or body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            while True:
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
                if self.store.get(kind.key, namespace, meta["name"]) is None:
                    break
        validate(kind, obj)
        self._admit_namespace(kind, namespace)
        if self.store.get(kind.key, namespace if kind.namespaced else "", meta["name"]) is not None:
            raise already_exists(kind, meta["name"])
        self._admit_rbac(kind, obj, w.user)
        defaults.on_create(kind, obj)
        if managed is None:
            obj["metadata"].pop("managedFields", None)
            managedfields.record_update(None, obj, w.manager, kind.api_version, defaults.now())
        if w.dry_run:
            return obj
        stored = self.store.write(kind.key, obj)
        self._after_create(kind, stored)
        return stored

    def _after_create(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if kind.resource == "pods":
            initial = (meta.get("annotations") or {}).get(LOG_ANNOTATION)
            if initial:
                self.logs.append(meta["namespace"], meta["name"], initial)
        elif kind.resource == "namespaces":
            sa = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": meta["name"]},
            }
            sa_kind = find("", "v1", "serviceaccounts")
            assert sa_kind is not None
            defaults.on_create(sa_kind, sa)
            self.store.write(sa_kind.key, sa)

    def update(
        self, kind: Kind, namespace: str, name: str, body: dict[str, Any], w: Write, check_version: bool = True
    ) -> tuple[dict[str, Any], bool]:
        """Replace an object (or its status); returns (object, created)."""
        obj = self.identify(kind, namespace, body, name)
        existing = self.store.get(kind.key, namespace, name)
        if existing is None:
            if kind.create_on_update and not w.subresource:
                return self.create(kind, namespace, obj, w), True
            raise not_found(kind, name)
        wanted_rv = obj["metadata"].get("resourceVersion")
        if check_version and wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
            raise conflict(kind, name, MODIFIED)
        return self.commit(kind, existing, obj, w), False

    def commit(
        self, kind: Kind, existing: dict[str, Any], new: dict[str, Any], w: Write, managed: bool = False
    ) -> dict[str, Any]:
        """The common tail of update, patch and apply: `new` replaces `existing`."""
        if w.subresource == "status":
            status = new.get("status")
            new = clone(existing)
            new["status"] = status
        elif kind.subresource("status") and kind.resource != "namespaces":
            if existing.get("status") is not None:
                new["status"] = existing["status"]
            else:
                new.pop("status", None)
        if not managed:
            new["metadata"]["managedFields"] = existing["metadata"].get("managedFields") or []
        validate(kind, new, existing)
        defaults.on_update(kind, existing, new)
        new["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        if _same_content(existing, new):
            return existing
        self._admit_rbac(kind, new, w.user)
        if not managed:
            managedfields.record_update(existing, new, w.manager, kind.api_version, defaults.now(), w.subresource)
        if w.dry_run:
            return new
        return self.store.write(kind.key, new)

    def delete(self, kind: Kind, namespace: str, name: str, options: dict[str, Any], w: Write) -> dict[str, Any]:
        existing = self.store.get(kind.key, namespace, name)
        if existing is None:
            raise not_found(kind, name)
        pre = options.get("preconditions") or {}
        meta = existing["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(
                kind,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )
        if kind.resource == "namespaces" and name in PROTECTED_NAMESPACES:
            raise forbidden("", "namespaces", name, "this namespace may not be deleted")
        if w.dry_run:
            return existing
        if kind.resource == "namespaces":
            for key, child in self.store.in_namespace(name):
                self.store.remove(key, name, child)
                if key == "/pods":
                    self.logs.forget(name, child)
            existing["metadata"]["deletionTimestamp"] = defaults.now()
            existing["status"] = {"phase": "Terminating"}
        if kind.resource == "pods":
            # the kubelet has finished a graceful deletion: the last state kube reports is Terminating
            existing["metadata"]["deletionTimestamp"] = defaults.now()
            existing["metadata"]["deletionGracePeriodSeconds"] = 0
            self.store.write(kind.key, existing)
        final = self.store.remove(kind.key, namespace, name) or existing
        if kind.resource == "pods":
            self.logs.forget(namespace, name)
        if kind.resource == "namespaces":
            final.update({"status": existing["status"]})
            final["metadata"]["deletionTimestamp"] = existing["metadata"]["deletionTimestamp"]
        return final
