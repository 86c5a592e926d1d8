"""The credential plugin's token cache: freshness margin, damaged or unwritable entries, JWT payloads."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from kubegate.cli import tokencache


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "kubegate" / "tokens"


def test_a_stored_token_is_served_until_shortly_before_it_expires() -> None:
    tokencache.store("k", "tok", 1000.0)
    assert tokencache.load("k", now=1000.0 - tokencache.REFRESH_BEFORE) == ("tok", 1000.0)
    assert tokencache.load("k", now=1000.0 - tokencache.REFRESH_BEFORE + 1) is None
    assert tokencache.load("other", now=0) is None


@pytest.mark.parametrize(
    "content", ["", "{", "[]", '{"token": 1, "exp": 5000}', '{"token": "t"}', '{"token": "t", "exp": "5000"}']
)
def test_a_damaged_entry_is_a_miss(cache_home: Path, content: str) -> None:
    cache_home.mkdir(parents=True)
    (cache_home / "k.json").write_text(content)
    assert tokencache.load("k", now=0) is None


def test_an_unwritable_cache_is_only_slower(cache_home: Path) -> None:
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("a file where the directory should be")
    tokencache.store("k", "tok", 1000.0)
    assert tokencache.load("k", now=0) is None


def test_jwt_claims_reads_the_payload_without_verifying() -> None:
    assert tokencache.jwt_claims(jwt.encode({"exp": 5, "sub": "a"}, "k" * 32, algorithm="HS256")) == {
        "exp": 5,
        "sub": "a",
    }
    for value in ("opaque", "a.b.c", "a.W10.c", f"a.{json.dumps(1)}.c"):
        assert tokencache.jwt_claims(value) is None
