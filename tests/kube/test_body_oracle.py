"""Property, judged by the real kube-apiserver: for every JSON or YAML body kubegate accepts, the value it
decodes (what the recording shows and policy reads when no dry run is needed) is the one the cluster
decodes, read back from a dry-run create of a custom resource that keeps any fields (so no schema hides a
difference)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.kube.body import AmbiguousBody, parse_body, parse_json
from tests.conftest import World

pytestmark = pytest.mark.e2e

GROUP = "oracle.kubegate.dev"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"things.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                },
            }
        ],
    },
}
# Plain YAML scalars on which YAML 1.1 readers and go-yaml v2 are known to differ, and ordinary ones.
PLAIN = [
    "y",
    "n",
    "yes",
    "No",
    "on",
    "OFF",
    "true",
    "~",
    "null",
    "0o17",
    "012",
    "08",
    "0x1F",
    "0b101",
    "1e3",
    "1.5e3",
    "1_000",
    "+12",
    "-0",
    "1:20",
    "2001-12-14",
    "2001-12-14T21:59:43Z",
    ".inf",
    ".5",
    "3.",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
    "1.0",
    "100.0",
    "1e21",
    "abc",
    "a b",
    "'quoted'",
    '"1"',
    "!!str 12",
    "0.1",
    "-.5",
]
JSON_VALUES = [
    "1",
    "1.0",
    "-0",
    "1e3",
    "1E-2",
    "9223372036854775807",
    "9223372036854775808",
    "1e400",
    '"\\u00e9"',
    '"\\ud83d\\ude00"',
    '"\\ud800"',
    '"a\\/b"',
    "true",
    "null",
    "[]",
    "{}",
    '"\\u0000"',
    "123456789.5",
]


@pytest.fixture(scope="module")
def things(world: World) -> str:
    control = world.control
    control.apply(CRD)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = control.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.{GROUP}")
        conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            return f"/apis/{GROUP}/v1/namespaces/default/things"
        time.sleep(0.1)
    raise AssertionError("the CRD was not established")


@st.composite
def yaml_body(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(["a", "b", "1", "true", "c d", "'e'"]), min_size=1, max_size=4))
    lines = [f"  {k}: {draw(st.sampled_from(PLAIN))}" for k in keys]
    if draw(st.booleans()):
        lines.append(f"  list: [{', '.join(draw(st.lists(st.sampled_from(PLAIN[:20]), max_size=3)))}]")
    return f"apiVersion: {GROUP}/v1\nkind: Thing\nmetadata:\n  name: t\nspec:\n" + "\n".join(lines) + "\n"


@st.composite
def json_body(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(["a", "b", "A", "\\u0061"]), min_size=1, max_size=4))
    fields = ",".join(f'"{k}":{draw(st.sampled_from(JSON_VALUES))}' for k in keys)
    return '{"apiVersion":"' + GROUP + '/v1","kind":"Thing","metadata":{"name":"t"},"spec":{' + fields + "}}"


ACCEPTED: list[int] = []


def same(ours: Any, theirs: Any) -> bool:
    """Equal as decoded values, where an int and a float are different values (1 is not 1.0)."""
    if isinstance(ours, float) and isinstance(theirs, float):
        return ours == theirs or (math.isnan(ours) and math.isnan(theirs))
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(same(a, b) for a, b in zip(ours, theirs, strict=True))
    return bool(ours == theirs)


@settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        yaml_body().map(lambda b: (b, "application/yaml")), json_body().map(lambda b: (b, "application/json"))
    )
)
def test_what_kubegate_accepts_it_decodes_as_the_cluster_does(world: World, things: str, body: tuple[str, str]) -> None:
    text, content_type = body
    try:
        ours = parse_body(text.encode(), content_type)
    except AmbiguousBody:
        return  # refused with a 400 before the cluster
    status, answer = world.control.request(
        "POST", f"{things}?dryRun=All", text.encode(), content_type=content_type, check=False
    )
    if status >= 400:
        return  # the cluster refuses it too: nothing it would run to disagree about
    assert ours is not None, (text, answer)
    ACCEPTED.append(1)
    theirs = parse_json(json.dumps(answer["spec"]))  # numbers as a Go client reads the cluster's answer
    assert same(ours["spec"], theirs), (text, json.dumps(ours["spec"]), json.dumps(answer["spec"]))


def test_the_property_was_not_vacuous() -> None:
    assert len(ACCEPTED) >= 40, "too few drawn bodies were accepted by both to compare anything"
