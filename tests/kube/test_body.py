"""Request bodies are read once; what kubegate and the cluster could read two ways is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.kube.body import AmbiguousBody, RequestBodyStage, parse_body
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.status import Refused
from tests.protowire import envelope


def test_json_and_yaml_in_every_media_type_kubectl_sends() -> None:
    assert parse_body(b'[{"op": "add"}]', "application/json-patch+json") == [{"op": "add"}]
    assert parse_body(b'{"a": {"b": 1}}', "application/strategic-merge-patch+json") == {"a": {"b": 1}}
    assert parse_body(b"a: 1", "application/yaml") == {"a": 1}
    assert parse_body(b"a: 1", "application/apply-patch+yaml; charset=utf-8") == {"a": 1}


def test_bodies_kubegate_does_not_decode_are_left_to_the_cluster() -> None:
    assert parse_body(b"\xa0", "application/cbor") is None
    assert parse_body(envelope(b"v1", b"ConfigMap", b""), "application/vnd.kubernetes.protobuf") is None
    assert parse_body(b'{"a": ', "application/json") is None  # the cluster answers a broken body itself


@pytest.mark.parametrize(
    ("body", "media"),
    [
        # sigs.k8s.io/json decodes the second value into the first: the objects merge, privileged survives
        (b'{"spec":{"securityContext":{"privileged":true},"securityContext":{}}}', "application/json"),
        (b'{"a": 1, "a": 2}', "application/merge-patch+json"),
        (b'[{"op": "add", "path": "/a", "path": "/b", "value": 1}]', "application/json-patch+json"),
        (b"spec:\n  hostNetwork: true\nspec:\n  replicas: 1\n", "application/apply-patch+yaml"),
        (b'{"a": NaN}', "application/json"),
        (b'{"a": "\xff"}', "application/json"),
    ],
)
def test_what_reads_two_ways_is_ambiguous(body: bytes, media: str) -> None:
    with pytest.raises(AmbiguousBody):
        parse_body(body, media)


def flow(method: str, path: str, body: bytes, content_type: str) -> Flow:
    f = Flow(
        request=None,
        connection=SimpleNamespace(name="dev"),
        method=method,
        raw_path=path,  # type: ignore[arg-type]
        query_string="",
        headers=CIMultiDict({"Content-Type": content_type}),
        body=body,
    )
    f.info = parse_request_info(method, path)
    return f


async def test_a_repeated_key_is_refused_with_a_400_that_says_why() -> None:
    body = b'{"kind":"Pod","spec":{"hostPID":true},"spec":{}}'
    with pytest.raises(Refused) as refused:
        await RequestBodyStage().on_request(flow("POST", "/api/v1/namespaces/a/pods", body, "application/json"))
    assert refused.value.code == 400 and "'spec' appears twice" in refused.value.message
    assert "read two ways" in refused.value.message


async def test_the_body_is_read_for_writes_and_deletes_and_forwarded_untouched() -> None:
    body = b'{"propagationPolicy": "Foreground"}'
    f = flow("DELETE", "/api/v1/namespaces/a/configmaps/c", body, "application/json")
    await RequestBodyStage().on_request(f)
    assert f.sent == {"propagationPolicy": "Foreground"} and f.body == body


async def test_reads_are_left_alone() -> None:
    f = flow("GET", "/api/v1/namespaces/a/configmaps", b"{}", "application/json")
    await RequestBodyStage().on_request(f)
    assert f.sent is None
