"""The masking section of kubegate.yaml: defaults, user definitions, and errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubegate.config import load_config
from kubegate.configbase import ConfigError
from kubegate.masking.config import BUILTIN_PROFILES, MaskingConfig, UnknownProfile


def test_defaults_know_the_built_in_profiles() -> None:
    config = MaskingConfig()
    assert set(BUILTIN_PROFILES) <= config.known()
    assert config.expand(["secret-values"]) == {"secret-values"}
    assert "*PASSWORD*" in config.env_name_patterns and "*_KEY" in config.env_name_patterns


def test_user_profiles_expand_to_what_they_name() -> None:
    config = MaskingConfig.model_validate(
        {
            "detectors": [{"name": "acme", "pattern": "acme_[0-9]+"}],
            "field_rules": [{"name": "args", "kind": "Deployment", "path": "spec.template.spec.containers[*].args"}],
            "profiles": {"base": ["secret-values", "acme"], "strict": ["base", "args", "jwt"]},
        }
    )
    assert config.expand(["strict"]) == {"secret-values", "acme", "args", "jwt"}
    with pytest.raises(UnknownProfile, match="missing"):
        config.expand(["strict", "missing"])


@pytest.mark.parametrize(
    ("masking", "message"),
    [
        ({"profiles": {"p": ["nope"]}}, "profile 'p' names 'nope'"),
        ({"profiles": {"a": ["b"], "b": ["a"]}}, "includes itself"),
        ({"profiles": {"secret-values": ["jwt"]}}, "already a built-in profile"),
        ({"detectors": [{"name": "jwt", "pattern": "x+"}]}, "already a built-in detector"),
        ({"detectors": [{"name": "d", "pattern": "(open"}]}, "not a valid regular expression"),
        ({"detectors": [{"name": "d", "pattern": "x*"}]}, "matches the empty string"),
        ({"field_rules": [{"name": "r", "kind": "Pod", "path": "spec..x"}]}, "segment ''"),
        ({"field_rules": [{"name": "r", "kind": "Pod", "path": "spec.containers[x]"}]}, "is not KEY"),
        ({"field_rules": [{"name": "r", "kind": "Pod", "path": "spec", "action": "hide"}]}, "replace"),
        ({"env_name_patterns": [""]}, "at least 1 character"),
        ({"surprise": True}, "Extra inputs"),
    ],
)
def test_bad_definitions_say_what_is_wrong(masking: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaskingConfig.model_validate(masking)


def test_kubegate_yaml_errors_name_the_masking_field(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text("masking:\n  field_rules:\n    - {name: r, kind: Pod, path: 'a[', action: replace}\n")
    with pytest.raises(ConfigError, match=r"kubegate.yaml: masking.field_rules\[0\].path: "):
        load_config(path)
    path.write_text("masking:\n  profiles:\n    strict: [secret-values, last-applied]\n")
    assert load_config(path).masking.expand(["strict"]) == {"secret-values", "last-applied"}
