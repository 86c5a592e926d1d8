"""Property, judged by the real kube-apiserver: for every request target kubegate accepts, its RequestInfo
is the one the cluster builds (read back from the audit log's verb and objectRef).

Targets are drawn with random percent-encodings, dot and empty segments, encoded separators, `#`, `;`,
`+`, bad escapes, repeated and legacy-watch forms, then sent byte for byte to the apiserver as its
admin with an `Audit-ID` header, so each audit event is found by that id.
"""

from __future__ import annotations

import http.client
import ssl
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.kube.requestinfo import BadPath, parse_request_info
from tests.conftest import World

pytestmark = pytest.mark.e2e
UNRESERVED = "abcdefghijklmnopqrstuvwxyz0123456789-._~"


BENIGN = [
    "watch=1",
    "watch=false",
    "watch=True",
    "watch=0",
    "watch=yes",
    "limit=5",
    "limit=x",
    "timeoutSeconds=1",
    "timeoutSeconds=-3",
    "labelSelector=a+b",
    "pretty=true",
    "%77atch=1",
    "resourceVersion=0",
    "x=",
    "y",
]
HOSTILE = [
    "fieldSelector=metadata.name%3Dweb;",
    "fieldSelector=metadata.name%3Dx%zz",
    "a;b=c",
    "#",
    "x=%",
    "watch=1&watch=0",
    "fieldSelector=a&fieldSelector=b",
]


@st.composite
def segment(draw: st.DrawFn, word: str, benign: bool) -> str:
    """`word`, with some characters percent-encoded, or (not benign) replaced by something that reads two ways."""
    tricks = ["plain", "encoded"] if benign else ["plain", "encoded", "slash", "dot", "dots", "empty", "hash", "plus"]
    trick = draw(st.sampled_from(tricks))
    if trick == "encoded":
        return "".join(f"%{ord(c):02{draw(st.sampled_from('Xx'))}}" if draw(st.booleans()) else c for c in word)
    return {
        "plain": word,
        "slash": word + "%2F" + word,
        "dot": ".",
        "dots": "..",
        "empty": "",
        "hash": word + "#x",
        "plus": word + "+x",
    }[trick]


@st.composite
def target(draw: st.DrawFn) -> tuple[str, str, str]:
    """(method, raw path, raw query) of a read a client might send: half of them benign (kubegate should
    accept most), half with something that reads two ways somewhere."""
    benign = draw(st.booleans())
    namespace = draw(st.sampled_from(["default", "pr-1", "kube-system"]))
    resource = draw(
        st.sampled_from(
            [("api/v1", "pods"), ("api/v1", "secrets"), ("apis/apps/v1", "deployments"), ("api/v1", "namespaces")]
        )
    )
    name = draw(st.sampled_from(["web", "db-0", "a.b", "x~y"]))
    shape = draw(st.sampled_from(["collection", "object", "subresource", "cluster", "legacy-watch", "nonresource"]))
    prefix, plural = resource
    parts = prefix.split("/")
    if shape == "nonresource":
        parts = [draw(st.sampled_from(["version", "healthz", "api", "apis", "openapi"]))]
    elif shape == "cluster":
        parts += [plural]
    elif shape == "legacy-watch":
        parts += ["watch", "namespaces", namespace, plural]
    elif plural == "namespaces":
        parts += ["namespaces", namespace] + (["status"] if shape == "subresource" else [])
    else:
        parts += ["namespaces", namespace, plural] + ([name] if shape != "collection" else [])
        parts += ["status"] if shape == "subresource" else []
    path = "/" + "/".join([draw(segment(p, benign)) for p in parts]) + draw(st.sampled_from(["", "", "/"]))
    choices = [
        *BENIGN,
        f"fieldSelector=metadata.name%3D{name}",
        f"fieldSelector=metadata.name%3D%3D{name}",
        f"fieldSelector=metadata.name%3D{name}%2Cmetadata.namespace%3Dx",
        "fieldSelector=spec.nodeName%3Dn",
    ]
    params = draw(
        st.lists(st.sampled_from(choices), max_size=4, unique_by=lambda p: p.split("=")[0].replace("%77", "w"))
    )
    if not benign:
        params.insert(draw(st.integers(0, len(params))), draw(st.sampled_from(HOSTILE)))
    return draw(st.sampled_from(["GET", "GET", "HEAD"])), path, "&".join(params)


def _reading(world: World, method: str, path: str, query: str) -> dict[str, Any]:
    """The exact bytes to the apiserver, and how it read them (its audit event; the answer does not matter,
    and a watch is closed as soon as the cluster has read it)."""
    control = world.control
    audit_id = str(uuid.uuid4())
    ctx = ssl.create_default_context(cafile=str(control.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", control.port, context=ctx, timeout=10)
    try:
        conn.putrequest(method, path + (f"?{query}" if query else ""), skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {control.admin_token}")
        conn.putheader("Audit-ID", audit_id)
        conn.endheaders()
        event: dict[str, Any] = control.wait_for_event(lambda e: e.raw.get("auditID") == audit_id, timeout=10).raw
        return event
    finally:
        conn.close()


ACCEPTED: list[int] = []


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=target())
def test_what_kubegate_accepts_it_reads_as_the_cluster_does(world: World, request: tuple[str, str, str]) -> None:
    method, path, query = request
    try:
        info = parse_request_info(method, path, query)
    except BadPath:
        return  # refused with a 400 before the cluster: no disagreement possible
    ACCEPTED.append(1)
    event = _reading(world, method, path, query)
    ref = event.get("objectRef") or {}
    assert event["verb"] == info.verb, (path, query)
    if not info.is_resource_request:
        assert not ref, (path, query)
        return
    assert (
        ref.get("apiGroup", ""),
        ref.get("apiVersion", ""),
        ref.get("resource", ""),
        ref.get("namespace", ""),
        ref.get("name", ""),
        ref.get("subresource", ""),
    ) == (info.api_group, info.api_version, info.resource, info.namespace, info.name, info.subresource), (path, query)


def test_the_property_was_not_vacuous() -> None:
    assert len(ACCEPTED) >= 40, "too few drawn targets were accepted to compare anything"
