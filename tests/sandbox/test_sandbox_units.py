"""The sandbox's pure parts: patch semantics, field ownership, selectors, RBAC matching,
and the printers' durations."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubegate.sandbox.cluster import managedfields, patching, selectors, tables
from kubegate.sandbox.cluster.errors import ApiError, not_found
from kubegate.sandbox.cluster.kinds import find
from kubegate.sandbox.cluster.rbac import Attributes, User, rule_allows

POD: dict[str, Any] = {
    "spec": {
        "containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y:1"},
        ]
    },
    "metadata": {"finalizers": ["f1"]},
}


def test_strategic_merge_merges_keyed_lists_and_honours_directives() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "x:2",
                    "env": [{"name": "J", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "b", "$patch": "delete"},
            ]
        },
        "metadata": {"finalizers": ["f2"]},
    }
    merged = patching.strategic_merge(POD, patch)
    assert merged is not None
    containers = merged["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a"]
    assert containers[0]["image"] == "x:2"
    assert containers[0]["env"] == [{"name": "K", "value": "1"}, {"name": "J", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80, "name": "http"}]
    assert merged["metadata"]["finalizers"] == ["f1", "f2"]


def test_strategic_merge_replace_delete_and_primitive_list_directives() -> None:
    replaced = patching.strategic_merge(
        POD, {"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}
    )
    assert replaced is not None and replaced["spec"]["containers"] == [{"name": "z", "image": "z"}]
    trimmed = patching.strategic_merge(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}})
    assert trimmed is not None and trimmed["metadata"]["finalizers"] == []
    gone = patching.strategic_merge(POD, {"metadata": {"$patch": "delete"}})
    assert gone is not None and "metadata" not in gone
    service = patching.strategic_merge(
        {"spec": {"ports": [{"port": 80, "name": "a"}]}}, {"spec": {"ports": [{"port": 80, "name": "b"}, {"port": 81}]}}
    )
    assert service is not None and service["spec"]["ports"] == [{"port": 80, "name": "b"}, {"port": 81}]


def test_merge_and_json_patch() -> None:
    merged = patching.apply_patch(patching.MERGE_PATCH, {"a": {"b": 1, "c": 2}}, b'{"a": {"b": null, "d": 3}}')
    assert merged == {"a": {"c": 2, "d": 3}}
    doc = patching.apply_patch(patching.JSON_PATCH, {"a": 1}, b'[{"op":"replace","path":"/a","value":2}]')
    assert doc == {"a": 2}
    with pytest.raises(ApiError) as failed:
        patching.apply_patch(patching.JSON_PATCH, {"a": 1}, b'[{"op":"test","path":"/a","value":3}]')
    assert failed.value.code == 422


def _cm(data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": data}


def test_apply_conflicts_with_another_manager_unless_forced() -> None:
    live = managedfields.server_side_apply(None, _cm({"a": "1"}), "alpha", False, "v1", "t")
    managedfields.record_update(live, after := {**live, "data": {"a": "2"}}, "editor", "v1", "t")
    with pytest.raises(ApiError) as refused:
        managedfields.server_side_apply(after, _cm({"a": "1"}), "alpha", False, "v1", "t")
    assert refused.value.message == 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.a'
    forced = managedfields.server_side_apply(after, _cm({"a": "1"}), "alpha", True, "v1", "t")
    assert forced["data"] == {"a": "1"}
    assert [e["manager"] for e in forced["metadata"]["managedFields"]] == ["alpha"]


def test_apply_removes_fields_a_manager_stops_applying() -> None:
    live = managedfields.server_side_apply(None, _cm({"a": "1", "b": "2"}), "alpha", False, "v1", "t")
    again = managedfields.server_side_apply(live, _cm({"a": "1"}), "alpha", False, "v1", "t")
    assert again["data"] == {"a": "1"}
    assert again["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_field_sets_track_keyed_list_elements() -> None:
    fields = managedfields.encode(managedfields.field_set({"spec": {"containers": [{"name": "a", "image": "x"}]}}))
    assert fields == {"f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}, "f:name": {}}}}}
    assert managedfields.decode(fields) == managedfields.field_set(
        {"spec": {"containers": [{"name": "a", "image": "x"}]}}
    )


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app in (db,web)", True),
        ("app notin (web)", False),
        ("tier", False),
        ("!tier", True),
        ("app=web,tier", False),
        ("n>3", True),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    obj = {"metadata": {"labels": {"app": "web", "n": "5"}}}
    assert selectors.label_selector(selector)(obj) is expected


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Running"}}
    assert selectors.field_selector("pods", "status.phase=Running,metadata.name!=q")(pod)
    assert not selectors.field_selector("pods", "metadata.namespace==other")(pod)
    with pytest.raises(ApiError):
        selectors.field_selector("configmaps", "status.phase=Running")


def test_rbac_rule_matching() -> None:
    user = User("u")
    rule = {"apiGroups": [""], "resources": ["pods", "*/log"], "verbs": ["get"], "resourceNames": ["p"]}
    assert rule_allows(Attributes(user, "get", True, "", "v1", "n", "pods", "", "p"), rule)
    assert rule_allows(Attributes(user, "get", True, "", "v1", "n", "pods", "log", "p"), rule)
    assert not rule_allows(Attributes(user, "get", True, "", "v1", "n", "pods", "", "q"), rule)
    assert not rule_allows(Attributes(user, "list", True, "", "v1", "n", "pods"), rule)
    urls = {"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}
    assert rule_allows(Attributes(user, "get", False, path="/apis/apps/v1"), urls)
    assert not rule_allows(Attributes(user, "get", False, path="/metrics"), urls)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (150, "2m30s"),
        (600, "10m"),
        (4 * 3600 + 60, "4h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
    ],
)
def test_ages_print_like_kubectl(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_status_errors_serialise_as_kube_status() -> None:
    kind = find("apps", "v1", "deployments")
    assert kind is not None
    status = not_found(kind, "web").status()
    assert orjson.loads(orjson.dumps(status)) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
