"""Verifier against the development issuer: every refusal, the identity mapping, key rotation and caching."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubegate.identity.config import IdentityConfig, IssuerConfig
from kubegate.identity.model import AuthError, Identity
from kubegate.identity.oidc import Verifier
from kubegate.sandbox.issuer import DevIssuer

GITHUB_CLAIMS = ["repository", "workflow", "run_id", "actor", "ref"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Fetches:
    """Counts the JWKS requests a verifier makes, through an aiohttp trace hook."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def session_factory(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()

        async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self.urls.append(str(params.url))

        trace.on_request_start.append(on_start)
        return aiohttp.ClientSession(trace_configs=[trace])

    @property
    def jwks(self) -> int:
        return sum(url.endswith("/jwks") for url in self.urls)


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[DevIssuer]:
    async with DevIssuer(tmp_path / "issuer") as dev:
        yield dev


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fetches() -> Fetches:
    return Fetches()


@pytest.fixture
async def make_verifier(issuer: DevIssuer, clock: Clock, fetches: Fetches) -> AsyncIterator[Callable[..., Any]]:
    made: list[Verifier] = []

    async def make(cache_seconds: float = 300, start: bool = True, **issuer_fields: Any) -> Verifier:
        fields: dict[str, Any] = {"url": issuer.url, "audience": "kubegate", "ca_file": issuer.ca_file, **issuer_fields}
        config = IdentityConfig(issuers=[IssuerConfig(**fields)], token_cache_seconds=cache_seconds)
        verifier = Verifier(config, session_factory=fetches.session_factory, clock=clock)
        made.append(verifier)
        if start:
            await verifier.start()
        return verifier

    yield make
    for verifier in made:
        await verifier.close()


async def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    assert not token or token not in info.value.reason
    return info.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# success paths


async def test_github_actions_like_token_maps_to_identity(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(groups_prefix="oidc:", claims=GITHUB_CLAIMS)
    token = issuer.mint(
        "repo:acme/app:ref:refs/heads/main",
        groups=["ci-agents", "readers"],
        claims={
            "repository": "acme/app",
            "workflow": "deploy",
            "run_id": 4242,
            "actor": "octocat",
            "ref": "refs/heads/main",
            "environment": "prod",
        },
    )
    identity = await verifier.verify(token)
    assert identity == Identity(
        issuer=issuer.url,
        subject="repo:acme/app:ref:refs/heads/main",
        username=f"{issuer.url}#repo:acme/app:ref:refs/heads/main",
        groups=("oidc:ci-agents", "oidc:readers"),
        claims={
            "repository": "acme/app",
            "workflow": "deploy",
            "run_id": "4242",
            "actor": "octocat",
            "ref": "refs/heads/main",
        },
        expires_at=float(claims_of(token)["exp"]),
    )
    assert verifier.ready() == {issuer.url: "ok"}


async def test_custom_subject_claim_username_prefix_and_single_group(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(subject_claim="actor", username_prefix="gh:", groups_claim="team")
    identity = await verifier.verify(issuer.mint("ignored", claims={"actor": "octocat", "team": "platform"}))
    assert (identity.subject, identity.username, identity.groups) == ("octocat", "gh:octocat", ("platform",))


@pytest.mark.parametrize("subject", ["system:admin", "system:serviceaccount:kube-system:default"])
async def test_a_subject_that_would_be_a_system_user_is_refused(
    issuer: DevIssuer, make_verifier: Any, subject: str
) -> None:
    verifier = await make_verifier(username_prefix="")
    reason = await refused(verifier, issuer.mint(subject))
    assert reason == (
        f"the token maps to Kubernetes user {subject!r}, and names starting with system: belong to "
        f"Kubernetes itself; the kubegate operator can set a username_prefix for issuer {issuer.url}"
    )


async def test_missing_groups_claim_means_no_groups(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    assert (await verifier.verify(issuer.mint("alice"))).groups == ()


async def test_any_configured_audience_is_accepted(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(audience=["kubegate", "kubegate-staging"])
    identity = await verifier.verify(issuer.mint("alice", audience="kubegate-staging"))
    assert identity.subject == "alice"


async def test_expiry_within_leeway_is_accepted(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(leeway_seconds=60)
    assert (await verifier.verify(issuer.mint("alice", lifetime=-20))).subject == "alice"


async def test_required_claims_with_matching_values_pass(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(required_claims={"repository": "acme/app", "run_attempt": "1"})
    token = issuer.mint("alice", claims={"repository": "acme/app", "run_attempt": 1})
    assert (await verifier.verify(token)).subject == "alice"


# refusals


async def test_expired_token_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(leeway_seconds=10)
    assert (await refused(verifier, issuer.mint("alice", lifetime=-30))).startswith("token expired")


async def test_token_not_yet_valid_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    token = issuer.mint("alice", not_before=time.time() + 600)
    assert (await refused(verifier, token)).startswith("token not yet valid")


async def test_token_issued_in_the_future_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    token = issuer.mint("alice", claims={"iat": int(time.time()) + 600})
    assert (await refused(verifier, token)).startswith("token not yet valid")


async def test_wrong_audience_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    reason = await refused(verifier, issuer.mint("alice", audience="someone-else"))
    assert reason == "token audience does not match: kubegate accepts kubegate"


async def test_untrusted_issuer_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    reason = await refused(verifier, issuer.mint("alice", issuer="https://attacker.example"))
    assert reason == "token issuer is not trusted"
    assert await refused(verifier, issuer.mint("alice", claims={"iss": None})) == "token issuer is not trusted"


async def test_foreign_key_claiming_trusted_issuer_is_refused(
    issuer: DevIssuer, make_verifier: Any, tmp_path: Path
) -> None:
    verifier = await make_verifier()
    attacker = DevIssuer(tmp_path / "attacker")
    reason = await refused(verifier, attacker.mint("root", issuer=issuer.url))
    assert reason.startswith("token signed with an unknown key")
    payload = claims_of(issuer.mint("root"))
    forged = jwt.encode(payload, attacker.private_key(), algorithm="RS256", headers={"kid": issuer.current_kid})
    assert await refused(verifier, forged) == "token signature is invalid"


async def test_alg_none_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    payload = claims_of(issuer.mint("alice"))
    token = hand_signed({"alg": "none", "typ": "JWT"}, payload, lambda _: b"")
    assert (await refused(verifier, token)).startswith("token algorithm not allowed")


async def test_hs256_signed_with_the_public_key_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    public_pem = (
        issuer.private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    payload = claims_of(issuer.mint("root", groups=["system:masters"]))
    token = hand_signed(
        {"alg": "HS256", "kid": issuer.current_kid, "typ": "JWT"},
        payload,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    assert (await refused(verifier, token)).startswith("token algorithm not allowed")


async def test_header_alg_that_does_not_fit_the_key_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    payload = claims_of(issuer.mint("alice"))
    key = issuer.private_key()
    pss = jwt.encode(payload, key, algorithm="PS256", headers={"kid": issuer.current_kid})
    assert (await refused(verifier, pss)) == "token algorithm not allowed: PS256 does not fit the issuer's key"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    es = jwt.encode(payload, ec_key, algorithm="ES256", headers={"kid": issuer.current_kid})
    assert (await refused(verifier, es)).startswith("token algorithm not allowed")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "...."])
async def test_malformed_token_is_refused(make_verifier: Any, token: str) -> None:
    verifier = await make_verifier()
    assert (await refused(verifier, token)).startswith("malformed token")


async def test_empty_token_is_refused(make_verifier: Any) -> None:
    verifier = await make_verifier()
    assert (await refused(verifier, "")).startswith("no bearer token")


async def test_missing_required_claims_are_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(required_claims={"repository": "acme/app"})
    assert await refused(verifier, issuer.mint("alice")) == "missing required claim repository"
    wrong = issuer.mint("alice", claims={"repository": "evil/app"})
    assert await refused(verifier, wrong) == "claim repository does not have the value this issuer requires"


async def test_token_without_exp_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    assert await refused(verifier, issuer.mint("alice", claims={"exp": None})) == "missing required claim exp"


async def test_token_without_subject_is_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    assert await refused(verifier, issuer.mint("alice", claims={"sub": None})) == "missing required claim sub"
    assert await refused(verifier, issuer.mint("")) == "claim sub must be a non-empty string"


async def test_groups_of_the_wrong_type_are_refused(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier()
    token = issuer.mint("alice", claims={"groups": [1, 2]})
    assert await refused(verifier, token) == "claim groups must be a string or a list of strings"


# keys: unreachable issuer, rotation, rate limit


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_issuer_without_cached_key_fails_closed(issuer: DevIssuer, make_verifier: Any) -> None:
    url = f"https://127.0.0.1:{_closed_port()}"
    verifier = await make_verifier(url=url)
    assert verifier.ready()[url].startswith("unreachable: ")
    reason = await refused(verifier, issuer.mint("alice", issuer=url))
    assert reason.startswith(f"cannot verify: issuer {url} unreachable and no key cached")


async def test_cached_keys_survive_an_issuer_outage(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(cache_seconds=0)
    token = issuer.mint("alice")
    await issuer.stop()
    assert (await verifier.verify(token)).subject == "alice"


async def test_issuer_untrusted_tls_is_unreachable(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(ca_file=None)
    assert "unreachable" in verifier.ready()[issuer.url]
    assert (await refused(verifier, issuer.mint("alice"))).startswith("cannot verify")


async def test_rotated_key_is_picked_up_and_refresh_is_rate_limited(
    issuer: DevIssuer, make_verifier: Any, clock: Clock, fetches: Fetches, tmp_path: Path
) -> None:
    verifier = await make_verifier(cache_seconds=0)
    assert fetches.jwks == 1
    clock.now += 11
    unknown = DevIssuer(tmp_path / "other").mint("mallory", issuer=issuer.url)
    assert (await refused(verifier, unknown)).startswith("token signed with an unknown key")
    assert fetches.jwks == 2

    issuer.rotate()
    rotated = issuer.mint("alice")
    clock.now += 5
    assert (await refused(verifier, rotated)).startswith("token signed with an unknown key")
    assert fetches.jwks == 2, "a second refresh within 10 s must not happen"

    clock.now += 5
    assert (await verifier.verify(rotated)).subject == "alice"
    assert fetches.jwks == 3


async def test_concurrent_unknown_kids_share_one_refresh(
    issuer: DevIssuer, make_verifier: Any, clock: Clock, fetches: Fetches
) -> None:
    verifier = await make_verifier(cache_seconds=0)
    issuer.rotate()
    clock.now += 10
    tokens = [issuer.mint(f"user{i}") for i in range(5)]
    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [i.subject for i in identities] == [f"user{i}" for i in range(5)]
    assert fetches.jwks == 2


async def test_retired_key_stops_verifying_once_keys_are_stale(
    issuer: DevIssuer, make_verifier: Any, clock: Clock, fetches: Fetches
) -> None:
    verifier = await make_verifier(cache_seconds=0)
    old_kid = issuer.current_kid
    first, second = issuer.mint("alice"), issuer.mint("bob")
    issuer.rotate()
    issuer.retire(old_kid)
    assert (await verifier.verify(first)).subject == "alice"
    assert fetches.jwks == 1, "fresh keys are not refetched"
    clock.now += 3601
    assert (await verifier.verify(first)).subject == "alice", "stale keys still serve while refreshing"
    await verifier.start()  # waits for the background refresh
    assert fetches.jwks == 2
    assert (await refused(verifier, second)).startswith("token signed with an unknown key")


# token cache


async def test_cache_hit_still_checks_expiry(issuer: DevIssuer, make_verifier: Any, clock: Clock) -> None:
    verifier = await make_verifier(cache_seconds=300, leeway_seconds=30)
    token = issuer.mint("alice", lifetime=60)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    clock.now = first.expires_at + 29
    assert await verifier.verify(token) is first
    clock.now = first.expires_at + 31
    assert (await refused(verifier, token)).startswith("token expired")


async def test_cache_entries_end_after_token_cache_seconds(issuer: DevIssuer, make_verifier: Any, clock: Clock) -> None:
    verifier = await make_verifier(cache_seconds=10)
    token = issuer.mint("alice")
    first = await verifier.verify(token)
    clock.now += 11
    again = await verifier.verify(token)
    assert again == first and again is not first


async def test_refusals_are_not_cached(issuer: DevIssuer, make_verifier: Any) -> None:
    verifier = await make_verifier(required_claims={"repository": "acme/app"})
    token = issuer.mint("alice")
    await refused(verifier, token)
    assert await refused(verifier, token) == "missing required claim repository"


async def test_issuer_listed_twice_is_a_config_error(issuer: DevIssuer) -> None:
    twice = IssuerConfig(url=issuer.url, audience="kubegate")
    with pytest.raises(ValueError, match="issuer urls must be unique"):
        IdentityConfig(issuers=[twice, twice])


async def test_a_loopback_issuer_over_plain_http_is_warned_about_at_start(caplog: pytest.LogCaptureFixture) -> None:
    verifier = Verifier(IdentityConfig(issuers=[IssuerConfig(url="http://127.0.0.1:9", audience="kubegate")]))
    with caplog.at_level(logging.WARNING, logger="kubegate.identity.oidc"):
        await verifier.start()
    await verifier.close()
    assert "issuer http://127.0.0.1:9: keys are fetched over plain HTTP" in caplog.text
