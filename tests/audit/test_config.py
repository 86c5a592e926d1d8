"""A bad `audit:` section names the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubegate.config import load_config
from kubegate.configbase import ConfigError


def problems(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kubegate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audit: {anchors: {s3: {bucket: b}}}", "audit: anchors need signing.key_file"),
        ("audit: {checkpoint_interval: soon}", "audit.checkpoint_interval: 'soon' is not a duration"),
        ("audit: {checkpoint_interval: 0s}", "audit.checkpoint_interval: must be longer than zero"),
        (
            "audit: {anchors: {webhook: {url: ftp://x}}, signing: {key_file: k.pem}}",
            "audit.anchors.webhook.url: must be an",
        ),
        (
            "audit: {anchors: {webhook: {url: 'https://r/x', read_url: 'https://r/x/1'}}, signing: {key_file: k}}",
            "audit.anchors.webhook.read_url: must name the checkpoint with {number}",
        ),
        (
            "audit: {anchors: {s3: {bucket: b, object_lock_mode: NONE}}, signing: {key_file: k.pem}}",
            "audit.anchors.s3.object_lock_mode",
        ),
        ("audit: {export: {sinks: [{name: a, type: file}]}}", "audit.export.sinks[0]: a file sink needs path"),
        ("audit: {export: {sinks: [{name: a, type: webhook}]}}", "audit.export.sinks[0]: a webhook sink needs url"),
        ("audit: {export: {sinks: [{name: a, type: s3}]}}", "audit.export.sinks[0]: a s3 sink needs bucket"),
        (
            "audit: {export: {sinks: [{name: a, type: stdout}, {name: a, type: stdout}]}}",
            "audit.export: sink names must be unique: a",
        ),
        ("audit: {export: {sinks: [{name: Bad_Name, type: stdout}]}}", "audit.export.sinks[0].name"),
        ("audit: {access_log: {format: xml}}", "audit.access_log.format"),
    ],
)
def test_bad_audit_config_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        "audit: {signing: {key_file: keys/k.pem, trusted_keys: [keys/k.pem.pub]},\n"
        "        export: {sinks: [{name: f, type: file, path: out/audit.jsonl}]}}\n"
    )
    audit = load_config(path).audit
    assert audit.signing.key_file == tmp_path / "keys" / "k.pem"
    assert audit.signing.trusted_keys == [tmp_path / "keys" / "k.pem.pub"]
    assert audit.export.sinks[0].path == tmp_path / "out" / "audit.jsonl"
