"""CLI tests never read or write the user's own kubegate context."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "context" / "context.yaml"
    monkeypatch.setenv("KUBEGATE_CONTEXT", str(path))
    return path
