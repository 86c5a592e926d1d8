"""The sandbox's wire behaviour where kubectl cannot show it: negotiation, discovery, tables, watch
details, impersonation edge cases, gzip and what `requests` records."""

from __future__ import annotations

import gzip
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from kubegate.sandbox.cluster import SandboxCluster

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


class Client:
    def __init__(self, session: aiohttp.ClientSession, sandbox: SandboxCluster) -> None:
        self.session = session
        self.sandbox = sandbox

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        sent = {"Authorization": f"Bearer {token or self.sandbox.admin_token}", **(headers or {})}
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.sandbox.url + path, data=data, headers=sent) as resp:
            raw = await resp.read()
            try:
                parsed: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw
            return resp.status, resp.headers, parsed

    async def lines(self, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """A watch read to its end (the path must bound it with timeoutSeconds)."""
        sent = {"Authorization": f"Bearer {self.sandbox.admin_token}", **(headers or {})}
        async with self.session.get(self.sandbox.url + path, headers=sent) as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            return [orjson.loads(line) async for line in resp.content if line.strip()]


@pytest.fixture
async def client(sandbox: SandboxCluster) -> AsyncIterator[Client]:
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), auto_decompress=False) as session:
        yield Client(session, sandbox)


def _cm(namespace: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {"k": "v"},
    }


async def test_aggregated_discovery_when_asked(client: Client) -> None:
    status, headers, body = await client.call("GET", "/apis", headers={"Accept": f"{DISCOVERY},application/json"})
    assert status == 200 and headers["Content-Type"] == DISCOVERY
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    deploy = apps["versions"][0]["resources"][0]
    assert deploy["resource"] == "deployments" and deploy["shortNames"] == ["deploy"]
    assert {s["subresource"] for s in deploy["subresources"]} == {"scale", "status"}
    status, _, legacy = await client.call("GET", "/apis", headers={"Accept": "application/json"})
    assert legacy["kind"] == "APIGroupList"
    _, _, core = await client.call("GET", "/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {"pods/log", "pods/status", "serviceaccounts/token", "namespaces"} <= names


async def test_openapi_v3_declares_server_side_field_validation(client: Client) -> None:
    _, _, index = await client.call("GET", "/openapi/v3")
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    _, _, doc = await client.call("GET", url)
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    status, _, swagger = await client.call("GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert status == 200 and swagger["swagger"] == "2.0"


async def test_protobuf_only_is_not_acceptable_but_json_fallback_is(client: Client) -> None:
    status, _, body = await client.call(
        "GET", "/api/v1/namespaces/default", headers={"Accept": "application/vnd.kubernetes.protobuf"}
    )
    assert status == 406 and body["reason"] == "NotAcceptable"
    status, headers, body = await client.call(
        "GET", "/api/v1/namespaces/default", headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json" and body["kind"] == "Namespace"


async def test_tables_and_partial_metadata(client: Client, sandbox: SandboxCluster) -> None:
    sandbox.seed(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "http-tables"}}, _cm("http-tables", "one")]
    )
    _, headers, table = await client.call(
        "GET", "/api/v1/namespaces/http-tables/configmaps?includeObject=Object", headers={"Accept": TABLE}
    )
    assert headers["Content-Type"] == TABLE
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][:2] == ["one", 1]
    assert table["rows"][0]["object"]["data"] == {"k": "v"}
    _, _, row = await client.call(
        "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", headers={"Accept": TABLE}
    )
    assert [c["name"] for c in row["columnDefinitions"]] == ["Name", "Created At"]
    assert row["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    partial = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    _, _, plist = await client.call("GET", "/api/v1/namespaces/http-tables/configmaps", headers={"Accept": partial})
    assert plist["kind"] == "PartialObjectMetadataList" and plist["items"][0]["metadata"]["name"] == "one"
    assert "data" not in plist["items"][0]


async def test_table_watch_sends_column_definitions_once(client: Client, sandbox: SandboxCluster) -> None:
    sandbox.seed(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "http-watch"}},
            _cm("http-watch", "a"),
            _cm("http-watch", "b"),
        ]
    )
    events = await client.lines(
        "/api/v1/namespaces/http-watch/configmaps?watch=1&timeoutSeconds=1", headers={"Accept": TABLE}
    )
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert events[0]["object"]["columnDefinitions"] and events[1]["object"]["columnDefinitions"] is None
    assert events[1]["object"]["rows"][0]["cells"][0] == "b"


async def test_watch_initial_events_end_with_an_annotated_bookmark(client: Client, sandbox: SandboxCluster) -> None:
    sandbox.seed(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "http-initial"}}, _cm("http-initial", "x")]
    )
    events = await client.lines(
        "/api/v1/namespaces/http-initial/configmaps?watch=1&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    assert [e["type"] for e in events[:2]] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_selectors_and_pagination(client: Client, sandbox: SandboxCluster) -> None:
    ns = "http-select"
    sandbox.seed(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            _cm(ns, "a", {"tier": "web"}),
            _cm(ns, "b", {"tier": "db"}),
            _cm(ns, "c"),
        ]
    )

    async def names(query: str) -> list[str]:
        status, _, body = await client.call("GET", f"/api/v1/namespaces/{ns}/configmaps?{query}")
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert await names("labelSelector=tier%3Dweb") == ["a"]
    assert await names("labelSelector=tier+notin+(web)") == ["b", "c"]
    assert await names("labelSelector=!tier") == ["c"]
    assert await names("labelSelector=tier,tier!%3Ddb") == ["a"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    status, _, body = await client.call("GET", f"/api/v1/namespaces/{ns}/configmaps?fieldSelector=spec.x%3D1")
    assert status == 400 and body["message"] == "field label not supported: spec.x"
    _, _, page = await client.call("GET", f"/api/v1/namespaces/{ns}/configmaps?limit=2")
    assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"]
    assert page["metadata"]["remainingItemCount"] == 1
    token = page["metadata"]["continue"]
    assert await names(f"limit=2&continue={token}") == ["c"]


async def test_impersonation_edge_cases(client: Client, sandbox: SandboxCluster) -> None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    status, _, body = await client.call(
        "POST", path, token=sandbox.gateway_token, body=review, headers={"Impersonate-Group": "devs"}
    )
    assert status == 500
    assert body["message"] == "Internal error occurred: requested [{Group  devs    }] without impersonating a user"
    status, _, body = await client.call(
        "POST",
        path,
        token=sandbox.gateway_token,
        body=review,
        headers={"Impersonate-User": "alice", "Impersonate-Uid": "u-1", "Impersonate-Extra-Scope%2Fname": "read"},
    )
    assert status == 201
    assert body["status"]["userInfo"] == {
        "username": "alice",
        "uid": "u-1",
        "groups": ["system:authenticated"],
        "extra": {"scope/name": ["read"]},
    }

    sandbox.add_token("only-alice-token", "impersonator", [])
    sandbox.seed(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "impersonate-alice"},
                "rules": [
                    {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["alice"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "impersonate-alice"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "impersonate-alice",
                },
                "subjects": [{"kind": "User", "name": "impersonator"}],
            },
        ]
    )
    ok, _, _ = await client.call(
        "POST", path, token="only-alice-token", body=review, headers={"Impersonate-User": "alice"}
    )
    refused, _, body = await client.call(
        "POST", path, token="only-alice-token", body=review, headers={"Impersonate-User": "bob"}
    )
    assert (ok, refused) == (201, 403)
    assert body["message"] == (
        'users "bob" is forbidden: User "impersonator" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    assert body["details"] == {"name": "bob", "kind": "users"}


async def test_unauthenticated_and_unknown_paths(client: Client) -> None:
    async with client.session.get(client.sandbox.url + "/api/v1/pods") as resp:
        assert resp.status == 401
        assert (await resp.json())["message"] == "Unauthorized"
    status, _, body = await client.call("GET", "/api/v1/widgets")
    assert status == 404 and body["message"] == "the server could not find the requested resource"


async def test_large_responses_are_gzipped(client: Client, sandbox: SandboxCluster) -> None:
    ns = "http-gzip"
    sandbox.seed(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            *({**_cm(ns, f"big{i}"), "data": {"blob": "x" * 40_000}} for i in range(4)),
        ]
    )
    status, headers, raw = await client.call(
        "GET", f"/api/v1/namespaces/{ns}/configmaps", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(orjson.loads(gzip.decompress(raw))["items"]) == 4
    _, small_headers, _ = await client.call(
        "GET", f"/api/v1/namespaces/{ns}/configmaps/big0", headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in small_headers


async def test_writes_conflicts_dry_run_and_generate_name(client: Client, sandbox: SandboxCluster) -> None:
    ns = "http-writes"
    sandbox.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
    base = f"/api/v1/namespaces/{ns}/configmaps"
    status, _, dry = await client.call("POST", base + "?dryRun=All", body=_cm(ns, "dry"))
    assert status == 201 and dry["metadata"]["name"] == "dry"
    assert (await client.call("GET", base + "/dry"))[0] == 404
    status, _, made = await client.call("POST", base, body={"metadata": {"generateName": "gen-"}, "data": {}})
    assert status == 201 and made["metadata"]["name"].startswith("gen-") and len(made["metadata"]["name"]) == 9
    stale = {**made, "data": {"a": "b"}, "metadata": {**made["metadata"], "resourceVersion": "1"}}
    status, _, body = await client.call("PUT", f"{base}/{made['metadata']['name']}", body=stale)
    assert status == 409 and body["message"] == (
        f'Operation cannot be fulfilled on configmaps "{made["metadata"]["name"]}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    status, _, gone = await client.call("DELETE", base)
    assert status == 200 and gone["kind"] == "ConfigMapList" and len(gone["items"]) == 1
    await client.call("POST", base, body=_cm(ns, "kept"))
    status, _, deleted_ns = await client.call("DELETE", f"/api/v1/namespaces/{ns}")
    assert status == 200 and deleted_ns["status"]["phase"] == "Terminating"
    assert (await client.call("GET", base + "/kept"))[0] == 404


async def test_binding_needs_bind_or_the_permissions_it_grants(client: Client, sandbox: SandboxCluster) -> None:
    ns = "http-escalation"
    sandbox.seed(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "binder", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "binder"}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "write-bindings", "namespace": ns},
                "rules": [
                    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "binder-writes", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "write-bindings"},
                "subjects": [{"kind": "User", "name": "binder"}],
            },
        ]
    )
    sandbox.add_token("binder-token", "binder", [])

    def binding(role: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"to-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": "someone"}],
        }

    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
    held, _, _ = await client.call("POST", path, token="binder-token", body=binding("view"))
    status, _, body = await client.call("POST", path, token="binder-token", body=binding("edit"))
    assert (held, status) == (201, 403)
    assert body["message"].startswith(
        'rolebindings.rbac.authorization.k8s.io "to-edit" is forbidden: user "binder" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions '
        'not currently held:\n{APIGroups:[""], Resources:["secrets"]'
    )
    granted, _, _ = await client.call("POST", path, token=sandbox.gateway_token, body=binding("edit"))
    assert granted == 201


async def test_requests_are_recorded(client: Client, sandbox: SandboxCluster) -> None:
    await client.call("GET", "/api/v1/namespaces/default/pods?limit=7", headers={"X-Probe": "seen"})
    seen = sandbox.requests[-1]
    assert (seen.method, seen.path, seen.query_string) == ("GET", "/api/v1/namespaces/default/pods", "limit=7")
    assert seen.headers["X-Probe"] == "seen"


async def test_deployment_scale_subresource(client: Client, sandbox: SandboxCluster) -> None:
    sandbox.seed(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "scaled", "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "s"}},
                    "template": {
                        "metadata": {"labels": {"app": "s"}},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            }
        ]
    )
    path = "/apis/apps/v1/namespaces/default/deployments/scaled"
    _, _, scale = await client.call("GET", path + "/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=s"
    status, _, _ = await client.call(
        "PATCH",
        path + "/scale",
        body={"spec": {"replicas": 4}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    _, _, deploy = await client.call("GET", path)
    assert status == 200 and deploy["spec"]["replicas"] == 4 and deploy["status"]["readyReplicas"] == 4
