"""The SecretList fast path masks exactly what the general path masks, keeps every other byte,
and steps aside (None) for anything it does not model."""

from __future__ import annotations

import copy
import string
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.masker import Masker, mask_document
from kubegate.masking.plan import Plan
from kubegate.masking.secretlist import applies, mask_secret_list
from tests.masking.builders import ALL, LAST_APPLIED, b64, masker, secret, secret_list

MASKER = masker()
# A user detector has no trigger, so plans with it cannot prove a field untouched from its bytes.
USER = masker(detectors=[{"name": "ticket", "pattern": "tkt-[0-9]{4}"}])
PLANS = [
    ("secret-values",),
    ("last-applied",),
    ("serviceaccount-tokens",),
    ("serviceaccount-tokens", "last-applied"),
    ALL,
    ("env-credentials", "configmap-keys"),
    ("credentials-in-text",),
    ("serviceaccount-tokens", "credentials-in-text"),
]
SA_TOKEN = "kubernetes.io/service-account-token"
# What the text detectors react to, in the metadata fields they read: a name, a label value.
CREDENTIALS = [
    "xoxb-1234567890ab",
    "AKIAABCDEFGHIJKLMNOP",
    "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8",
    "token=abc123",
    "https://u:pw@host",
    "tkt-1234",
    "default-token-x7k2p",
    "Secret",
    MARKER,
    f"was {MARKER}",
]

keys = st.text(string.ascii_letters + string.digits + "-._", min_size=1, max_size=12)
texts = st.text(max_size=30)
# Mostly plain names, sometimes one the detectors react to (or that only holds a trigger).
names = st.one_of(st.text(string.ascii_lowercase, min_size=1, max_size=8), st.sampled_from(CREDENTIALS))
values = st.one_of(texts, st.sampled_from(CREDENTIALS))
label_keys = st.one_of(keys, st.sampled_from(["secret-type", "token", "api_key", LAST_APPLIED]))
# Base64 can spell an AWS key id; a value may be null (which masking leaves as it is).
data_values = st.one_of(
    st.binary(max_size=40).map(b64), st.sampled_from(["aAKIAABCDEFGHIJKLMNOPaaa", MARKER_B64]), st.none()
)
data_maps = st.dictionaries(keys, data_values, max_size=4)
string_maps = st.dictionaries(keys, st.one_of(values, st.none()), max_size=3)


@st.composite
def last_applied(draw: st.DrawFn, name: str) -> str:
    """Mostly what kubectl writes; sometimes another kind, broken JSON, or JSON that is not an object."""
    shape = draw(st.sampled_from(["secret", "secret", "no-kind", "configmap", "broken", "list"]))
    if shape == "broken":
        return '{"kind": "Secret", "data": {"a": '
    if shape == "list":
        return "[1, 2]"
    doc: dict[str, Any] = {"apiVersion": "v1", "metadata": {"name": name}}
    if shape != "no-kind":
        doc["kind"] = "Secret" if shape == "secret" else "ConfigMap"
    doc["data"] = draw(data_maps) if shape != "configmap" else draw(string_maps)
    if draw(st.booleans()):
        doc["stringData"] = draw(string_maps)
    doc["type"] = draw(st.sampled_from(["Opaque", SA_TOKEN]))
    return orjson.dumps(doc).decode() + draw(st.sampled_from(["\n", ""]))


@st.composite
def secrets(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(names)
    item: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": draw(st.sampled_from(["pr-1", "token-ns"])),
            "uid": "u-1",
            "resourceVersion": "12",
            "labels": {"app": name, **draw(st.dictionaries(label_keys, values, max_size=2))},
            "creationTimestamp": "2026-01-02T03:04:05Z",
        }
    }
    if draw(st.booleans()):
        item["metadata"]["generateName"] = draw(names)
    if draw(st.booleans()):
        owner = {"apiVersion": "v1", "kind": "ServiceAccount", "name": draw(names), "uid": "u-2"}
        item["metadata"]["ownerReferences"] = [{**owner, "controller": True}]
    if draw(st.booleans()):
        item["metadata"]["finalizers"] = draw(st.lists(values, max_size=2))
    annotations = {}
    if draw(st.booleans()):
        annotations[LAST_APPLIED] = draw(last_applied(name))
    if draw(st.booleans()):
        annotations["note"] = draw(values)
    if annotations:
        item["metadata"]["annotations"] = annotations
    if draw(st.booleans()):
        item["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:x": {}}}}]
    if draw(st.booleans()):
        item["immutable"] = draw(st.booleans())
    data = draw(st.one_of(data_maps, st.none()))
    if data is not None or draw(st.booleans()):
        item["data"] = data
    if draw(st.booleans()):
        item["stringData"] = draw(string_maps)
    if draw(st.booleans()):
        token = {"token": b64(draw(texts))}
        item["data"] = {**(item.get("data") or {}), **token}
        item["type"] = SA_TOKEN
    else:
        item["type"] = draw(st.sampled_from(["Opaque", "kubernetes.io/tls", SA_TOKEN]))
    if draw(st.booleans()):
        item = {"kind": "Secret", "apiVersion": draw(st.sampled_from(["v1", "v1", "tkt-0001"])), **item}
    return item


def general(plan: Plan, doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    mask_document(plan, out, "Secret")
    return out


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(secrets(), max_size=5),
    st.sampled_from(PLANS),
    st.sampled_from([MASKER, USER]),
    st.sampled_from(["", "token-continue", "xoxb-1234567890ab"]),
)
def test_masks_exactly_what_the_general_path_masks(
    items: list[dict[str, Any]], profiles: tuple[str, ...], config: Masker, token: str
) -> None:
    doc = {"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "900"}, "items": items}
    if token:
        doc["metadata"]["continue"] = token
    body = orjson.dumps(doc)
    plan = config.plan(profiles)
    assert applies(plan, body)
    out = mask_secret_list(plan, body)
    assert out is not None
    masked, hidden = out
    assert orjson.loads(masked) == general(plan, doc)
    assert hidden == markers(masked) - markers(body)  # what the stage would count on the bytes


def markers(body: bytes) -> int:
    return body.count(MARKER.encode()) + body.count(MARKER_B64.encode())


def fast(plan: Plan, body: bytes) -> bytes:
    out = mask_secret_list(plan, body)
    assert out is not None
    return out[0]


def test_credentials_in_metadata_fields_are_masked() -> None:
    """credentials-in-text reads every string of a Secret, its name, labels and owners included, as
    the general path does; the list's own metadata is not an object's, so neither path reads it."""
    plan = MASKER.plan(ALL)
    item = {
        "metadata": {
            "name": "xoxb-1234567890ab",
            "generateName": "AKIAABCDEFGHIJKLMNOP",
            "namespace": "ns",
            "labels": {"k": "AKIAABCDEFGHIJKLMNOP", "token": "plain"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": "xoxb-1234567890ab"}],
            "finalizers": ["xoxb-1234567890ab"],
        },
        "data": {"a": "aGk="},
        "type": "Opaque",
    }
    doc = {"kind": "SecretList", "apiVersion": "v1", "metadata": {"continue": "xoxb-1234567890ab"}, "items": [item]}
    masked = orjson.loads(fast(plan, orjson.dumps(doc)))
    assert masked == general(plan, doc)
    assert b"xoxb-1234567890ab" not in orjson.dumps(masked["items"]) and b"AKIA" not in orjson.dumps(masked)
    assert masked["items"][0]["metadata"]["labels"]["token"] == "plain"


def test_a_credential_spelled_with_escapes_is_masked() -> None:
    """`\\u` and `\\/` escapes can hide a detector's trigger from a byte search: such fields are decoded."""
    body = (
        b'{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"\\u0078oxb-1234567890ab",'
        b'"labels":{"url":"https:\\/\\/u:pw@host"}},"type":"Opaque"}]}'
    )
    plan = MASKER.plan(ALL)
    masked = orjson.loads(fast(plan, body))
    assert masked == general(plan, orjson.loads(body))
    assert masked["items"][0]["metadata"]["name"] == MARKER


def test_unmasked_bytes_are_kept_as_sent() -> None:
    """Values it never decodes come back byte for byte, in kube-apiserver's field order, even in
    spellings a re-encoder would change (escapes, exponent floats, spacing inside raw values)."""
    body = (
        b'{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"a\\u003cb"},'
        b'"items":[{"metadata":{"name":"db","namespace":"pr-1","labels":{"x":"\\u0026y"},'
        b'"managedFields":[{"manager":"kubectl","time":"2026-01-01T00:00:00Z","fieldsV1":{"f:data":{}}}]},'
        b'"immutable":true,"data":{"password":"aHVudGVyMg=="},"type":"Opaque"}]}'
    )
    masked = fast(MASKER.plan(("secret-values",)), body)
    assert masked == body.replace(b"aHVudGVyMg==", MARKER_B64.encode())


def test_a_masked_list_keeps_keys_and_hides_values() -> None:
    doc = secret_list([secret("db", {"password": "hunter2", "user": "admin"}, last_applied=True)])
    masked = orjson.loads(fast(MASKER.plan(ALL), orjson.dumps(doc)))
    item = masked["items"][0]
    assert item["data"] == {"password": MARKER_B64, "user": MARKER_B64}
    applied = orjson.loads(item["metadata"]["annotations"][LAST_APPLIED])
    assert applied["data"] == {"password": MARKER_B64, "user": MARKER_B64}
    assert b"hunter2" not in orjson.dumps(masked) and b64("hunter2").encode() not in orjson.dumps(masked)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["items"][0].update(spec={}), id="unknown item field"),
        pytest.param(lambda d: d["items"][0]["metadata"].update(clusterName="x"), id="unknown metadata field"),
        pytest.param(lambda d: d["items"][0].update(kind="ConfigMap"), id="item of another kind"),
        pytest.param(lambda d: d["items"][0]["metadata"].update(annotations={"a": 1}), id="annotation not a string"),
        pytest.param(lambda d: d["items"][0].update(data=["x"]), id="data not a map"),
        pytest.param(lambda d: d.update(extra=True), id="unknown list field"),
    ],
)
def test_steps_aside_for_what_it_does_not_model(change: Any) -> None:
    doc = secret_list([secret("db", {"password": "hunter2"})])
    change(doc)
    assert mask_secret_list(MASKER.plan(ALL), orjson.dumps(doc)) is None


def test_invalid_json_is_left_to_the_general_path() -> None:
    assert mask_secret_list(MASKER.plan(ALL), b'{"kind":"SecretList","items":[{"data":') is None


def test_only_secret_lists_and_plans_without_secret_field_rules_apply() -> None:
    plan = MASKER.plan(ALL)
    assert not applies(plan, orjson.dumps({"kind": "ConfigMapList", "items": []}))
    assert not applies(plan, orjson.dumps({"items": [], "kind": "SecretList"}))
    ruled = masker(field_rules=[{"name": "secret-labels", "kind": "Secret", "path": "metadata.labels.owner"}])
    assert not applies(ruled.plan(("secret-values", "secret-labels")), b'{"kind":"SecretList","items":[]}')
    assert applies(ruled.plan(("secret-values",)), b'{"kind":"SecretList","items":[]}')


def test_values_no_field_profile_hides_are_scanned_as_text() -> None:
    """Without secret-values, data and stringData values are strings like any other for
    credentials-in-text (base64 can spell an AWS key id)."""
    plan = MASKER.plan(("credentials-in-text",))
    item = {"metadata": {"name": "db"}, "data": {"a": "aAKIAABCDEFGHIJKLMNOPaaa"}, "stringData": {"p": "token=abc123"}}
    doc = {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": [item]}
    masked = orjson.loads(fast(plan, orjson.dumps(doc)))
    assert masked == general(plan, doc)
    assert masked["items"][0]["data"] == {"a": f"a{MARKER}aaa"}


def test_null_values_stay_null() -> None:
    doc = secret_list([{"metadata": {"name": "db"}, "data": {"a": None, "b": "aGk="}, "stringData": {"c": None}}])
    plan = MASKER.plan(ALL)
    masked = orjson.loads(fast(plan, orjson.dumps(doc)))
    assert masked == general(plan, doc)
    assert masked["items"][0]["data"] == {"a": None, "b": MARKER_B64}
