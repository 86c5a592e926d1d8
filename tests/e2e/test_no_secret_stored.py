"""No secret reaches the store: random credentials planted wherever a Kubernetes object or a command can
carry text, driven through get, list, watch, Table, apply, patch, exec and logs with every built-in mask
profile on, then searched for in the client's output and in every byte of the store (WAL included)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kubegate.masking.config import BUILTIN_PROFILES
from tests.conftest import World

pytestmark = pytest.mark.e2e

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Each draws a credential of a shape kubegate's detectors know; the random part makes it findable.
credentials = st.one_of(
    st.text(ALNUM, min_size=36, max_size=36).map(lambda s: f"ghp_{s}"),
    st.text(UPPER, min_size=16, max_size=16).map(lambda s: f"AKIA{s}"),
    st.text(ALNUM, min_size=24, max_size=24).map(lambda s: f"xoxb-{s}"),
    st.text(ALNUM, min_size=24, max_size=24).map(lambda s: f"glpat-{s}"),
)


@pytest.fixture(scope="module")
def masked_everywhere(world: World) -> Any:
    world.set_policies(
        "all-masks",
        [
            {
                "name": "leak-testers-see-everything-masked",
                "subjects": {"groups": ["leak-testers"]},
                "action": "allow",
                "mask": list(BUILTIN_PROFILES),
            }
        ],
    )
    yield world.kubeconfig("leaky", ("developers", "leak-testers"))
    world.clear_policies("all-masks")


def store_bytes(world: World) -> bytes:
    """Every byte of the store's files, read by another process: closing a file the gateway's SQLite has open
    would drop this process's POSIX locks on it, and another process could then delete the live WAL."""
    assert world.env.config is not None
    db = Path(world.env.config.store_url.removeprefix("sqlite:///"))
    files = [str(p) for p in db.parent.glob(db.name + "*")]
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout


def manifests(ns: str, s: list[str]) -> str:
    b64 = base64.b64encode(s[0].encode()).decode()
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": ns},
            "data": {"key": b64},
            "stringData": {"other": s[1]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns, "annotations": {"owner-note": f"rotate {s[2]} monthly"}},
            "data": {"db_password": s[3], "readme": f"use token {s[4]} for the API"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": ns, "labels": {"build": s[5]}},
            "spec": {
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "api",
                                "image": "busybox",
                                "args": [f"--token={s[6]}"],
                                "env": [
                                    {"name": "API_TOKEN", "value": s[7]},
                                    {"name": "NOTES", "value": f"key {s[8]}"},
                                ],
                            }
                        ]
                    },
                },
            },
        },
    ]
    return yaml.safe_dump_all(docs)


@settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.generate],  # e2e: no shrinking, a failure says enough
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(secrets=st.lists(credentials, min_size=12, max_size=12, unique=True))
def test_planted_credentials_are_found_nowhere(world: World, masked_everywhere: Path, secrets: list[str]) -> None:
    cfg = masked_everywhere
    ns = world.namespace("leak")
    world.pod(ns)
    out: list[str] = []

    def run(*args: str, input: str | None = None, check: bool = True) -> None:
        proc = world.kubectl("-n", ns, *args, kubeconfig=cfg, input=input, check=check)
        out.extend((proc.stdout, proc.stderr))

    run("apply", "-f", "-", input=manifests(ns, secrets))
    run("apply", "-f", "-", input=manifests(ns, secrets))  # again: the last-applied annotation is read back
    for what in ("secret/creds", "configmap/settings", "deployment/api"):
        run("get", what, "-o", "yaml")
    run("get", "secrets,configmaps,deployments", "-o", "json")
    run("get", "configmaps", "--show-labels")
    token = world.token("leaky", ("developers", "leak-testers"))
    _, watched = world.raw(
        f"/apis/apps/v1/namespaces/{ns}/deployments?watch=1&timeoutSeconds=1", {"Authorization": f"Bearer {token}"}
    )
    out.append(json.dumps(watched) if not isinstance(watched, str) else watched)
    run(
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        json.dumps({"metadata": {"annotations": {"patched": f"now {secrets[9]}"}}}),
    )
    run("get", f"configmap/{secrets[10]}", check=False)  # a Status whose message repeats the name
    world.env.cluster.append_log(ns, "app", f"connecting with {secrets[11]}\n")
    run("logs", "app")
    run("exec", "app", "--", "echo", f"token={secrets[9]}")
    world.settle()
    stored = store_bytes(world)
    assert stored and f"{ns}".encode() in stored, "the store holds these requests: the search means something"
    for secret in secrets:
        encoded = base64.b64encode(secret.encode()).decode()
        for text in out:
            assert secret not in text and encoded not in text, (secret, text)
        assert secret.encode() not in stored and encoded.encode() not in stored, secret
    # and the cluster stores what was applied, so masking hid real values rather than dropping them
    cm = world.control.get(f"/api/v1/namespaces/{ns}/configmaps/settings")
    assert cm["data"]["db_password"] == secrets[3]
