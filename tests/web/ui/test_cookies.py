"""Session and login cookies: sealed, bounded in time, for one purpose each, never holding a token."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from kubegate.identity.model import Identity
from kubegate.web.ui.cookies import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CookieCodec,
    CookieTooLarge,
    LoginState,
    load_secret,
)

SECRET = b"s" * 40
RITA = Identity(
    issuer="https://idp",
    subject="rita",
    username="idp#rita",
    groups=("platform-oncall",),
    claims={"actor": "rita"},
    expires_at=2_000_000_000.0,
)


def _cookie_request(response: web.StreamResponse, name: str) -> web.Request:
    return make_mocked_request("GET", "/", headers={"Cookie": f"{name}={response.cookies[name].value}"})


def test_a_session_round_trips_and_its_cookie_is_secure_httponly_lax() -> None:
    codec = CookieCodec(SECRET, session_lifetime=3600)
    session = codec.new_session(RITA, now=1_000.0)
    assert session.expires_at == 4_600.0 and len(session.csrf) >= 43
    response = web.Response()
    codec.set_session(response, session, now=1_000.0)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert morsel["max-age"] == "3600"
    assert "rita" not in morsel.value and "platform-oncall" not in morsel.value  # sealed, not just signed
    opened = codec.session(_cookie_request(response, SESSION_COOKIE), now=1_000.0)
    assert opened == session


def test_a_session_ends_with_the_id_token() -> None:
    codec = CookieCodec(SECRET, session_lifetime=8 * 3600)
    session = codec.new_session(RITA, now=RITA.expires_at - 600)
    assert session.expires_at == RITA.expires_at
    response = web.Response()
    codec.set_session(response, session, now=RITA.expires_at - 600)
    assert codec.session(_cookie_request(response, SESSION_COOKIE), now=RITA.expires_at + 1) is None


def test_tampered_foreign_and_misused_cookies_are_ignored() -> None:
    codec = CookieCodec(SECRET, session_lifetime=3600)
    response = web.Response()
    codec.set_session(response, codec.new_session(RITA))
    value = response.cookies[SESSION_COOKIE].value
    tampered = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    assert codec.session(make_mocked_request("GET", "/", headers={"Cookie": f"{SESSION_COOKIE}={tampered}"})) is None
    other = CookieCodec(b"o" * 40, session_lifetime=3600)
    assert other.session(_cookie_request(response, SESSION_COOKIE)) is None
    login = web.Response()
    codec.set_login(login, LoginState("st", "nonce", "v" * 43, "/ui/sessions"))
    sealed_for_login = login.cookies[LOGIN_COOKIE].value
    as_session = make_mocked_request("GET", "/", headers={"Cookie": f"{SESSION_COOKIE}={sealed_for_login}"})
    assert codec.session(as_session) is None  # sealed for another purpose
    assert codec.login(_cookie_request(login, LOGIN_COOKIE)) == LoginState("st", "nonce", "v" * 43, "/ui/sessions")


def test_clearing_expires_the_cookies() -> None:
    codec = CookieCodec(SECRET, session_lifetime=3600)
    response = web.Response()
    codec.clear_session(response)
    codec.clear_login(response)
    assert response.cookies[SESSION_COOKIE]["max-age"] == "0"
    assert response.cookies[LOGIN_COOKIE]["max-age"] == "0"


def test_an_identity_too_big_for_a_cookie_is_refused_with_a_reason() -> None:
    codec = CookieCodec(SECRET, session_lifetime=3600)
    crowded = Identity(
        issuer="https://idp", subject="x", username="idp#x", groups=tuple(f"group-number-{i}" for i in range(300))
    )
    with pytest.raises(CookieTooLarge, match="too many groups or claims"):
        codec.set_session(web.Response(), codec.new_session(crowded))


def test_the_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path)
    assert len(first) == 64 and load_secret(None, tmp_path) == first
    assert stat.S_IMODE((tmp_path / "ui-session.key").stat().st_mode) == 0o600
    assert load_secret("c" * 32, tmp_path) == b"c" * 32
    with pytest.raises(ValueError, match="at least 32"):
        CookieCodec(b"short", session_lifetime=60)
