"""DevIssuer: what it serves, what it mints, and that its keys survive a restart."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from kubegate.sandbox.issuer import DevIssuer, _is_loopback


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[DevIssuer]:
    async with DevIssuer(tmp_path / "state", audience="demo") as dev:
        yield dev


async def fetch(issuer: DevIssuer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(issuer.ca_file))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{issuer.url}{path}", ssl=context, **kwargs) as resp,
    ):
        return resp.status, await resp.json()


def verify(issuer: DevIssuer, jwks: dict[str, Any], token: str, audience: str = "demo") -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    return jwt.decode(token, key=key, algorithms=["RS256"], audience=audience, issuer=issuer.url)


async def test_discovery_and_jwks_over_tls(issuer: DevIssuer) -> None:
    assert issuer.url.startswith("https://127.0.0.1:")
    status, doc = await fetch(issuer, "GET", "/.well-known/openid-configuration")
    assert status == 200
    assert doc["issuer"] == issuer.url and doc["jwks_uri"] == f"{issuer.url}/jwks"
    status, jwks = await fetch(issuer, "GET", "/jwks")
    assert [k["kid"] for k in jwks["keys"]] == [issuer.current_kid]
    assert jwks["keys"][0]["alg"] == "RS256" and "d" not in jwks["keys"][0]


async def test_mint_sets_standard_claims_and_overrides(issuer: DevIssuer) -> None:
    _, jwks = await fetch(issuer, "GET", "/jwks")
    claims = verify(issuer, jwks, issuer.mint("alice", groups=["dev"], claims={"repository": "acme/app"}, lifetime=120))
    assert claims["sub"] == "alice" and claims["groups"] == ["dev"] and claims["repository"] == "acme/app"
    assert claims["exp"] - claims["iat"] == 120 and claims["nbf"] == claims["iat"]
    assert "exp" not in jwt.decode(issuer.mint("bob", claims={"exp": None}), options={"verify_signature": False})


async def test_token_endpoint_json(issuer: DevIssuer) -> None:
    status, body = await fetch(
        issuer,
        "POST",
        "/token",
        json={"sub": "ci", "groups": ["ci-agents"], "claims": {"run_id": "7"}, "lifetime": "10m", "audience": "x"},
    )
    assert status == 200
    _, jwks = await fetch(issuer, "GET", "/jwks")
    claims = verify(issuer, jwks, body["token"], audience="x")
    assert (claims["sub"], claims["groups"], claims["run_id"]) == ("ci", ["ci-agents"], "7")
    assert body["expires_at"] == claims["exp"] and claims["exp"] - claims["iat"] == 600


async def test_token_endpoint_form(issuer: DevIssuer) -> None:
    form = aiohttp.FormData(
        [("sub", "alice"), ("groups", "a"), ("groups", "b"), ("claim", "actor=octocat"), ("lifetime", "60")]
    )
    status, body = await fetch(issuer, "POST", "/token", data=form)
    assert status == 200
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert (claims["groups"], claims["actor"], claims["aud"]) == (["a", "b"], "octocat", "demo")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "sub is required"),
        ({"sub": "a", "lifetime": "forever"}, "is not a duration"),
        ({"sub": "a", "lifetime": 10**9}, "lifetime must be between"),
        ({"sub": "a", "groups": [1]}, "groups must be a list of strings"),
    ],
)
async def test_token_endpoint_rejects_bad_requests(issuer: DevIssuer, body: dict[str, Any], problem: str) -> None:
    status, answer = await fetch(issuer, "POST", "/token", json=body)
    assert status == 400 and problem in answer["error"]


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("192.168.1.1", False),
        (None, False),
        ("x", False),
    ],
)
def test_token_endpoint_serves_loopback_only(remote: str | None, loopback: bool) -> None:
    assert _is_loopback(remote) is loopback


async def test_keys_persist_across_restarts(tmp_path: Path) -> None:
    async with DevIssuer(tmp_path / "state") as first:
        token = first.mint("alice")
        kid = first.current_kid
    async with DevIssuer(tmp_path / "state", port=0) as second:
        assert second.current_kid == kid
        _, jwks = await fetch(second, "GET", "/jwks")
        claims = jwt.decode(
            token,
            key=jwt.PyJWKSet.from_dict(jwks)[kid],
            algorithms=["RS256"],
            audience="kubegate",
            options={"verify_iss": False},
        )
        assert claims["sub"] == "alice"


async def test_rotate_and_retire(issuer: DevIssuer) -> None:
    old = issuer.current_kid
    new = issuer.rotate()
    assert new != old and issuer.current_kid == new
    assert jwt.get_unverified_header(issuer.mint("a"))["kid"] == new
    _, jwks = await fetch(issuer, "GET", "/jwks")
    assert {k["kid"] for k in jwks["keys"]} == {old, new}
    with pytest.raises(ValueError, match="rotate"):
        issuer.retire(new)
    issuer.retire(old)
    _, jwks = await fetch(issuer, "GET", "/jwks")
    assert [k["kid"] for k in jwks["keys"]] == [new]
    reloaded = DevIssuer(issuer.state_dir)
    assert reloaded.current_kid == new and list(reloaded.jwks()["keys"]) == jwks["keys"]


def test_mint_needs_a_started_issuer(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        DevIssuer(tmp_path).mint("alice")
