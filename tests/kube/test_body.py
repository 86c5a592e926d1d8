"""Request bodies are read once, in every form kubectl sends, and unreadable ones are flagged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from kubegate.kube.body import RequestBodyStage, UnreadableBody, parse_body
from kubegate.kube.requestinfo import parse_request_info
from kubegate.proxy.flow import Flow
from tests.kube.test_protobuf import _envelope, _field


def test_parse_body_media_types() -> None:
    assert parse_body(b'[{"op": "add"}]', "application/json-patch+json") == [{"op": "add"}]
    assert parse_body(b"a: 1", "application/yaml") == {"a": 1}
    assert parse_body(b"a: 1", "application/apply-patch+yaml; charset=utf-8") == {"a": 1}
    with pytest.raises(UnreadableBody, match="application/cbor"):
        parse_body(b"\xa0", "application/cbor")


def flow(method: str, path: str, body: bytes, content_type: str) -> Flow:
    f = Flow(request=None, connection=SimpleNamespace(name="dev"), method=method, raw_path=path,  # type: ignore[arg-type]
             query_string="", headers=CIMultiDict({"Content-Type": content_type}), body=body)
    f.info = parse_request_info(method, path)
    return f


async def test_protobuf_from_typed_clients_is_read_and_forwarded_untouched() -> None:
    body = _envelope(b"v1", b"ConfigMap", _field(1, _field(1, b"cfg") + _field(4, b"")) + _field(4, 0))
    f = flow("POST", "/api/v1/namespaces/a/configmaps", body, "application/vnd.kubernetes.protobuf")
    await RequestBodyStage().on_request(f)
    assert f.object == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "immutable": False}
    assert f.body == body and not f.object_error


async def test_a_protobuf_field_kubegate_does_not_know_leaves_an_error_not_a_partial_object() -> None:
    body = _envelope(b"v1", b"ConfigMap", _field(1, _field(1, b"cfg")) + _field(42, b"surprise"))
    f = flow("POST", "/api/v1/namespaces/a/configmaps", body, "application/vnd.kubernetes.protobuf")
    await RequestBodyStage().on_request(f)
    assert f.object is None and "field 42 of ConfigMap" in f.object_error


async def test_reads_are_left_alone() -> None:
    f = flow("GET", "/api/v1/namespaces/a/configmaps", b"{}", "application/json")
    await RequestBodyStage().on_request(f)
    assert f.object is None and not f.object_error
