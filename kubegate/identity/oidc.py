"""Verify OIDC ID tokens (JWTs) from the configured issuers and turn them into an Identity.

The unverified `iss` only chooses which issuer's keys to try; everything else (signature, issuer, audience,
times, required claims) is checked by PyJWT against configuration. Refusal reasons are specific and never
contain the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import orjson
from jwt import exceptions as jwt_errors

from kubegate.identity.config import IdentityConfig, IssuerConfig
from kubegate.identity.jwks import ALGORITHMS, IssuerKeys
from kubegate.identity.model import RESERVED, AuthError, Identity
from kubegate.identity.urls import is_plain_http

log = logging.getLogger(__name__)
MAX_LEEWAY = 60
MAX_CACHED_TOKENS = 10_000
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=FETCH_TIMEOUT, headers={"User-Agent": "kubegate"})


def _claim_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def _reason(exc: jwt_errors.PyJWTError, issuer: IssuerConfig) -> str:
    """A refusal reason that says what was wrong and, where it helps, what kubegate expected."""
    if isinstance(exc, jwt_errors.ExpiredSignatureError):
        return "token expired: get a fresh token"
    if isinstance(exc, jwt_errors.ImmatureSignatureError):
        return "token not yet valid (nbf or iat is in the future): check the clock of the token's issuer"
    if isinstance(exc, jwt_errors.InvalidAudienceError):
        return f"token audience does not match: kubegate accepts {', '.join(issuer.audiences)}"
    if isinstance(exc, jwt_errors.InvalidIssuerError):
        return "token issuer is not trusted"
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"missing required claim {exc.claim}"
    if isinstance(exc, jwt_errors.InvalidSignatureError):
        return "token signature is invalid"
    if isinstance(exc, jwt_errors.InvalidAlgorithmError):
        return "token algorithm not allowed"
    if isinstance(exc, jwt_errors.InvalidIssuedAtError):
        return "malformed token: iat is not a number"
    if isinstance(exc, jwt_errors.InvalidKeyError | jwt_errors.PyJWKError):
        return "token signed with an unusable key"
    return "malformed token"


class Verifier:
    """Checks bearer tokens against the configured issuers; one per process, shared by all requests."""

    def __init__(
        self,
        config: IdentityConfig,
        session_factory: Callable[[], aiohttp.ClientSession] = _default_session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._issuers: dict[str, IssuerConfig] = {}
        self._keys: dict[str, IssuerKeys] = {}
        self._cache: dict[str, tuple[Identity, float]] = {}
        for issuer in config.issuers:
            self._issuers[issuer.url] = issuer
            self._keys[issuer.url] = IssuerKeys(
                issuer.url,
                jwks_url=issuer.jwks_url,
                ssl_context=self._ssl_context(issuer),
                session=self._get_session,
                clock=clock,
            )

    @staticmethod
    def _ssl_context(issuer: IssuerConfig) -> ssl.SSLContext | None:
        if issuer.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(issuer.ca_file))

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    async def start(self) -> None:
        """Fetch every issuer's keys once; an issuer that is down is logged and retried on demand."""
        for issuer in self._issuers.values():
            for url in (issuer.url, issuer.jwks_url):
                if url is not None and is_plain_http(url):
                    log.warning(
                        "issuer %s: keys are fetched over plain HTTP from %s (allowed on loopback only); "
                        "use https:// outside development",
                        issuer.url,
                        url,
                    )
        await asyncio.gather(*(keys.refresh() for keys in self._keys.values()))

    async def close(self) -> None:
        for keys in self._keys.values():
            await keys.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> dict[str, str]:
        return {url: keys.status for url, keys in self._keys.items()}

    def refreshes(self) -> dict[tuple[str, str], int]:
        """JWKS fetches by (issuer, outcome ok|failed)."""
        return {(url, outcome): n for url, keys in self._keys.items() for outcome, n in keys.refreshes.items()}

    async def verify(self, token: str) -> Identity:
        if not token:
            raise AuthError("no bearer token: use `kubegate token` as kubectl's credential plugin")
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        identity = await self._verify(token)
        self._remember(digest, identity)
        return identity

    def _cached(self, digest: str) -> Identity | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        identity, until = entry
        now = self._clock()
        if now >= until:
            del self._cache[digest]
            return None
        leeway = min(self._issuers[identity.issuer].leeway_seconds, MAX_LEEWAY)
        if identity.expires_at <= now - leeway:
            del self._cache[digest]
            raise AuthError("token expired: get a fresh token")
        return identity

    def _remember(self, digest: str, identity: Identity) -> None:
        if self._config.token_cache_seconds <= 0:
            return
        now = self._clock()
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache = {d: e for d, e in self._cache.items() if e[1] > now}
            while len(self._cache) >= MAX_CACHED_TOKENS:
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = (identity, now + self._config.token_cache_seconds)

    async def _verify(self, token: str) -> Identity:
        try:
            unverified = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt_errors.PyJWTError:
            raise AuthError("malformed token: not a signed JWT") from None
        header, payload = unverified["header"], unverified["payload"]
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise AuthError(
                f"token algorithm not allowed: kubegate accepts only asymmetric signatures ({', '.join(ALGORITHMS)})"
            )
        iss = payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("token issuer is not trusted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed token: kid is not a string")
        keys = await self._keys[issuer.url].keys_for(kid, alg)
        claims = self._decode(token, keys, alg, issuer)
        return self._identity(claims, issuer)

    def _decode(self, token: str, keys: list[jwt.PyJWK], alg: str, issuer: IssuerConfig) -> dict[str, Any]:
        failure: jwt_errors.PyJWTError | None = None
        for key in keys:
            try:
                return jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=issuer.audiences,
                    issuer=issuer.url,
                    leeway=min(issuer.leeway_seconds, MAX_LEEWAY),
                    options={"require": ["exp", "iss", "aud"], "verify_sub": False, "verify_jti": False},
                )
            except jwt_errors.InvalidSignatureError as exc:
                failure = exc  # a token without kid: try the next fitting key
            except jwt_errors.PyJWTError as exc:
                raise AuthError(_reason(exc, issuer)) from None
        assert failure is not None
        raise AuthError(_reason(failure, issuer))

    def _identity(self, claims: dict[str, Any], issuer: IssuerConfig) -> Identity:
        for name, wanted in issuer.required_claims.items():
            if name not in claims or claims[name] is None:
                raise AuthError(f"missing required claim {name}")
            value = claims[name]
            if isinstance(value, list | dict) or _claim_text(value) != wanted:
                raise AuthError(f"claim {name} does not have the value this issuer requires")
        subject = claims.get(issuer.subject_claim)
        if subject is None:
            raise AuthError(f"missing required claim {issuer.subject_claim}")
        if not isinstance(subject, str) or not subject:
            raise AuthError(f"claim {issuer.subject_claim} must be a non-empty string")
        raw_groups = claims.get(issuer.groups_claim)
        if raw_groups is None:
            groups: list[str] = []
        elif isinstance(raw_groups, str):
            groups = [raw_groups]
        elif isinstance(raw_groups, list) and all(isinstance(g, str) for g in raw_groups):
            groups = raw_groups
        else:
            raise AuthError(f"claim {issuer.groups_claim} must be a string or a list of strings")
        username = issuer.user_prefix + subject
        if username.startswith(RESERVED):
            raise AuthError(
                f"the token maps to Kubernetes user {username!r}, and names starting with {RESERVED} "
                f"belong to Kubernetes itself; the kubegate operator can set a username_prefix for "
                f"issuer {issuer.url}"
            )
        selected = {
            name: _claim_text(claims[name]) for name in issuer.claims if name in claims and claims[name] is not None
        }
        return Identity(
            issuer=issuer.url,
            subject=subject,
            username=username,
            groups=tuple(dict.fromkeys(issuer.groups_prefix + g for g in groups)),
            claims=selected,
            expires_at=float(claims["exp"]),
        )
