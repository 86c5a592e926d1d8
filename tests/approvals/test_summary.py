"""What a reviewer reads: the object a create makes, the diff between the object as the requester may read
it and the object the cluster would store (policy's dry run), JSON patch operations, and Secret values
masked everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from kubegate.approvals.summary import summarize
from kubegate.flow import Flow
from kubegate.kube.body import RequestBodyStage
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.upstream.client import UpstreamClient
from tests.approvals.builders import AGENT, MASKER, make_flow
from tests.protowire import envelope, field


def summary(flow: Flow) -> Awaitable[str]:
    return summarize(flow, MASKER)


CURRENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "dev", "resourceVersion": "7", "managedFields": [{"x": 1}]},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "dev"},
    "data": {"password": "b2xk"},
}


class Cluster:
    """A connection to a tiny API server that serves two objects and notes who asked."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self.name, self.session, self.server = "dev", session, server
        self.config = SimpleNamespace(request_timeout_seconds=5)
        self.client = UpstreamClient(self)  # type: ignore[arg-type]
        self.seen: list[str] = []

    async def upstream_identity_headers(self, identity: Any) -> list[tuple[str, str]]:
        return [("Authorization", "Bearer gateway"), ("Impersonate-User", identity.username)]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    objects = {"/apis/apps/v1/namespaces/dev/deployments/web": CURRENT, "/api/v1/namespaces/dev/secrets/db": SECRET}
    conn: Cluster

    async def get(request: web.Request) -> web.Response:
        conn.seen.append(request.headers.get("Impersonate-User", ""))
        found = objects.get(request.path)
        return web.json_response(found) if found else web.json_response({"kind": "Status"}, status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", get)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        conn = Cluster(session, str(server.make_url("")).rstrip("/"))
        yield conn
    await server.close()


async def _flow(
    cluster: Cluster, method: str, path: str, body: Any, stored: Any, content_type: str = "application/json"
) -> Any:
    """A request as the approval stage gets it: body read, and the object its dry run said it would store."""
    flow = make_flow(method, path, body=orjson.dumps(body), connection=cluster)
    flow.headers = CIMultiDict({"Content-Type": content_type})
    await RequestBodyStage().on_request(flow)
    flow.stored = stored
    return flow


WEB = "/apis/apps/v1/namespaces/dev/deployments/web"


def scaled(replicas: int) -> dict[str, Any]:
    return {
        **CURRENT,
        "metadata": {**CURRENT["metadata"], "resourceVersion": "8"},
        "spec": {**CURRENT["spec"], "replicas": replicas},
    }


async def test_an_update_is_shown_as_a_diff_read_as_the_requester(cluster: Cluster) -> None:
    text = await summary(await _flow(cluster, "PUT", WEB, scaled(5), scaled(5)))
    assert "-  replicas: 2\n+  replicas: 5" in text
    assert "managedFields" not in text and "resourceVersion" not in text
    assert cluster.seen == [AGENT.username]


async def test_every_patch_type_shows_the_diff_to_what_the_cluster_would_store(cluster: Cluster) -> None:
    """The diff is to the dry run's object, not to kubegate's reading of the patch: a strategic merge
    patch or an apply (whose merging only the cluster knows) reads like a merge patch."""
    for media in (
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ):
        text = await summary(await _flow(cluster, "PATCH", WEB, {"spec": {"replicas": 3}}, scaled(3), media))
        assert "-  replicas: 2\n+  replicas: 3" in text, media


async def test_a_json_patch_lists_its_operations_and_the_diff(cluster: Cluster) -> None:
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}, {"op": "remove", "path": "/metadata/labels"}]
    text = await summary(await _flow(cluster, "PATCH", WEB, ops, scaled(4), "application/json-patch+json"))
    assert text.startswith(
        "JSON patch of deployments/web in namespace dev:\nreplace /spec/replicas = 4\nremove /metadata/labels\n"
    )
    assert "-  replicas: 2\n+  replicas: 4" in text


async def test_an_unreadable_object_shows_what_it_would_become(cluster: Cluster) -> None:
    gone = {**scaled(3), "metadata": {"name": "gone", "namespace": "dev"}}
    text = await summary(
        await _flow(
            cluster,
            "PATCH",
            "/apis/apps/v1/namespaces/dev/deployments/gone",
            {"spec": {"replicas": 3}},
            gone,
            "application/merge-patch+json",
        )
    )
    assert text.startswith("patch deployments/gone in namespace dev (current object not readable) to:")
    assert "replicas: 3" in text


async def test_secret_values_never_appear(cluster: Cluster) -> None:
    new = {**SECRET, "data": {"password": "bmV3"}}
    text = await summary(await _flow(cluster, "PUT", "/api/v1/namespaces/dev/secrets/db", new, new))
    assert "b2xk" not in text and "bmV3" not in text
    assert text.endswith("Secret values changed (masked): data.password")
    patched = {**SECRET, "data": {"password": "b2xk", "token": "dG9r"}}
    text = await summary(
        await _flow(
            cluster,
            "PATCH",
            "/api/v1/namespaces/dev/secrets/db",
            {"data": {"token": "dG9r"}},
            patched,
            "application/merge-patch+json",
        )
    )
    assert "dG9r" not in text and "+  token: PG1hc2tlZCBieSBrdWJlZ2F0ZT4=" in text
    assert text.endswith("Secret values changed (masked): data.token")
    created = await summary(await _flow(cluster, "POST", "/api/v1/namespaces/dev/secrets", new, new))
    assert created.startswith("create secrets in namespace dev:") and "bmV3" not in created


async def test_deletes_and_exec_read_as_one_line() -> None:
    delete = make_flow(body=b'{"propagationPolicy":"Background"}')
    delete.headers["Content-Type"] = "application/json"
    await RequestBodyStage().on_request(delete)
    assert await summary(delete) == 'delete namespaces/pr-42\noptions: {"propagationPolicy":"Background"}'
    exec_flow = make_flow(
        "GET", "/api/v1/namespaces/dev/pods/web/exec", "command=sh&command=-c&command=id&container=app"
    )
    assert await summary(exec_flow) == "create pods/web/exec in namespace dev container app\ncommand: sh -c id"


async def test_a_protobuf_create_shows_the_object_the_cluster_would_store() -> None:
    body = envelope(b"rbac.authorization.k8s.io/v1", b"ClusterRoleBinding", field(1, field(1, b"root-for-ci")))
    flow = make_flow("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body=body)
    flow.headers["Content-Type"] = "application/vnd.kubernetes.protobuf"
    await RequestBodyStage().on_request(flow)
    flow.stored = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "root-for-ci"},
    }
    text = await summary(flow)
    assert text.startswith("create clusterrolebindings:") and "name: root-for-ci" in text


async def test_the_request_masks_and_user_rules_apply_to_both_sides(cluster: Cluster) -> None:
    """A reviewer (and a webhook) sees what the requester's masks hide as the marker: here a user-defined
    field rule and env-credentials, on the object sent and on the current one it is diffed against."""
    masker = Masker(
        MaskingConfig.model_validate(
            {
                "field_rules": [
                    {"name": "image-pins", "kind": "Deployment", "path": "spec.template.spec.containers[*].image"}
                ]
            }
        )
    )
    new = {
        **CURRENT,
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "image": "web:2", "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}
                    ]
                }
            },
        },
    }
    flow = await _flow(cluster, "PUT", WEB, new, new)
    flow.decision = replace(flow.decision, masks=("image-pins", "env-credentials"))
    text = await summarize(flow, masker)
    assert "web:1" not in text and "web:2" not in text and "hunter2" not in text
    assert "value: <masked by kubegate>" in text and "image: <masked by kubegate>" in text
