"""IssuerKeys: which keys fit which algorithm, and what a broken issuer looks like."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from kubegate.identity.jwks import IssuerKeys, key_fits
from kubegate.identity.model import AuthError

RSA = {"kty": "RSA", "n": "x", "e": "AQAB"}


@pytest.mark.parametrize(
    ("jwk", "alg", "fits"),
    [
        (RSA, "RS256", True),
        (RSA, "PS512", True),
        ({**RSA, "alg": "RS256"}, "RS256", True),
        ({**RSA, "alg": "RS256"}, "PS256", False),
        ({**RSA, "use": "enc"}, "RS256", False),
        (RSA, "ES256", False),
        (RSA, "HS256", False),
        (RSA, "none", False),
        ({"kty": "oct", "k": "c2VjcmV0"}, "HS256", False),
        ({"kty": "EC", "crv": "P-256"}, "ES256", True),
        ({"kty": "EC", "crv": "P-256"}, "ES384", False),
        ({"kty": "EC", "crv": "P-521"}, "ES512", True),
        ({"kty": "OKP", "crv": "Ed25519"}, "EdDSA", True),
        ({"kty": "OKP", "crv": "X25519"}, "EdDSA", False),
    ],
)
def test_key_fits(jwk: dict[str, Any], alg: str, fits: bool) -> None:
    assert key_fits(jwk, alg) is fits


Serve = Callable[[dict[str, Any], dict[str, Any]], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a plain-HTTP loopback issuer answering the given discovery document and JWKS."""
    runners: list[web.AppRunner] = []

    async def start(discovery: dict[str, Any], jwks: dict[str, Any]) -> str:
        async def discovery_doc(_: web.Request) -> web.Response:
            return web.json_response(discovery)

        async def key_set(_: web.Request) -> web.Response:
            return web.json_response(jwks)

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery_doc)
        app.router.add_get("/keys", key_set)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def keys(url: str, session: aiohttp.ClientSession, jwks_url: str | None = None) -> IssuerKeys:
    return IssuerKeys(url, jwks_url=jwks_url, ssl_context=None, session=lambda: session, clock=lambda: 0.0)


async def test_discovery_naming_another_issuer_is_refused(serve: Serve, session: aiohttp.ClientSession) -> None:
    url = await serve({"issuer": "https://elsewhere.example", "jwks_uri": "unused"}, {"keys": []})
    issuer_keys = keys(url, session)
    await issuer_keys.refresh()
    assert issuer_keys.status == (
        "unreachable: discovery document names issuer 'https://elsewhere.example', not " + repr(url)
    )
    with pytest.raises(AuthError, match=r"cannot verify: issuer .* unreachable and no key cached"):
        await issuer_keys.keys_for("k1", "RS256")


async def test_symmetric_keys_in_a_jwks_are_never_used(serve: Serve, session: aiohttp.ClientSession) -> None:
    url = await serve({}, {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]})
    issuer_keys = keys(url, session, jwks_url=f"{url}/keys")
    await issuer_keys.refresh()
    assert issuer_keys.status == "unreachable: JWKS has no usable signing keys"


async def test_configured_jwks_url_skips_discovery(serve: Serve, session: aiohttp.ClientSession) -> None:
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    url = await serve({"issuer": "wrong"}, {"keys": [{**jwk, "kid": "k1"}]})
    issuer_keys = keys(url, session, jwks_url=f"{url}/keys")
    await issuer_keys.refresh()
    assert issuer_keys.status == "ok" and issuer_keys.discovery is None
    assert issuer_keys.refreshes == {"ok": 1, "failed": 0}
    [key] = await issuer_keys.keys_for("k1", "ES256")
    assert key.algorithm_name == "ES256"


async def test_http_error_is_reported(serve: Serve, session: aiohttp.ClientSession) -> None:
    url = await serve({}, {})
    issuer_keys = keys(url, session, jwks_url=f"{url}/missing")
    await issuer_keys.refresh()
    assert issuer_keys.status == f"unreachable: GET {url}/missing: HTTP 404"
    assert issuer_keys.refreshes == {"ok": 0, "failed": 1}


async def test_a_discovery_document_sending_keys_over_plain_http_off_this_machine_is_refused(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    discovery: dict[str, Any] = {}
    url = await serve(discovery, {"keys": []})
    discovery.update(issuer=url, jwks_uri="http://keys.attacker.example/jwks")
    issuer_keys = keys(url, session)
    await issuer_keys.refresh()
    assert issuer_keys.status == (
        "unreachable: discovery document's jwks_uri 'http://keys.attacker.example/jwks' "
        "must be https://: plain http is allowed only for a loopback address "
        "(127.0.0.0/8, ::1 or localhost)"
    )
