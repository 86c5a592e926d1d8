"""Restoring masked values in writes: only the same field of the same object, never anywhere else."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubegate.masking.fields import LAST_APPLIED
from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.writes import MaskedWrite, Restorer, differing_paths, exposed, has_marker, markers, pointer


def secret(data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": data}


def masked_secret(data: dict[str, str]) -> dict[str, Any]:
    return secret({k: MARKER_B64 for k in data})


def test_markers_are_found_in_every_spelling_go_would_decode() -> None:
    assert has_marker(MARKER) and has_marker(f"token {MARKER}") and has_marker(MARKER_B64)
    assert has_marker(MARKER_B64[:12] + "\n" + MARKER_B64[12:]), "Go's base64 decoding skips line breaks"
    assert has_marker(base64.b64encode(b"ab" + MARKER.encode()).decode()), "a marker inside a decoded value"
    assert has_marker(json.dumps({"data": {"password": MARKER_B64}}))
    assert not has_marker("masked by kubegate") and not has_marker(base64.b64encode(b"x" * 40).decode())


def test_a_document_gets_the_stored_values_back_where_it_carries_their_markers() -> None:
    current = secret({"password": "cmVhbA==", "user": "YXBw"})
    sent = masked_secret(current["data"]) | {"metadata": {"name": "db", "labels": {"a": "b"}}}
    restorer = Restorer(current, masked_secret(current["data"]))
    out = restorer.document(sent)
    assert out["data"] == {"password": "cmVhbA==", "user": "YXBw"} and out["metadata"]["labels"] == {"a": "b"}
    assert sent["data"]["password"] == MARKER_B64, "the body as sent (the recording) keeps its markers"
    assert sorted(restorer.restored) == ["YXBw", "cmVhbA=="]


@pytest.mark.parametrize("change", ["new key", "renamed item", "moved in a list", "edited around"])
def test_a_marker_anywhere_else_is_refused(change: str) -> None:
    current = {
        "kind": "Pod",
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "API_TOKEN", "value": "ghp_real"},
                        {"name": "NOTE", "value": "token ghp_real2 here"},
                    ],
                    "args": ["--token=ghp_real3", "x"],
                }
            ]
        },
    }
    masked = {
        "kind": "Pod",
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "API_TOKEN", "value": MARKER}, {"name": "NOTE", "value": f"token {MARKER} here"}],
                    "args": [f"--token={MARKER}", "x"],
                }
            ]
        },
    }
    sent = copy.deepcopy(masked)
    container = sent["spec"]["containers"][0]
    if change == "new key":
        container["env"].append({"name": "COPY", "value": MARKER})
    elif change == "renamed item":
        container["env"][0]["name"] = "LEAKED"
    elif change == "moved in a list":
        container["args"].reverse()
    else:
        container["env"][1]["value"] = f"token {MARKER} there"
    with pytest.raises(MaskedWrite) as caught:
        Restorer(current, masked).document(sent)
    assert "spec.containers[0]" in caught.value.field


def test_the_last_applied_annotation_is_restored_from_the_object() -> None:
    current = secret({"password": "cmVhbA=="})
    masked = masked_secret(current["data"])
    applied = json.dumps(masked | {"metadata": {"name": "db", "labels": {"new": "1"}}}) + "\n"
    sent = {"metadata": {"annotations": {LAST_APPLIED: applied}}, "data": {"password": MARKER_B64}}
    out = Restorer(current, masked).document(sent)
    restored = out["metadata"]["annotations"][LAST_APPLIED]
    assert json.loads(restored)["data"]["password"] == "cmVhbA==" and restored.endswith("\n")


def test_a_json_patch_restores_by_pointer_and_refuses_what_reads_or_shifts() -> None:
    current = secret({"password": "cmVhbA==", "a/b": "c2xhc2g="})
    masked = masked_secret(current["data"])
    hidden = set(differing_paths(current, masked))
    assert hidden == {("data", "password"), ("data", "a/b")}
    restorer = Restorer(current, masked)
    ops = [
        {"op": "replace", "path": "/data/a~1b", "value": MARKER_B64},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ]
    assert restorer.json_patch(ops, hidden)[0]["value"] == "c2xhc2g="
    for reading in (
        {"op": "copy", "from": "/data/password", "path": "/metadata/annotations/x"},
        {"op": "move", "from": "/data", "path": "/metadata/annotations"},
        {"op": "test", "path": "/data/password", "value": "guess"},
    ):
        with pytest.raises(MaskedWrite, match="reads a value your masks hide"):
            restorer.json_patch([reading], hidden)
    shifting = [
        {"op": "replace", "path": "/data", "value": {"password": "bmV3"}},
        {"op": "replace", "path": "/data/password", "value": MARKER_B64},
    ]
    with pytest.raises(MaskedWrite, match="separate patch"):
        restorer.json_patch(shifting, hidden)
    assert pointer("/a~1b/0/~0c") == ("a/b", 0, "~c") and pointer("no-slash") is None


def test_a_restored_value_shown_unmasked_after_the_write_is_exposed() -> None:
    before = {"data": {"password": MARKER_B64}}
    after_hidden = {"data": {"password": MARKER_B64}}
    after_shown = {"data": {"password": MARKER_B64}, "metadata": {"annotations": {"x": "cmVhbA=="}}}
    assert exposed(["cmVhbA=="], before, after_hidden) is None
    assert exposed(["cmVhbA=="], before, after_shown) == "cmVhbA=="
    assert exposed(["cmVhbA=="], after_shown, after_shown) is None, "already shown before: nothing new"


keys = st.text(alphabet="abcdefgh._-", min_size=1, max_size=6)
values = st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode())


@settings(max_examples=300, deadline=None)
@given(
    current=st.dictionaries(keys, values, min_size=1, max_size=5),
    sent=st.dictionaries(keys, st.one_of(st.just(MARKER_B64), values), max_size=6),
)
def test_a_value_only_ever_returns_to_its_own_key(current: dict[str, str], sent: dict[str, str]) -> None:
    """Whatever keys and markers a write carries, a stored value comes back only at the key it came from;
    everything the caller wrote itself is left as it was; and a marker with no stored value is refused."""
    restorer = Restorer(secret(current), masked_secret(current))
    try:
        out = restorer.document(secret(sent))["data"]
    except MaskedWrite as exc:
        assert any(v == MARKER_B64 and k not in current for k, v in sent.items()), exc
        return
    for key, value in sent.items():
        assert out[key] == (current[key] if value == MARKER_B64 else value)
    assert not list(markers(out))
