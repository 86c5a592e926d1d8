"""What a reviewer reads: the object a create makes, diffs of updates and merge patches against the
object as the requester may read it, JSON patch operations, and Secret values masked everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from kubegate.approvals.summary import summarize
from kubegate.kube.body import RequestBodyStage
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.proxy.flow import Flow
from tests.approvals.builders import AGENT, MASKER, make_flow
from tests.kube.test_protobuf import _envelope, _field


def summary(flow: Flow) -> Awaitable[str]:
    return summarize(flow, MASKER)


CURRENT = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "dev", "resourceVersion": "7", "managedFields": [{"x": 1}]},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "dev"},
          "data": {"password": "b2xk"}}


class Cluster:
    """A connection to a tiny API server that serves two objects and notes who asked."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self.name, self.session, self.server = "dev", session, server
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


def _flow(cluster: Cluster, method: str, path: str, body: Any, content_type: str = "application/json") -> Any:
    flow = make_flow(method, path, body=orjson.dumps(body), connection=cluster)
    flow.headers = CIMultiDict({"Content-Type": content_type})
    return flow


async def test_an_update_is_shown_as_a_diff_read_as_the_requester(cluster: Cluster) -> None:
    new = {**CURRENT, "spec": {**CURRENT["spec"], "replicas": 5}}
    text = await summary(_flow(cluster, "PUT", "/apis/apps/v1/namespaces/dev/deployments/web", new))
    assert "-  replicas: 2\n+  replicas: 5" in text
    assert "managedFields" not in text and "resourceVersion" not in text
    assert cluster.seen == [AGENT.username]


async def test_a_merge_patch_is_applied_and_diffed(cluster: Cluster) -> None:
    patch = {"spec": {"template": {"spec": {"containers": None}}, "replicas": 3}}
    text = await summary(_flow(cluster, "PATCH", "/apis/apps/v1/namespaces/dev/deployments/web", patch,
                                 "application/merge-patch+json"))
    assert "-  replicas: 2\n+  replicas: 3" in text and "-      - image: web:1" in text


async def test_an_unreadable_object_falls_back_to_the_patch(cluster: Cluster) -> None:
    text = await summary(_flow(cluster, "PATCH", "/apis/apps/v1/namespaces/dev/deployments/gone",
                                 {"spec": {"replicas": 3}}, "application/merge-patch+json"))
    assert text.startswith("merge patch of deployments/gone in namespace dev (current object not readable)")


async def test_json_patch_strategic_merge_and_apply(cluster: Cluster) -> None:
    path = "/apis/apps/v1/namespaces/dev/deployments/web"
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}, {"op": "remove", "path": "/metadata/labels"}]
    assert await summary(_flow(cluster, "PATCH", path, ops, "application/json-patch+json")) == (
        "JSON patch of deployments/web in namespace dev:\nreplace /spec/replicas = 4\nremove /metadata/labels")
    smp = await summary(_flow(cluster, "PATCH", path, {"spec": {"replicas": 4}},
                                "application/strategic-merge-patch+json"))
    assert smp.startswith("strategic merge patch of deployments/web in namespace dev; the fields it sets:")
    applied = await summary(_flow(cluster, "PATCH", path, {"spec": {"replicas": 4}}, "application/apply-patch+yaml"))
    assert applied.startswith("server-side apply of deployments/web")


async def test_secret_values_never_appear(cluster: Cluster) -> None:
    new = {**SECRET, "data": {"password": "bmV3"}}
    text = await summary(_flow(cluster, "PUT", "/api/v1/namespaces/dev/secrets/db", new))
    assert "b2xk" not in text and "bmV3" not in text
    assert text.endswith("Secret values changed (masked): data.password")
    patched = await summary(_flow(cluster, "PATCH", "/api/v1/namespaces/dev/secrets/db",
                                    {"data": {"token": "dG9r"}}, "application/merge-patch+json"))
    assert "dG9r" not in patched and "+  token: PG1hc2tlZCBieSBrdWJlZ2F0ZT4=" in patched
    assert patched.endswith("Secret values changed (masked): data.token")
    created = await summary(_flow(cluster, "POST", "/api/v1/namespaces/dev/secrets", new))
    assert created.startswith("create secrets in namespace dev:") and "bmV3" not in created


async def test_deletes_and_exec_read_as_one_line() -> None:
    delete = make_flow(body=b'{"propagationPolicy":"Background"}')
    assert await summary(delete) == 'delete namespaces/pr-42\noptions: {"propagationPolicy":"Background"}'
    exec_flow = make_flow("GET", "/api/v1/namespaces/dev/pods/web/exec", "command=sh&command=-c&command=id"
                          "&container=app")
    assert await summary(exec_flow) == "create pods/web/exec in namespace dev container app\ncommand: sh -c id"


async def test_a_protobuf_create_shows_the_object_the_body_stage_read() -> None:
    body = _envelope(b"rbac.authorization.k8s.io/v1", b"ClusterRoleBinding", _field(1, _field(1, b"root-for-ci")))
    flow = make_flow("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body=body)
    flow.headers["Content-Type"] = "application/vnd.kubernetes.protobuf"
    await RequestBodyStage().on_request(flow)
    text = await summary(flow)
    assert text.startswith("create clusterrolebindings:") and "name: root-for-ci" in text


async def test_the_request_masks_and_user_rules_apply_to_both_sides(cluster: Cluster) -> None:
    """A reviewer (and a webhook) sees what the requester's masks hide as the marker: here a user-defined
    field rule and env-credentials, on the object sent and on the current one it is diffed against."""
    masker = Masker(MaskingConfig.model_validate({"field_rules": [
        {"name": "image-pins", "kind": "Deployment", "path": "spec.template.spec.containers[*].image"}]}))
    new = {**CURRENT, "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "web", "image": "web:2", "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}]}}}}
    flow = _flow(cluster, "PUT", "/apis/apps/v1/namespaces/dev/deployments/web", new)
    flow.decision = replace(flow.decision, masks=("image-pins", "env-credentials"))
    text = await summarize(flow, masker)
    assert "web:1" not in text and "web:2" not in text and "hunter2" not in text
    assert "value: <masked by kubegate>" in text and "image: <masked by kubegate>" in text
