"""The web UI's cookies: encrypted and authenticated by kubegate, never holding a token.

A session cookie carries the verified identity (user, groups, selected claims), its CSRF token and
its expiry, sealed with Fernet (AES-CBC + HMAC) under a key derived from the session secret; the
browser can neither read nor alter it. A login cookie carries the PKCE verifier, state and nonce of
one sign-in between the redirect to the issuer and the callback. Each kind is sealed for its own
purpose, so one cannot stand in for the other.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kubegate.identity.model import Identity

SESSION_COOKIE = "__Host-kubegate-session"
LOGIN_COOKIE = "__Host-kubegate-login"
LOGIN_LIFETIME = 600.0
MAX_COOKIE_BYTES = 4000
"""Browsers drop cookies over 4096 bytes; a session that big is refused with a message instead."""


class CookieTooLarge(ValueError):
    """An identity with so many groups or claims that its session does not fit in a cookie."""


def load_secret(configured: str | None, state_dir: Path) -> bytes:
    """The configured secret, else one kept in the state directory (made on first use, mode 0600)."""
    if configured:
        return configured.encode()
    path = state_dir / "ui-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True, slots=True)
class UISession:
    identity: Identity
    csrf: str
    expires_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"identity": self.identity.as_dict(), "csrf": self.csrf, "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UISession:
        i = data["identity"]
        identity = Identity(
            issuer=i["issuer"],
            subject=i["subject"],
            username=i["username"],
            groups=tuple(i["groups"]),
            claims=dict(i["claims"]),
            expires_at=i["expires_at"],
        )
        return cls(identity, str(data["csrf"]), float(data["expires_at"]))


@dataclass(frozen=True, slots=True)
class LoginState:
    state: str
    nonce: str
    verifier: str
    next: str


class CookieCodec:
    """Seals and opens the UI's cookies; `secure=False` only for unit tests over plain HTTP."""

    def __init__(self, secret: bytes, *, session_lifetime: float, secure: bool = True) -> None:
        if len(secret) < 32:
            raise ValueError("the UI session secret must be at least 32 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kubegate web ui cookies").derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self.session_lifetime = session_lifetime
        self.secure = secure

    def _seal(self, purpose: str, payload: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps({"purpose": purpose, **payload})).decode()

    def _open(self, purpose: str, value: str | None, ttl: float) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            data = orjson.loads(self._fernet.decrypt(value.encode(), ttl=int(ttl)))
        except (InvalidToken, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and data.get("purpose") == purpose else None

    def _set(self, response: web.StreamResponse, name: str, value: str, max_age: float) -> None:
        response.set_cookie(
            name, value, max_age=max(int(max_age), 0), path="/", secure=self.secure, httponly=True, samesite="Lax"
        )

    # -- sessions -------------------------------------------------------------------------------------

    def new_session(self, identity: Identity, now: float | None = None) -> UISession:
        """A session that ends with the ID token or after the configured lifetime, whichever is first."""
        now = time.time() if now is None else now
        until = now + self.session_lifetime
        if identity.expires_at:
            until = min(until, identity.expires_at)
        return UISession(identity, secrets.token_urlsafe(32), until)

    def set_session(self, response: web.StreamResponse, session: UISession, now: float | None = None) -> None:
        value = self._seal("session", session.as_dict())
        if len(value) + len(SESSION_COOKIE) > MAX_COOKIE_BYTES:
            raise CookieTooLarge(
                f"{session.identity.username} has too many groups or claims for a session "
                "cookie; ask the identity provider to send fewer groups to kubegate"
            )
        now = time.time() if now is None else now
        self._set(response, SESSION_COOKIE, value, session.expires_at - now)

    def session(self, request: web.Request, now: float | None = None) -> UISession | None:
        data = self._open("session", request.cookies.get(SESSION_COOKIE), self.session_lifetime)
        if data is None:
            return None
        try:
            session = UISession.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires_at > (time.time() if now is None else now) else None

    def clear_session(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True, samesite="Lax")

    # -- sign-in in progress ----------------------------------------------------------------------------

    def set_login(self, response: web.StreamResponse, login: LoginState) -> None:
        self._set(
            response,
            LOGIN_COOKIE,
            self._seal(
                "login", {"state": login.state, "nonce": login.nonce, "verifier": login.verifier, "next": login.next}
            ),
            LOGIN_LIFETIME,
        )

    def login(self, request: web.Request) -> LoginState | None:
        data = self._open("login", request.cookies.get(LOGIN_COOKIE), LOGIN_LIFETIME)
        if data is None:
            return None
        try:
            return LoginState(str(data["state"]), str(data["nonce"]), str(data["verifier"]), str(data["next"]))
        except KeyError:
            return None

    def clear_login(self, response: web.StreamResponse) -> None:
        response.del_cookie(LOGIN_COOKIE, path="/", secure=self.secure, httponly=True, samesite="Lax")
