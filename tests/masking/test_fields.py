"""Which fields each profile reaches: credentials-in-text every string, configmap-keys every place a key is."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubegate.masking.config import MaskingConfig
from kubegate.masking.fields import LAST_APPLIED
from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.masker import Masker

TOKEN = "ghp_" + "a1B2" * 9
AWS = "AKIA" + "Q" * 16


def masked(obj: dict[str, Any], *profiles: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    Masker(MaskingConfig()).mask_object(out, profiles)
    return out


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "Service", "metadata": {"name": "s", "annotations": {"note": f"key {AWS}"}, "labels": {"t": TOKEN}}},
        {"kind": "Widget", "apiVersion": "acme.io/v1", "metadata": {"name": "w"}, "spec": {"deep": [{"x": TOKEN}]}},
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": f"admission webhook said {TOKEN}"},
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "args": [f"--token={TOKEN}"], "env": [{"name": "MODE", "value": f"use {AWS}"}]}
                ]
            },
        },
    ],
)
def test_credentials_in_text_reads_every_string_of_every_object(obj: dict[str, Any]) -> None:
    out = masked(obj, "credentials-in-text")
    text = json.dumps(out)
    assert TOKEN not in text and AWS not in text and MARKER in text
    assert out["kind"] == obj["kind"], "only values change"


def test_credentials_in_text_reads_the_last_applied_annotation_and_keeps_it_json() -> None:
    applied = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"note": f"token {TOKEN}"}}
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {LAST_APPLIED: json.dumps(applied)}},
        "data": {"note": f"token {TOKEN}"},
    }
    out = masked(obj, "credentials-in-text")
    inner = json.loads(out["metadata"]["annotations"][LAST_APPLIED])
    assert inner["data"]["note"] == out["data"]["note"] == f"token {MARKER}"


def test_configmap_keys_masks_the_same_keys_in_data_binary_data_and_last_applied() -> None:
    body = {
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"db_password": "hunter2", "Api-Key": "k", "plain": "ok"},
        "binaryData": {"tls.key": "aGk="},
    }
    obj = copy.deepcopy(body)
    obj["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(body)}
    out = masked(obj, "configmap-keys")
    inner = json.loads(out["metadata"]["annotations"][LAST_APPLIED])
    for doc in (out, inner):
        assert doc["data"] == {"db_password": MARKER, "Api-Key": MARKER, "plain": "ok"}
        assert doc["binaryData"] == {"tls.key": MARKER_B64}
