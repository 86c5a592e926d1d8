"""Durations in kubegate.yaml are parsed once, into seconds, and a bad one names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubegate.config import load_config
from kubegate.configbase import ConfigError


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "kubegate.yaml"
    path.write_text(text)
    return load_config(path)


def test_durations_become_seconds_as_the_file_is_read(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "store: {retention: 30d}\n"
        "approvals: {grant_lifetime: 90s, default_timeout: 2h}\n"
        "connections: [{name: dev, server: 'https://x', auth: {token: t}, binding_ttl: 15m}]\n",
    )
    assert config.store.retention == 30 * 86400  # type: ignore[attr-defined]
    assert (config.approvals.grant_lifetime, config.approvals.default_timeout) == (90, 7200)  # type: ignore[attr-defined]
    assert config.connections[0].binding_ttl == 900  # type: ignore[attr-defined]
    defaults = _load(tmp_path, "{}\n")
    assert defaults.ui.session_lifetime == 8 * 3600 and defaults.audit.export.lease == 30  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("store: {retention: ten days}\n", "store.retention: 'ten days' is not a duration"),
        ("approvals: {grant_lifetime: 0s}\n", "approvals.grant_lifetime: must be longer than zero"),
        ("audit: {checkpoint_interval: true}\n", "audit.checkpoint_interval: must be a duration"),
    ],
)
def test_a_bad_duration_names_its_field(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert problem in str(caught.value)
