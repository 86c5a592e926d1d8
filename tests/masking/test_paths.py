"""Field paths for user-defined field rules."""

from __future__ import annotations

from typing import Any

import pytest

from kubegate.masking.paths import EACH, Step, apply_path, parse_path


def test_parse() -> None:
    assert parse_path("spec.template.spec.containers[*].args") == (
        Step("spec"),
        Step("template"),
        Step("spec"),
        Step("containers"),
        Step(EACH),
        Step("args"),
    )
    assert parse_path("data.*") == (Step("data"), Step("*"))
    assert parse_path("items[0][2]") == (Step("items"), Step(0), Step(2))


@pytest.mark.parametrize("bad", ["", " spec", "spec.", "a[b]", "a[*", "[*]"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_path(bad)


def test_apply_reaches_strings_in_lists_and_maps() -> None:
    obj: dict[str, Any] = {
        "spec": {
            "containers": [{"args": ["a", "b", 3]}, {"name": "no-args"}],
            "auth": {"user": "u", "nested": {"token": "t"}},
        }
    }
    assert apply_path(obj, parse_path("spec.containers[*].args"), str.upper)
    assert obj["spec"]["containers"][0]["args"] == ["A", "B", 3]
    assert apply_path(obj, parse_path("spec.auth"), lambda s: "x")
    assert obj["spec"]["auth"] == {"user": "x", "nested": {"token": "x"}}
    assert not apply_path(obj, parse_path("spec.containers[5].args"), str.upper)
    assert not apply_path(obj, parse_path("spec.missing.path"), str.upper)
    assert apply_path(obj, parse_path("spec.containers[1].*"), lambda s: s + "!")
    assert obj["spec"]["containers"][1] == {"name": "no-args!"}
