"""The web UI as an OpenID Connect relying party: discovery, the authorization URL with PKCE, and
the code exchange. The ID token it gets back is verified by the gateway's own Verifier, so a UI
sign-in yields exactly the Identity (username prefix, groups, claims) a kubectl token would.

Tokens stay on the server side of this exchange: neither the ID token nor the access token is
logged, stored or sent to the browser.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt

from kubegate.config import UIConfig
from kubegate.identity.config import IssuerConfig
from kubegate.identity.model import AuthError, Identity
from kubegate.identity.stage import TokenVerifier
from kubegate.web.ui.pkce import s256

DISCOVERY_TTL = 3600.0
TIMEOUT = aiohttp.ClientTimeout(total=10)


class SignInError(Exception):
    """A sign-in that cannot complete; the text says what happened and what to do, never a token."""


class OIDCClient:
    def __init__(self, config: UIConfig, issuer: IssuerConfig, verifier: TokenVerifier) -> None:
        self.config = config
        self.issuer = issuer
        self.verifier = verifier
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context(cafile=str(issuer.ca_file)) if issuer.ca_file else None
        )
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=aiohttp.DummyCookieJar())
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (cached for an hour)."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched > DISCOVERY_TTL:
                url = f"{self.issuer.url}/.well-known/openid-configuration"
                try:
                    async with self._session().get(
                        url, ssl=self._ssl if self._ssl else True, allow_redirects=False
                    ) as response:
                        if response.status != 200:
                            raise SignInError(
                                f"the identity provider {self.issuer.url} answered {response.status} "
                                "for its discovery document; try again later"
                            )
                        data = await response.json(content_type=None)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    raise SignInError(
                        f"the identity provider {self.issuer.url} is unreachable "
                        f"({exc.__class__.__name__}); try again later"
                    ) from exc
                if (
                    not isinstance(data, dict)
                    or not data.get("authorization_endpoint")
                    or not data.get("token_endpoint")
                ):
                    raise SignInError(
                        f"the identity provider {self.issuer.url} does not offer the authorization "
                        "code flow (no authorization_endpoint or token_endpoint)"
                    )
                self._metadata, self._fetched = data, time.monotonic()
            return self._metadata

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        endpoint = str((await self.metadata())["authorization_endpoint"])
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        return endpoint + ("&" if "?" in endpoint else "?") + query

    async def exchange(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> Identity:
        """Redeem the code with the PKCE verifier and verify the ID token it buys, nonce included."""
        endpoint = str((await self.metadata())["token_endpoint"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        auth = (
            aiohttp.BasicAuth(self.config.client_id, self.config.client_secret) if self.config.client_secret else None
        )
        try:
            async with self._session().post(
                endpoint,
                data=form,
                auth=auth,
                allow_redirects=False,
                ssl=self._ssl if self._ssl else True,
                headers={"Accept": "application/json"},
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SignInError(
                f"the identity provider's token endpoint is unreachable ({exc.__class__.__name__}); sign in again"
            ) from exc
        if not isinstance(body, dict):
            raise SignInError("the identity provider's token endpoint did not answer with JSON; sign in again")
        if status != 200:
            reason = str(body.get("error_description") or body.get("error") or status)[:300]
            raise SignInError(f"the identity provider refused the sign-in code: {reason}; sign in again")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInError("the identity provider sent no ID token; check that ui.scopes includes openid")
        try:
            identity = await self.verifier.verify(id_token)
        except AuthError as exc:
            raise SignInError(
                f"kubegate refused the ID token: {exc.reason} (the issuer's audience in kubegate's "
                f"config must include the UI's client id {self.config.client_id!r})"
            ) from exc
        claims = jwt.decode(id_token, options={"verify_signature": False})  # verified just above
        if identity.issuer != self.issuer.url or claims.get("nonce") != nonce:
            raise SignInError("the ID token was not issued for this sign-in (issuer or nonce differ); sign in again")
        return identity
