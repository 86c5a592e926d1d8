"""Policy files: both layouts, precise errors with file and field, names unique across sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubegate.configbase import ConfigError
from kubegate.policy.loader import load_rules, policy_files, read_policy_file
from tests.policy.builders import rule


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_mapping_and_list_layouts(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "policies:\n  - {name: a, action: allow}\n")
    b = write(tmp_path / "b.yml", "- {name: b, action: deny}\n- {name: c, action: allow}\n")
    write(tmp_path / "notes.txt", "ignored")
    write(tmp_path / ".#a.yaml", "editor temp file: ignored")
    write(tmp_path / "empty.yaml", "")
    assert [r.name for r in read_policy_file(a)] == ["a"]
    files = policy_files([tmp_path])
    assert [p.name for p in files] == ["a.yaml", "b.yml", "empty.yaml"]
    loaded = load_rules([rule("from-config")], files, config_source="kubegate.yaml")
    assert [(r.rule.name, r.source) for r in loaded] == [
        ("from-config", "kubegate.yaml policies[0]"),
        ("a", f"{a} policies[0]"),
        ("b", f"{b} policies[0]"),
        ("c", f"{b} policies[1]"),
    ]


def test_errors_name_file_rule_and_field_for_every_file(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        "policies:\n"
        + "".join(f"  - {{name: r{i}, action: allow}}\n" for i in range(3))
        + "  - {name: r3, action: allow, match: {verbs: [get, explode]}}\n",
    )
    scalar = write(tmp_path / "scalar.yaml", "just a string\n")
    broken = write(tmp_path / "broken.yaml", "policies: [\n")
    with pytest.raises(ConfigError) as exc:
        load_rules([], [bad, scalar, broken])
    lines = str(exc.value).splitlines()
    assert lines[0].startswith(f"{bad}: policies[3].match.verbs: 'explode' is not a request verb")
    assert lines[1].startswith(f"{scalar}: (top level): must be a mapping {{policies: [...]}} or a list")
    assert lines[2].startswith(f"{broken}:2:1: not valid YAML")


def test_names_are_unique_across_config_and_files(tmp_path: Path) -> None:
    f = write(
        tmp_path / "p.yaml", "- {name: x, action: allow}\n- {name: y, action: allow}\n- {name: y, action: deny}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_rules([rule("x")], [f], config_source="kubegate.yaml")
    assert str(exc.value).splitlines() == [
        f"{f}: policies[0].name: rule name 'x' is already used by kubegate.yaml policies[0]; rule names must be unique",
        f"{f}: policies[2].name: rule name 'y' is already used by {f} policies[1]; rule names must be unique",
    ]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the policy folder"):
        policy_files([tmp_path / "nope"])
