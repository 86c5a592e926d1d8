"""Resource requests: one method per verb and subresource, mapping HTTP onto `Resources` and rendering
the answer in the form the client negotiated (JSON, Table or PartialObjectMetadata)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from kubegate.kube.requestinfo import RequestInfo

from . import managedfields, reviews, tables
from .authn import Tokens
from .defaults import now
from .errors import (
    MODIFIED,
    ApiError,
    bad_request,
    conflict,
    method_not_allowed,
    not_found,
    resource_not_found,
    unsupported_media_type,
)
from .exec import Runtime, serve_attach, serve_exec
from .kinds import Kind
from .logs import LogBook, serve_log
from .negotiation import negotiate
from .patching import APPLY_PATCH, PATCH_TYPES, apply_patch
from .portforward import serve_portforward
from .rbac import Authorizer, User
from .resources import Resources, Write
from .responses import decode_object, media_type, read_object, respond
from .selectors import Predicate, field_selector, label_selector
from .store import Store, clone
from .watch import serve_watch


@dataclass(frozen=True)
class Call:
    request: web.Request
    info: RequestInfo
    kind: Kind
    user: User

    @property
    def namespace(self) -> str:
        return self.info.namespace if self.kind.namespaced else ""

    @property
    def query(self) -> Any:
        return self.request.query


def _write(call: Call, subresource: str = "") -> Write:
    dry = call.query.getall("dryRun", [])
    if any(v != "All" for v in dry):
        bad = next(v for v in dry if v != "All")
        raise ApiError(422, f'dryRun: Unsupported value: "{bad}": supported values: "All"', "Invalid")
    manager = call.query.get("fieldManager") or call.request.headers.get("User-Agent", "unknown").split("/")[0]
    if len(manager) > 128:
        raise ApiError(422, "fieldManager: Too long: may not be more than 128 bytes", "Invalid")
    return Write(call.user, manager, bool(dry), subresource)


def _encode_continue(rv: int, ns: str, name: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [ns, name]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, name = data["start"]
        return str(ns), str(name)
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


class Api:
    def __init__(
        self,
        store: Store,
        resources: Resources,
        logs: LogBook,
        authz: Authorizer,
        tokens: Tokens,
        runtime: Runtime | None = None,
    ) -> None:
        self.runtime = runtime or Runtime(store, logs)
        self.store = store
        self.resources = resources
        self.logs = logs
        self.authz = authz
        self.tokens = tokens

    async def handle(self, call: Call) -> web.StreamResponse:
        info, kind = call.info, call.kind
        if info.namespace and not kind.namespaced and kind.resource != "namespaces":
            raise resource_not_found()
        if info.subresource:
            return await self._subresource(call)
        verb = info.verb
        if verb not in kind.verbs:
            raise method_not_allowed()
        if kind.namespaced and not info.namespace and verb not in ("list", "watch"):
            raise resource_not_found() if info.name else method_not_allowed()
        if verb == "create" and info.name:
            raise method_not_allowed()
        if not kind.stored:
            return await self._review(call)
        if verb in ("list", "watch"):
            return await self._list(call)
        handler = {
            "get": self._get,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }[verb]
        return await handler(call)

    # rendering

    def render(self, call: Call, obj: dict[str, Any], status: int = 200) -> web.Response:
        target = negotiate(call.request.headers.get("Accept", ""), resource=True)
        if target.form == "table":
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            body = tables.table(call.kind, [obj], meta, call.query.get("includeObject", "Metadata"), target.version)
            return respond(call.request, body, status, target.content_type)
        if target.form == "partial":
            return respond(call.request, tables.partial(obj, target.version), status, target.content_type)
        return respond(call.request, obj, status)

    def _predicate(self, call: Call) -> Predicate:
        labels = label_selector(call.query.get("labelSelector", ""))
        fields = field_selector(call.kind.resource, call.query.get("fieldSelector", ""))
        name = call.info.name if call.info.verb == "watch" else ""
        return lambda o: labels(o) and fields(o) and (not name or o["metadata"]["name"] == name)

    def _existing(self, call: Call) -> dict[str, Any]:
        obj = self.store.get(call.kind.key, call.namespace, call.info.name)
        if obj is None:
            raise not_found(call.kind, call.info.name)
        return obj

    # verbs

    async def _get(self, call: Call) -> web.StreamResponse:
        return self.render(call, self._existing(call))

    async def _list(self, call: Call) -> web.StreamResponse:
        pred = self._predicate(call)
        target = negotiate(call.request.headers.get("Accept", ""), resource=True)
        if call.info.verb == "watch":
            return await serve_watch(call.request, self.store, call.kind, call.namespace, pred, target)
        items = [o for o in self.store.list(call.kind.key, call.namespace) if pred(o)]
        token = call.query.get("continue", "")
        if token:
            start = _decode_continue(token)
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        raw_limit = call.query.get("limit", "")
        limit = int(raw_limit) if raw_limit.isdigit() else 0
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            meta["continue"] = _encode_continue(self.store.rv, last.get("namespace", ""), last["name"])
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if target.form == "table":
            body = tables.table(call.kind, items, meta, call.query.get("includeObject", "Metadata"), target.version)
            return respond(call.request, body, 200, target.content_type)
        if target.form == "partial":
            return respond(call.request, tables.partial_list(items, meta, target.version), 200, target.content_type)
        for o in items:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return respond(
            call.request,
            {"kind": call.kind.list_kind_name(), "apiVersion": call.kind.api_version, "metadata": meta, "items": items},
        )

    async def _create(self, call: Call) -> web.StreamResponse:
        body = await read_object(call.request)
        return self.render(call, self.resources.create(call.kind, call.namespace, body, _write(call)), 201)

    async def _update(self, call: Call, subresource: str = "") -> web.StreamResponse:
        body = await read_object(call.request)
        obj, created = self.resources.update(call.kind, call.namespace, call.info.name, body, _write(call, subresource))
        return self.render(call, obj, 201 if created else 200)

    async def _patch(self, call: Call, subresource: str = "") -> web.StreamResponse:
        content_type = media_type(call.request)
        if content_type not in PATCH_TYPES:
            raise unsupported_media_type(content_type, list(PATCH_TYPES))
        body = await call.request.read()
        w = _write(call, subresource)
        if content_type == APPLY_PATCH:
            return await self._apply(call, body, w)
        if call.query.get("force"):
            raise ApiError(422, "force: Forbidden: may not be specified for non-apply patch", "Invalid")
        existing = self._existing(call)
        patched = apply_patch(content_type, clone(existing), body)
        new = self.resources.identify(call.kind, call.namespace, patched, call.info.name)
        if (
            new["metadata"].get("resourceVersion", existing["metadata"]["resourceVersion"])
            != existing["metadata"]["resourceVersion"]
        ):
            raise conflict(call.kind, call.info.name, MODIFIED)
        return self.render(call, self.resources.commit(call.kind, existing, new, w))

    async def _apply(self, call: Call, body: bytes, w: Write) -> web.StreamResponse:
        if not call.query.get("fieldManager"):
            raise ApiError(
                422,
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                "Invalid",
            )
        applied = decode_object(body, APPLY_PATCH)
        if not isinstance(applied, dict) or not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("invalid object type: apply patches must set apiVersion and kind")
        applied = self.resources.identify(call.kind, call.namespace, applied, call.info.name)
        force = call.query.get("force", "").lower() == "true"
        kind, existing = call.kind, self.store.get(call.kind.key, call.namespace, call.info.name)
        if existing is None:
            if w.subresource:
                raise not_found(kind, call.info.name)
            managed = managedfields.server_side_apply(None, applied, w.manager, force, kind.api_version, now())
            return self.render(call, self.resources.create(kind, call.namespace, applied, w, managed), 201)
        wanted = applied["metadata"].get("resourceVersion")
        if wanted and wanted != existing["metadata"]["resourceVersion"]:
            raise conflict(kind, call.info.name, MODIFIED)
        new = managedfields.server_side_apply(
            existing, applied, w.manager, force, kind.api_version, now(), w.subresource
        )
        return self.render(call, self.resources.commit(kind, existing, new, w, managed=True))

    async def _delete_options(self, call: Call) -> dict[str, Any]:
        raw = await call.request.read()
        options: dict[str, Any] = decode_object(raw, media_type(call.request)) if raw.strip() else {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        policy = options.get("propagationPolicy") or call.query.get("propagationPolicy")
        if policy and policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", '
                f'"nil"',
                "Invalid",
            )
        return options

    def _delete_write(self, call: Call, options: dict[str, Any]) -> Write:
        w = _write(call)
        if options.get("dryRun"):
            return Write(w.user, w.manager, True)
        return w

    async def _delete(self, call: Call) -> web.StreamResponse:
        options = await self._delete_options(call)
        kind = call.kind
        final = self.resources.delete(kind, call.namespace, call.info.name, options, self._delete_write(call, options))
        if kind.returns_deleted:
            return respond(call.request, final)
        details: dict[str, Any] = {"name": call.info.name}
        if kind.group:
            details["group"] = kind.group
        details.update({"kind": kind.resource, "uid": final["metadata"].get("uid", "")})
        return respond(
            call.request,
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details},
        )

    async def _delete_collection(self, call: Call) -> web.StreamResponse:
        options = await self._delete_options(call)
        w = self._delete_write(call, options)
        pred = self._predicate(call)
        deleted = []
        for o in self.store.list(call.kind.key, call.namespace):
            if pred(o):
                gone = self.resources.delete(call.kind, call.namespace, o["metadata"]["name"], options, w)
                gone.pop("kind", None)
                gone.pop("apiVersion", None)
                deleted.append(gone)
        return respond(
            call.request,
            {
                "kind": call.kind.list_kind_name(),
                "apiVersion": call.kind.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": deleted,
            },
        )

    # subresources and reviews

    async def _subresource(self, call: Call) -> web.StreamResponse:
        kind, info = call.kind, call.info
        sub = kind.subresource(info.subresource)
        if sub is None or not info.name:
            raise resource_not_found()
        if info.verb not in sub.verbs:
            raise method_not_allowed()
        if sub.name == "log":
            return await serve_log(call.request, self.logs, self._existing(call))
        if sub.name == "exec":
            return await serve_exec(call.request, self._existing(call), self.runtime)
        if sub.name == "attach":
            return await serve_attach(call.request, self._existing(call), self.runtime)
        if sub.name == "portforward":
            return await serve_portforward(call.request, self._existing(call))
        if sub.name == "token":
            account = self._existing(call)
            body = await read_object(call.request)
            return respond(call.request, reviews.token_request(self.tokens, account, body), 201)
        if sub.name == "scale":
            return await self._scale(call)
        if info.verb == "get":
            return self.render(call, self._existing(call))
        if info.verb == "update":
            return await self._update(call, "status")
        return await self._patch(call, "status")

    @staticmethod
    def _scale_of(d: dict[str, Any]) -> dict[str, Any]:
        meta = d["metadata"]
        labels = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": d["spec"].get("replicas", 1)},
            "status": {
                "replicas": (d.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            },
        }

    async def _scale(self, call: Call) -> web.StreamResponse:
        existing = self._existing(call)
        scale = self._scale_of(existing)
        if call.info.verb == "get":
            return respond(call.request, scale)
        if call.info.verb == "update":
            wanted = await read_object(call.request)
        else:
            content_type = media_type(call.request)
            if content_type not in PATCH_TYPES[:3]:
                raise unsupported_media_type(content_type, list(PATCH_TYPES[:3]))
            wanted = apply_patch(content_type, clone(scale), await call.request.read())
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != existing["metadata"]["resourceVersion"]:
            raise conflict(call.kind, call.info.name, MODIFIED)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                f'Scale.autoscaling "{call.info.name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
                "Invalid",
            )
        new = clone(existing)
        new["spec"]["replicas"] = replicas
        result = self.resources.commit(call.kind, existing, new, _write(call, "scale"))
        return respond(call.request, self._scale_of(result))

    async def _review(self, call: Call) -> web.StreamResponse:
        body = await read_object(call.request)
        if call.kind.resource == "selfsubjectaccessreviews":
            return respond(call.request, reviews.access_review(self.authz, call.user, body), 201)
        if call.kind.resource == "selfsubjectrulesreviews":
            return respond(call.request, reviews.rules_review(self.authz, call.user, body), 201)
        return respond(call.request, reviews.self_review(call.user), 201)
