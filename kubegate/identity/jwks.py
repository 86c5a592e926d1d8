"""The signing keys of one OIDC issuer: discovery, JWKS fetch, and a refresh that is shared and rate-limited.

A token with an unknown `kid` must not let a caller hammer the issuer, so refreshes happen at most once per
REFRESH_INTERVAL and concurrent callers wait on the same request. Keys are kept after a failed refresh (an
issuer outage must not lock everyone out), but with no key at all verification fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from kubegate.identity.model import AuthError
from kubegate.identity.urls import key_url_problem

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 10.0
MAX_KEY_AGE = 3600.0
MAX_DOCUMENT_BYTES = 1 << 20

# Only asymmetric signatures: an HMAC alg would let anyone holding the (public) issuer key sign tokens.
ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}


class IssuerUnreachable(Exception):
    """Discovery or JWKS could not be fetched or understood; str() says why."""


def key_fits(jwk: dict[str, Any], alg: str) -> bool:
    """Whether a JWK may verify a signature made with `alg` (its kty, curve, alg and use all agree)."""
    if alg not in ALGORITHMS:
        return False
    kty, curves = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        return False
    if jwk.get("alg") not in (None, alg):
        return False
    return jwk.get("use") in (None, "sig")


class IssuerKeys:
    """Discovery document and JWKS of one issuer, fetched on demand and cached."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None,
        ssl_context: ssl.SSLContext | None,
        session: Callable[[], aiohttp.ClientSession],
        clock: Callable[[], float],
    ) -> None:
        self.issuer = issuer
        self._configured_jwks_url = jwks_url
        self._jwks_url = jwks_url
        self._ssl = ssl_context
        self._session = session
        self._clock = clock
        self._jwks: list[dict[str, Any]] = []
        self._prepared: dict[tuple[str | None, int, str], PyJWK] = {}
        self._last_attempt: float | None = None
        self._last_success: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.discovery: dict[str, Any] | None = None
        self.status = "keys not fetched yet"
        self._error = "keys not fetched yet"
        self.refreshes = {"ok": 0, "failed": 0}
        """JWKS fetches by outcome, for kubegate_jwks_refreshes_total."""

    async def refresh(self) -> None:
        """Fetch the keys now unless a refresh is running (then wait for it) or one ran < 10 s ago."""
        task = self._start_refresh()
        if task is not None:
            await asyncio.shield(task)

    def _start_refresh(self) -> asyncio.Task[None] | None:
        if self._inflight is None:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < REFRESH_INTERVAL:
                return None
            self._last_attempt = now
            self._inflight = asyncio.create_task(self._refresh_once())
        return self._inflight

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
            self._inflight = None

    async def keys_for(self, kid: str | None, alg: str) -> list[PyJWK]:
        """The keys that may have signed a token with this header; refreshes once on an unknown kid."""
        if not self._jwks or (kid is not None and not self._find(kid)):
            await self.refresh()
        elif self._last_success is not None and self._clock() - self._last_success > MAX_KEY_AGE:
            # Pick up retired keys in the background; this token is checked against what we have.
            self._start_refresh()
        if not self._jwks:
            raise AuthError(
                f"cannot verify: issuer {self.issuer} unreachable and no key cached ({self._error}); try again later"
            )
        found = self._find(kid) if kid is not None else list(enumerate(self._jwks))
        if not found:
            raise AuthError("token signed with an unknown key: its kid is not in the issuer's JWKS")
        fitting = [(i, jwk) for i, jwk in found if key_fits(jwk, alg)]
        if not fitting:
            raise AuthError(f"token algorithm not allowed: {alg} does not fit the issuer's key")
        return [self._prepare(i, jwk, alg) for i, jwk in fitting]

    def _find(self, kid: str) -> list[tuple[int, dict[str, Any]]]:
        return [(i, jwk) for i, jwk in enumerate(self._jwks) if jwk.get("kid") == kid]

    def _prepare(self, index: int, jwk: dict[str, Any], alg: str) -> PyJWK:
        cache_key = (jwk.get("kid"), index, alg)
        if cache_key not in self._prepared:
            try:
                self._prepared[cache_key] = PyJWK(jwk, algorithm=alg)
            except (PyJWKError, PyJWTError) as exc:
                raise AuthError(f"token signed with an unusable key: {exc}") from None
        return self._prepared[cache_key]

    async def _refresh_once(self) -> None:
        try:
            jwks = await self._fetch()
        except IssuerUnreachable as exc:
            self._error = str(exc)
            self.refreshes["failed"] += 1
            self.status = f"unreachable: {exc}"
            log.warning("issuer %s: %s", self.issuer, exc)
            if self._configured_jwks_url is None:
                self.discovery, self._jwks_url = None, None  # rediscover next time: jwks_uri may have moved
        else:
            self._jwks, self._prepared = jwks, {}
            self._last_success = self._clock()
            self.refreshes["ok"] += 1
            self.status = "ok"
            log.info("issuer %s: %d signing key(s) loaded", self.issuer, len(jwks))
        finally:
            self._inflight = None

    async def _fetch(self) -> list[dict[str, Any]]:
        if self._jwks_url is None:
            doc = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if doc.get("issuer") != self.issuer:
                raise IssuerUnreachable(f"discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}")
            if not isinstance(doc.get("jwks_uri"), str):
                raise IssuerUnreachable("discovery document has no jwks_uri")
            problem = key_url_problem(doc["jwks_uri"])
            if problem:
                raise IssuerUnreachable(f"discovery document's jwks_uri {problem}")
            self.discovery, self._jwks_url = doc, doc["jwks_uri"]
        assert self._jwks_url is not None
        body = await self._get_json(self._jwks_url)
        keys = body.get("keys")
        if not isinstance(keys, list):
            raise IssuerUnreachable("JWKS has no keys list")
        # Symmetric ("oct") or encryption keys never verify an ID token.
        usable = [
            k
            for k in keys
            if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP") and k.get("use") in (None, "sig")
        ]
        if not usable:
            raise IssuerUnreachable("JWKS has no usable signing keys")
        return usable

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session().get(url, ssl=self._ssl if self._ssl is not None else True) as resp:
                if resp.status != 200:
                    raise IssuerUnreachable(f"GET {url}: HTTP {resp.status}")
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IssuerUnreachable(f"GET {url}: {exc.__class__.__name__}: {exc}") from None
        if len(body) > MAX_DOCUMENT_BYTES:
            raise IssuerUnreachable(f"GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise IssuerUnreachable(f"GET {url}: not JSON") from None
        if not isinstance(doc, dict):
            raise IssuerUnreachable(f"GET {url}: not a JSON object")
        return doc
