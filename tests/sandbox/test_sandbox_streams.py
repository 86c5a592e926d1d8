"""Streams through the real kubectl: get -w, logs, logs -f, and watch resourceVersion replay and expiry."""

from __future__ import annotations

import json

from kubegate.sandbox.cluster import SandboxCluster
from tests.sandbox.sandbox_kubectl import Kubectl


def _pod(name: str, log: str = "") -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": "", "labels": {"app": name}}
    if log:
        meta["annotations"] = {"sandbox.kubegate.dev/log": log}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


def _in(namespace: str, obj: dict[str, object]) -> dict[str, object]:
    obj["metadata"]["namespace"] = namespace  # type: ignore[index]
    return obj


def test_get_watch_sees_a_later_create(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    sandbox.seed([_in(namespace, _pod("first"))])
    watch = admin.stream("get", "pods", "-n", namespace, "-w")
    try:
        assert watch.next_line().split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert watch.next_line().split()[:3] == ["first", "1/1", "Running"]
        admin.run("run", "second", "--image=busybox", "-n", namespace)
        assert watch.line_containing("second").split()[:3] == ["second", "1/1", "Running"]
    finally:
        watch.stop()


def test_logs_tail_and_timestamps(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    sandbox.seed([_in(namespace, _pod("talker", "booting\nready"))])
    sandbox.append_log(namespace, "talker", "serving\n")
    assert admin.run("logs", "talker", "-n", namespace).stdout == "booting\nready\nserving\n"
    assert admin.run("logs", "talker", "-n", namespace, "--tail=1").stdout == "serving\n"
    stamped = admin.run("logs", "talker", "-n", namespace, "--tail=1", "--timestamps").stdout
    assert stamped.endswith("Z serving\n") and stamped[:4].isdigit()


def test_logs_follow_streams_appended_lines(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    sandbox.seed([_in(namespace, _pod("follower", "started"))])
    follow = admin.stream("logs", "-f", "follower", "-n", namespace)
    try:
        assert follow.next_line() == "started"
        sandbox.append_log(namespace, "follower", "request 1 handled")
        assert follow.next_line() == "request 1 handled"
    finally:
        follow.stop()


def test_logs_follow_ends_when_the_pod_is_deleted(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    sandbox.seed([_in(namespace, _pod("shortlived", "hello"))])
    follow = admin.stream("logs", "-f", "shortlived", "-n", namespace)
    assert follow.next_line() == "hello"
    admin.run("delete", "pod", "shortlived", "-n", namespace)
    assert follow.proc.wait(timeout=30) == 0


def _raw_watch(admin: Kubectl, path: str) -> list[dict[str, object]]:
    out = admin.run("get", "--raw", path).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_watch_replays_from_a_resource_version(admin: Kubectl, namespace: str) -> None:
    admin.run("create", "configmap", "before", "-n", namespace)
    listed = json.loads(admin.run("get", "--raw", f"/api/v1/namespaces/{namespace}/configmaps").stdout)
    rv = listed["metadata"]["resourceVersion"]
    admin.run("create", "configmap", "after", "-n", namespace)
    admin.run("label", "configmap", "after", "-n", namespace, "x=y")
    admin.run("delete", "configmap", "before", "-n", namespace)
    events = _raw_watch(
        admin, f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
    )
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]  # type: ignore[index]
    assert seen == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]


def test_watch_from_an_expired_resource_version_gets_410(
    admin: Kubectl, sandbox: SandboxCluster, namespace: str
) -> None:
    old = sandbox.store.rv
    churn = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": namespace}}
        for i in range((sandbox.store.history.maxlen or 0) + 1)
    ]
    sandbox.seed(churn)
    events = _raw_watch(
        admin, f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={old}&timeoutSeconds=5"
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["code"] == 410 and status["reason"] == "Expired"  # type: ignore[index]
    assert status["message"].startswith(f"too old resource version: {old} (")  # type: ignore[index]
