"""The development issuer's login page: authorization codes with PKCE, redeemed once, bound to the
client and redirect URI that asked; and the old token-minting POST /token still works beside it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest

from kubegate.sandbox.issuer import DevIssuer
from kubegate.sandbox.login import AuthorizationCodes, LoginError, authorization_request
from kubegate.web.ui.pkce import new_verifier, s256

REDIRECT = "https://127.0.0.1:8443/ui/auth/callback"


def _request(verifier: str, **overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": "kubegate",
        "redirect_uri": REDIRECT,
        "state": "st",
        "nonce": "n-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "scope": "openid",
        **overrides,
    }


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[DevIssuer]:
    async with DevIssuer(tmp_path / "state", audience="kubegate") as dev:
        yield dev


@pytest.fixture
async def http(issuer: DevIssuer) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(issuer.ca_file)))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def test_an_authorization_request_must_use_pkce_and_a_real_redirect() -> None:
    verifier = new_verifier()
    assert authorization_request(_request(verifier))["nonce"] == "n-1"
    for bad, message in (
        (dict(code_challenge_method="plain"), "PKCE is required"),
        (dict(code_challenge=""), "PKCE is required"),
        (dict(response_type="token"), "response_type must be code"),
        (dict(redirect_uri="/relative"), "redirect_uri must be an absolute"),
        (dict(redirect_uri="javascript:alert(1)"), "redirect_uri must be an absolute"),
        (dict(client_id=""), "client_id is required"),
    ):
        with pytest.raises(LoginError, match=message):
            authorization_request(_request(verifier, **bad))


def test_a_code_is_redeemed_once_with_its_verifier_client_and_redirect() -> None:
    now = [100.0]
    codes = AuthorizationCodes(clock=lambda: now[0])
    verifier = new_verifier()
    req = authorization_request(_request(verifier))
    code = codes.issue(req, "rita", ["platform-oncall", "", "platform-oncall"])
    with pytest.raises(LoginError, match="code_verifier does not match"):
        codes.redeem(code, "kubegate", REDIRECT, new_verifier())
    with pytest.raises(LoginError, match="unknown, used or expired"):  # a failed try spends the code
        codes.redeem(code, "kubegate", REDIRECT, verifier)
    code = codes.issue(req, "rita", ["platform-oncall"])
    with pytest.raises(LoginError, match="client_id and redirect_uri"):
        codes.redeem(code, "kubegate", "https://evil.example/cb", verifier)
    code = codes.issue(req, "rita", ["platform-oncall", "platform-oncall"])
    grant = codes.redeem(code, "kubegate", REDIRECT, verifier)
    assert (grant.sub, grant.groups, grant.nonce) == ("rita", ("platform-oncall",), "n-1")
    late = codes.issue(req, "rita", [])
    now[0] += 61
    with pytest.raises(LoginError, match="unknown, used or expired"):
        codes.redeem(late, "kubegate", REDIRECT, verifier)


def test_user_and_group_names_are_checked() -> None:
    codes = AuthorizationCodes()
    req = authorization_request(_request(new_verifier()))
    with pytest.raises(LoginError, match="user name"):
        codes.issue(req, "", [])
    with pytest.raises(LoginError, match="group names"):
        codes.issue(req, "rita", ["ok", "<script>"])


async def test_the_login_page_signs_in_and_the_code_buys_an_id_token(
    issuer: DevIssuer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{issuer.url}/.well-known/openid-configuration") as r:
        discovery = await r.json()
    assert discovery["authorization_endpoint"] == f"{issuer.url}/authorize"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    verifier = new_verifier()
    async with http.get(f"{issuer.url}/authorize", params=_request(verifier)) as r:
        page = await r.text()
    assert r.status == 200 and 'name="sub"' in page and 'value="platform-oncall"' in page
    form = {**_request(verifier), "sub": "rita", "groups": "platform-oncall", "extra_groups": "db-oncall, sre"}
    async with http.post(f"{issuer.url}/authorize", data=form, allow_redirects=False) as r:
        assert r.status == 303
        target = urlsplit(r.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    query = parse_qs(target.query)
    assert query["state"] == ["st"]
    exchange = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": REDIRECT,
        "client_id": "kubegate",
        "code_verifier": verifier,
    }
    async with http.post(f"{issuer.url}/token", data=exchange) as r:
        body = await r.json()
    assert r.status == 200 and body["token_type"] == "Bearer"
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["groups"], claims["nonce"], claims["aud"]) == (
        "rita",
        ["platform-oncall", "db-oncall", "sre"],
        "n-1",
        "kubegate",
    )
    async with http.post(f"{issuer.url}/token", data=exchange) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    async with http.post(f"{issuer.url}/token", data={**exchange, "grant_type": "password"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"


async def test_a_bad_login_shows_the_page_again_and_minting_still_works(
    issuer: DevIssuer, http: aiohttp.ClientSession
) -> None:
    form = {**_request(new_verifier()), "sub": "no spaces please"}
    async with http.post(f"{issuer.url}/authorize", data=form, allow_redirects=False) as r:
        assert r.status == 400 and "the user name must be" in await r.text()
    async with http.get(f"{issuer.url}/authorize", params=_request(new_verifier(), code_challenge_method="plain")) as r:
        assert r.status == 400 and "PKCE is required" in await r.text()
    async with http.post(f"{issuer.url}/token", data={"sub": "ci", "groups": "developers"}) as r:
        minted = await r.json()
    assert jwt.decode(minted["token"], options={"verify_signature": False})["sub"] == "ci"
