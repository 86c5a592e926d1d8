"""Accept rewriting and response classification."""

from __future__ import annotations

import pytest

from kubegate.masking.negotiation import classify, json_only_accept

KUBECTL_TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            KUBECTL_TABLE,
            "application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1beta1;"
            "g=meta.k8s.io, application/json",
        ),
        ("application/vnd.kubernetes.protobuf, application/json", "application/json"),
        (
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ),
        (
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/cbor",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        ),
        ("application/vnd.kubernetes.protobuf", "application/json"),
        ("application/cbor", "application/json"),
        ("application/yaml", "application/json"),
        ("*/*", "application/json"),
        ("application/json, */*", "application/json"),
        ("", "application/json"),
    ],
)
def test_only_json_is_asked_for(accept: str, expected: str) -> None:
    assert json_only_accept(accept) == expected


@pytest.mark.parametrize(
    ("content_type", "encoding", "length", "kind"),
    [
        ("application/json", "", None, "json"),
        ("application/json;stream=watch", "", None, "json"),
        ("application/merge-patch+json", "", None, "json"),
        ("application/json", "identity", None, "json"),
        ("application/json", "gzip", None, "unmaskable"),
        ("application/vnd.kubernetes.protobuf", "", None, "unmaskable"),
        ("application/vnd.kubernetes.protobuf;stream=watch", "", None, "unmaskable"),
        ("application/cbor", "", None, "unmaskable"),
        ("application/yaml", "", None, "unmaskable"),
        ("text/plain; charset=utf-8", "", None, "text"),
        ("", "", "0", "empty"),
        ("", "", None, "unmaskable"),
    ],
)
def test_classify(content_type: str, encoding: str, length: str | None, kind: str) -> None:
    assert classify(content_type, encoding, length) == kind
