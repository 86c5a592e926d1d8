"""A development OIDC issuer for the demo and the tests: discovery, JWKS, a token-minting endpoint and
a login page for the web UI (authorization code flow with PKCE, see kubegate.sandbox.login).

NOT for production. `POST /token` and the login page hand a signed token to anyone who asks, so they
answer loopback clients only; the signing keys live unencrypted in the state directory. Keys persist there so tokens
stay valid across restarts, and `rotate()` / `retire()` exercise key rotation.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from kubegate.durations import parse_duration
from kubegate.sandbox.login import (
    ID_TOKEN_LIFETIME,
    AuthorizationCodes,
    LoginError,
    authorization_request,
    login_page,
    redirect_with,
)
from kubegate.tls import ensure_serving_cert, server_ssl_context

ALGORITHM = "RS256"
MAX_LIFETIME = 7 * 86400


def _thumbprint(public: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a stable kid derived from the key itself."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class DevIssuer:
    """An OIDC issuer on https://HOST:PORT that signs whatever tokens its owner asks for."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0, audience: str = "kubegate") -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.audience = audience
        self._port = port
        self._key_dir = self.state_dir / "issuer-keys"
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._current = ""
        self._runner: web.AppRunner | None = None
        self.url = ""
        certs = ensure_serving_cert(self.state_dir / "issuer-tls", [host, "localhost"], cn="kubegate dev issuer")
        self.ca_file = certs.ca
        self._certs = certs
        self._codes = AuthorizationCodes()
        self._load_keys()

    # keys

    def _load_keys(self) -> None:
        self._key_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self._key_dir.glob("*.pem")):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            self._keys[path.stem] = key
        current = self._key_dir / "current"
        if current.exists() and current.read_text().strip() in self._keys:
            self._current = current.read_text().strip()
        elif self._keys:
            self._current = next(iter(self._keys))
        else:
            self.rotate()

    def rotate(self) -> str:
        """Make a new signing key, publish it and sign with it from now on; returns its kid."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = _thumbprint(key.public_key())
        path = self._key_dir / f"{kid}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)
        self._keys[kid] = key
        self._set_current(kid)
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing a key; tokens it signed no longer verify once verifiers refresh."""
        if kid == self._current:
            raise ValueError("cannot retire the current signing key; rotate() first")
        del self._keys[kid]
        (self._key_dir / f"{kid}.pem").unlink()

    def _set_current(self, kid: str) -> None:
        self._current = kid
        (self._key_dir / "current").write_text(kid)

    @property
    def current_kid(self) -> str:
        return self._current

    def private_key(self, kid: str | None = None) -> rsa.RSAPrivateKey:
        """A signing key (the current one by default), for tests that forge or re-sign tokens."""
        return self._keys[kid or self._current]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}

    # tokens

    def mint(
        self,
        sub: str,
        groups: Iterable[str] = (),
        claims: dict[str, Any] | None = None,
        lifetime: float = 3600,
        audience: str | None = None,
        not_before: float | None = None,
        kid: str | None = None,
        issuer: str | None = None,
    ) -> str:
        """A signed ID token. `claims` may override any standard claim; a value of None removes it."""
        if not self.url and issuer is None:
            raise RuntimeError("start() the issuer before minting: the token's iss is its URL")
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer if issuer is not None else self.url,
            "sub": sub,
            "aud": audience if audience is not None else self.audience,
            "iat": now,
            "nbf": int(not_before) if not_before is not None else now,
            "exp": int(now + lifetime),
            "jti": uuid.uuid4().hex,
        }
        group_list = list(groups)
        if group_list:
            payload["groups"] = group_list
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        kid = kid or self._current
        return jwt.encode(payload, self._keys[kid], algorithm=ALGORITHM, headers={"kid": kid})

    # server

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/authorize", self._authorize)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self._port, ssl_context=server_ssl_context(self._certs.cert, self._certs.key)
        )
        await site.start()
        self._port = self._runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"https://{host}:{self._port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevIssuer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks",
                "token_endpoint": f"{self.url}/token",
                "authorization_endpoint": f"{self.url}/authorize",
                "response_types_supported": ["code", "id_token"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [ALGORITHM],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf", "jti", "groups", "nonce"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        """Mint a token for the fields given (form or JSON): sub, groups, claims, lifetime, audience."""
        if not _is_loopback(request.remote):
            return web.json_response(
                {"error": "the development issuer mints tokens for loopback clients only"}, status=403
            )
        if request.content_type != "application/json" and (await request.post()).get("grant_type"):
            return await self._exchange_code(request)
        try:
            fields = await _token_fields(request)
            token = self.mint(**fields)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        expires_at = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return web.json_response({"token": token, "expires_at": expires_at})

    async def _authorize(self, request: web.Request) -> web.Response:
        """GET: the login page for an authorization request; POST: sign in and redirect back with a code."""
        if not _is_loopback(request.remote):
            return web.Response(status=403, text="the development issuer signs in loopback clients only")
        params = request.query if request.method == "GET" else await request.post()
        try:
            req = authorization_request({k: str(v) for k, v in params.items()})
        except LoginError as exc:
            return web.Response(status=400, text=f"bad authorization request: {exc}")
        if request.method == "GET":
            return web.Response(text=login_page(req), content_type="text/html")
        extra = str(params.get("extra_groups", "")).split(",")
        groups = [str(g) for g in params.getall("groups", [])] + [g.strip() for g in extra]
        try:
            code = self._codes.issue(req, str(params.get("sub", "")).strip(), groups)
        except LoginError as exc:
            return web.Response(status=400, text=login_page(req, error=str(exc)), content_type="text/html")
        raise web.HTTPSeeOther(redirect_with(req["redirect_uri"], code=code, state=req["state"]))

    async def _exchange_code(self, request: web.Request) -> web.Response:
        """RFC 6749 section 4.1.3 with PKCE: the code and its verifier for an ID token."""
        form = await request.post()
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        client_id = str(form.get("client_id", ""))
        basic = request.headers.get("Authorization", "")
        if not client_id and basic.startswith("Basic "):
            client_id = base64.b64decode(basic[6:]).decode(errors="replace").partition(":")[0]
        try:
            grant = self._codes.redeem(
                str(form.get("code", "")),
                client_id,
                str(form.get("redirect_uri", "")),
                str(form.get("code_verifier", "")),
            )
        except LoginError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        claims = {"nonce": grant.nonce} if grant.nonce else {}
        token = self.mint(grant.sub, grant.groups, claims, lifetime=ID_TOKEN_LIFETIME, audience=grant.client_id)
        return web.json_response(
            {"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": ID_TOKEN_LIFETIME},
            headers={"Cache-Control": "no-store"},
        )


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


async def _token_fields(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        groups = body.get("groups", [])
        groups = [groups] if isinstance(groups, str) else groups
        claims = body.get("claims") or {}
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("groups must be a list of strings")
        if not isinstance(claims, dict):
            raise ValueError("claims must be an object")
        sub, lifetime, audience = body.get("sub"), body.get("lifetime", 3600), body.get("audience")
    else:
        form = await request.post()
        groups = [str(g) for g in form.getall("groups", [])]
        claims = {}
        for item in form.getall("claim", []):
            name, sep, value = str(item).partition("=")
            if not sep or not name:
                raise ValueError(f"claim {item!r} is not NAME=VALUE")
            claims[name] = value
        sub, lifetime, audience = form.get("sub"), form.get("lifetime", "3600"), form.get("audience")
    if not isinstance(sub, str) or not sub:
        raise ValueError("sub is required")
    seconds = parse_duration(lifetime if not isinstance(lifetime, str) or not lifetime.isdigit() else int(lifetime))
    if not 0 < seconds <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be between 1s and {MAX_LIFETIME}s")
    if audience is not None and not isinstance(audience, str):
        raise ValueError("audience must be a string")
    return {"sub": sub, "groups": groups, "claims": claims, "lifetime": seconds, "audience": audience}
