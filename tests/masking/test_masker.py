"""Masker.mask_object per profile and per response shape."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
import pytest

from kubegate.masking.config import UnknownProfile
from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.masker import kind_for
from tests.masking.builders import (
    ALL,
    LAST_APPLIED,
    b64,
    configmap,
    event,
    masker,
    partial,
    secret,
    secret_list,
    table,
    workload,
)

M = masker()
POD_KINDS = [
    "Pod",
    "PodTemplate",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
]
ENV = {
    "DB_PASSWORD": "pw-1",
    "API_TOKEN": "tok-2",
    "AWS_SECRET_ACCESS_KEY": "sk-3",
    "SIGNING_KEY": "key-4",
    "GCP_CREDENTIALS": "cred-5",
    "LOG_LEVEL": "debug",
    "PWD": "/srv",
}


def dump(obj: Any) -> bytes:
    return orjson.dumps(obj)


def envs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("env"), list):
                found.extend(node["env"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return found


# secret-values


def test_secret_data_becomes_the_base64_marker_and_string_data_the_marker() -> None:
    obj = secret("db", {"password": "hunter2", "user": "admin"}, {"extra": "plain"})
    before = copy.deepcopy(obj)
    assert M.mask_object(obj, ["secret-values"]) is True
    assert obj["data"] == {"password": MARKER_B64, "user": MARKER_B64}
    assert base64.b64decode(obj["data"]["password"]).decode() == MARKER
    assert obj["stringData"] == {"extra": MARKER}
    assert obj["metadata"] == before["metadata"] and obj["type"] == before["type"]
    assert M.mask_object(obj, ["secret-values"]) is False


def test_masked_lengths_do_not_depend_on_the_value() -> None:
    short, long = secret("a", {"k": "x"}), secret("b", {"k": "x" * 5000})
    M.mask_object(short, ["secret-values"])
    M.mask_object(long, ["secret-values"])
    assert short["data"] == long["data"]


def test_secret_list_items_have_no_kind_and_are_masked() -> None:
    body = secret_list([secret(f"s{i}", {"password": f"pw-{i}"}) for i in range(3)])
    assert M.mask_object(body, ["secret-values"])
    assert b"pw-" not in dump(body) and all(i["data"]["password"] == MARKER_B64 for i in body["items"])


def test_v1_list_with_mixed_kinds() -> None:
    body = {
        "kind": "List",
        "apiVersion": "v1",
        "items": [secret("s", {"k": "v1-secret"}), configmap("c", {"k": "plain"})],
    }
    assert M.mask_object(body, ["secret-values"])
    assert body["items"][0]["data"]["k"] == MARKER_B64 and body["items"][1]["data"]["k"] == "plain"


def test_objects_no_profile_touches_are_left_alone() -> None:
    svc = {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}
    before = copy.deepcopy(svc)
    assert M.mask_object(svc, ALL) is False
    assert svc == before


def test_status_objects_pass() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not found", "code": 404}
    assert M.mask_object(status, ALL) is False


# last-applied


def test_last_applied_of_a_secret_becomes_the_same_json_with_masked_values() -> None:
    obj = secret("db", {"password": "hunter2"}, last_applied=True)
    assert M.mask_object(obj, ["last-applied"])
    raw = obj["metadata"]["annotations"][LAST_APPLIED]
    assert raw.endswith("\n")
    applied = orjson.loads(raw)
    assert applied["data"] == {"password": MARKER_B64}
    assert applied["metadata"] == {"name": "db", "namespace": "default"} and applied["kind"] == "Secret"
    assert obj["data"]["password"] == b64("hunter2")  # last-applied alone leaves the live field


def test_secret_values_also_masks_the_same_values_in_last_applied() -> None:
    obj = secret("db", {"password": "hunter2"}, last_applied=True)
    M.mask_object(obj, ["secret-values"])
    assert b64("hunter2").encode() not in dump(obj)


def test_unparseable_last_applied_becomes_the_marker() -> None:
    obj = secret("db", {"password": "x"})
    obj["metadata"]["annotations"] = {LAST_APPLIED: "{not json password=hunter2"}
    assert M.mask_object(obj, ["last-applied"])
    assert obj["metadata"]["annotations"][LAST_APPLIED] == MARKER


def test_last_applied_of_a_deployment_hides_env_credentials() -> None:
    dep = workload("Deployment", {"DB_PASSWORD": "pw-in-annotation"})
    applied = copy.deepcopy(dep)
    dep["metadata"]["annotations"] = {LAST_APPLIED: orjson.dumps(applied).decode()}
    assert M.mask_object(dep, ["last-applied"])
    assert "pw-in-annotation" not in dep["metadata"]["annotations"][LAST_APPLIED]
    assert envs(dep)[0]["value"] == "pw-in-annotation"


def test_last_applied_of_other_kinds_is_untouched() -> None:
    svc = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "x", "annotations": {LAST_APPLIED: '{"kind":"Service","spec":{}}'}},
    }
    assert M.mask_object(svc, ALL) is False


def test_partial_object_metadata_list_masks_last_applied_by_the_annotations_kind() -> None:
    s = partial(secret("db", {"password": "hunter2"}, last_applied=True))
    svc = {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"name": "x", "annotations": {LAST_APPLIED: '{"kind":"Service","spec":{}}'}},
    }
    body = {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "items": [{"metadata": s["metadata"]}, {"metadata": svc["metadata"]}],
    }
    assert M.mask_object(body, ["secret-values"])
    assert b64("hunter2").encode() not in dump(body)
    assert body["items"][1]["metadata"]["annotations"][LAST_APPLIED] == '{"kind":"Service","spec":{}}'


# Table


def test_table_with_include_object_metadata() -> None:
    body = table([(["db", "Opaque"], partial(secret("db", {"password": "hunter2"}, last_applied=True)))])
    assert M.mask_object(body, ["secret-values"], kind_hint="Secret")
    assert b64("hunter2").encode() not in dump(body)
    assert body["rows"][0]["cells"] == ["db", "Opaque"]


def test_table_with_include_object_object_and_cells_that_print_values() -> None:
    full = secret("db", {"password": "hunter2-long"}, kind=False)
    body = table([(["db", b64("hunter2-long")], full), (["other", "Opaque"], None)])
    assert M.mask_object(body, ["secret-values"], kind_hint="Secret")
    assert body["rows"][0]["object"]["data"]["password"] == MARKER_B64
    assert body["rows"][0]["cells"] == ["db", MARKER]
    assert body["rows"][1]["cells"] == ["other", "Opaque"]


def test_table_cells_run_through_text_detectors() -> None:
    body = table([(["job", "AKIAIOSFODNN7EXAMPLE"], None)])
    assert M.mask_object(body, ["credentials-in-text"])
    assert body["rows"][0]["cells"] == ["job", MARKER]


# watch events


def test_watch_events_of_every_type() -> None:
    s = secret("db", {"password": "hunter2"})
    bookmark = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}},
    }
    error = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"}
    for type_, obj, changes in (
        ("ADDED", s, True),
        ("MODIFIED", s, True),
        ("DELETED", s, True),
        ("BOOKMARK", bookmark, False),
        ("ERROR", error, False),
    ):
        ev = orjson.loads(event(type_, copy.deepcopy(obj)))
        assert M.mask_object(ev, ["secret-values"]) is changes
        assert b64("hunter2").encode() not in dump(ev)


def test_table_shaped_watch_event() -> None:
    ev = {"type": "ADDED", "object": table([(["db", "Opaque"], secret("db", {"k": "hunter2"}, kind=False))])}
    assert M.mask_object(ev, ["secret-values"], kind_hint="Secret")
    assert ev["object"]["rows"][0]["object"]["data"]["k"] == MARKER_B64


# env-credentials


@pytest.mark.parametrize("kind", POD_KINDS)
def test_env_credentials_in_every_pod_template(kind: str) -> None:
    obj = workload(kind, ENV)
    assert M.mask_object(obj, ["env-credentials"])
    values = {e["name"]: e.get("value") for e in envs(obj)}
    assert len(envs(obj)) == 2 * (len(ENV) + 1)
    for name in ("DB_PASSWORD", "API_TOKEN", "AWS_SECRET_ACCESS_KEY", "SIGNING_KEY", "GCP_CREDENTIALS"):
        assert values[name] == MARKER
    assert values["LOG_LEVEL"] == "debug" and values["PWD"] == "/srv" and values["FROM_REF"] is None
    assert all("valueFrom" in e for e in envs(obj) if e["name"] == "FROM_REF")


def test_env_name_patterns_are_configurable() -> None:
    custom = masker(env_name_patterns=["*_DSN", "LOG_*"])
    obj = workload("Pod", ENV | {"SENTRY_DSN": "https://k@sentry"})
    custom.mask_object(obj, ["env-credentials"])
    values = {e["name"]: e.get("value") for e in envs(obj)}
    assert values["SENTRY_DSN"] == MARKER and values["LOG_LEVEL"] == MARKER and values["DB_PASSWORD"] == "pw-1"


def test_env_values_and_args_run_through_text_detectors() -> None:
    obj = workload(
        "Deployment",
        {"CONFIG": "url=postgres://u:pw-in-url@db/x"},
        args=["--verbose", "--github-token=ghp_" + "a1B2" * 9],
    )
    assert M.mask_object(obj, ["credentials-in-text"])
    raw = dump(obj)
    assert b"pw-in-url" not in raw and b"a1B2a1B2" not in raw and b"--verbose" in raw


# configmap-keys


def test_configmap_keys_matching_patterns_are_masked() -> None:
    cm = configmap(
        "app",
        {"db_password": "pw", "tls.key": "k", "settings.yaml": "x: 1", "API-KEY": "a"},
        binary={"keystore.jks": b"\x00\x01", "logo.png": b"\x89PNG"},
    )
    assert M.mask_object(cm, ["configmap-keys"])
    assert cm["data"] == {"db_password": MARKER, "tls.key": MARKER, "settings.yaml": "x: 1", "API-KEY": MARKER}
    assert cm["binaryData"] == {"keystore.jks": MARKER_B64, "logo.png": b64(b"\x89PNG")}


def test_configmap_key_patterns_are_configurable_and_values_are_scanned() -> None:
    custom = masker(configmap_key_patterns=["*.conf"])
    cm = configmap("app", {"nginx.conf": "server {}", "app.yaml": "password: hunter2\nport: 80\n"})
    custom.mask_object(cm, ["configmap-keys", "credentials-in-text"])
    assert cm["data"] == {"nginx.conf": MARKER, "app.yaml": f"password: {MARKER}\nport: 80\n"}


# serviceaccount-tokens


def test_token_request_status_token() -> None:
    tr = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": "default"},
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
        "status": {"token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "expirationTimestamp": "2030-01-01T00:00:00Z"},
    }
    assert M.mask_object(tr, ["serviceaccount-tokens"])
    assert tr["status"] == {"token": MARKER, "expirationTimestamp": "2030-01-01T00:00:00Z"}
    assert kind_for("serviceaccounts", "token") == "TokenRequest"


def test_service_account_token_secrets_under_serviceaccount_tokens() -> None:
    sa = secret(
        "sa-token",
        {"token": "jwt-here", "ca.crt": "CA", "namespace": "default"},
        type_="kubernetes.io/service-account-token",
    )
    opaque = secret("other", {"token": "keep"})
    assert M.mask_object(sa, ["serviceaccount-tokens"])
    assert M.mask_object(opaque, ["serviceaccount-tokens"]) is False
    assert sa["data"] == {"token": MARKER_B64, "ca.crt": b64("CA"), "namespace": b64("default")}


# user-defined rules, detectors and profiles


def test_user_field_rules_detectors_and_profiles() -> None:
    custom = masker(
        detectors=[{"name": "acme-key", "pattern": "acme_[a-z0-9]{12}"}],
        field_rules=[
            {"name": "worker-args", "kind": "Deployment", "path": "spec.template.spec.containers[*].args"},
            {"name": "widget-pass", "kind": "Widget", "path": "spec.auth.password"},
            {"name": "notes", "kind": "*", "path": "metadata.annotations.notes", "action": "detect"},
        ],
        profiles={"team": ["worker-args", "widget-pass"], "strict": ["team", "secret-values", "notes"]},
    )
    dep = workload("Deployment", {}, args=["--db=secret-thing", "--port=80"])
    dep["metadata"]["annotations"] = {"notes": "key acme_abcdef123456 for x"}
    widget = {
        "kind": "Widget",
        "apiVersion": "x.io/v1",
        "metadata": {"name": "w"},
        "spec": {"auth": {"password": "w-pw", "user": "u"}},
    }
    assert custom.mask_object(dep, ["strict"]) and custom.mask_object(widget, ["strict"])
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"] == [MARKER, MARKER]
    assert dep["metadata"]["annotations"]["notes"] == f"key {MARKER} for x"
    assert widget["spec"]["auth"] == {"password": MARKER, "user": "u"}
    assert custom.text_stream(["acme-key"]).feed(b"acme_abcdef123456 \n") == MARKER.encode() + b" \n"


def test_unknown_profiles_are_refused() -> None:
    with pytest.raises(UnknownProfile, match="no-such-profile"):
        M.mask_object(secret("x", {"k": "v"}), ["no-such-profile"])


def test_no_profiles_mask_nothing() -> None:
    obj = secret("x", {"k": "v"})
    assert M.mask_object(obj, []) is False and obj["data"]["k"] == b64("v")


# request bodies for recording


def test_mask_request_body_returns_a_masked_copy() -> None:
    body = secret("db", {"password": "hunter2"}, {"p2": "also"})
    masked = M.mask_request_body(body, ["secret-values"])
    assert body["data"]["password"] == b64("hunter2")
    assert masked["data"]["password"] == MARKER_B64 and masked["stringData"]["p2"] == MARKER


def test_mask_request_body_patches() -> None:
    merge = {"data": {"password": b64("hunter2")}}
    assert M.mask_request_body(merge, ["secret-values"], kind_hint="Secret") == {"data": {"password": MARKER_B64}}
    ops = [{"op": "replace", "path": "/data/password", "value": b64("hunter2")}, {"op": "remove", "path": "/x"}]
    assert M.mask_request_body(ops, ["secret-values"], kind_hint="Secret") == [
        {"op": "replace", "path": "/data/password", "value": MARKER},
        {"op": "remove", "path": "/x"},
    ]
    svc_ops = [{"op": "add", "path": "/spec/x", "value": "y"}]
    assert M.mask_request_body(svc_ops, ["secret-values"], kind_hint=kind_for("services")) == [
        {"op": "add", "path": "/spec/x", "value": MARKER}
    ]
    assert M.mask_request_body(svc_ops, ["secret-values"], kind_hint="Service") == svc_ops
