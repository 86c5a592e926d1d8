"""Sign-in and sign-out: the authorization code flow with PKCE against the configured issuer."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.store.engine import StoreError
from kubegate.web.ui.cookies import CookieTooLarge, LoginState
from kubegate.web.ui.oidc import SignInError
from kubegate.web.ui.pages import UI, Viewer, error_page, page, render, safe_next, see_other, viewer_of
from kubegate.web.ui.signouts import sign_out

log = logging.getLogger(__name__)


def redirect_uri(request: web.Request) -> str:
    state = request.config_dict[UI]
    base = state.config.ui.base_url or state.gateway.base_url  # never the Host header: the client writes it
    return base.rstrip("/") + "/ui/auth/callback"


async def login(request: web.Request) -> web.StreamResponse:
    """The sign-in page: one button to the identity provider (already signed in: straight on)."""
    target = safe_next(request.query.get("next"))
    if await viewer_of(request) is not None:
        return see_other(target)
    state = request.config_dict[UI]
    issuer = state.oidc.issuer.url if state.oidc else ""
    return render(
        request, "login.html", title="Sign in", next=target, issuer=issuer, signed_out="signed_out" in request.query
    )


async def start(request: web.Request) -> web.StreamResponse:
    """Remember state, nonce and the PKCE verifier in a sealed cookie, then go to the issuer."""
    state = request.config_dict[UI]
    if state.oidc is None:
        return error_page(
            request,
            503,
            "Sign-in is not configured",
            "kubegate has no identity issuer to sign in with: add one under identity.issuers "
            "(and ui.issuer if there are several).",
        )
    login_state = LoginState(
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(48),
        safe_next(request.query.get("next")),
    )
    try:
        url = await state.oidc.authorization_url(
            redirect_uri(request), login_state.state, login_state.nonce, login_state.verifier
        )
    except SignInError as exc:
        return error_page(request, 503, "Sign-in is unavailable", str(exc))
    response = see_other(url)
    state.codec.set_login(response, login_state)
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    state = request.config_dict[UI]
    login_state = state.codec.login(request)
    if state.oidc is None or login_state is None:
        return error_page(
            request,
            400,
            "Sign-in expired",
            "This sign-in was not started here or took longer than 10 minutes. Sign in again.",
        )
    if "error" in request.query:
        reason = request.query.get("error_description") or request.query["error"]
        return error_page(
            request,
            401,
            "Sign-in refused",
            f"The identity provider refused the sign-in: "
            f"{reason[:300]}. Sign in again, or ask your identity provider's admin.",
        )
    if not secrets.compare_digest(request.query.get("state", ""), login_state.state):
        return error_page(
            request,
            400,
            "Sign-in refused",
            "The answer from the identity provider does not belong to this sign-in (state differs). Sign in again.",
        )
    try:
        identity = await state.oidc.exchange(
            request.query.get("code", ""), redirect_uri(request), login_state.verifier, login_state.nonce
        )
    except SignInError as exc:
        log.warning("web UI sign-in failed: %s", exc)
        return error_page(request, 401, "Sign-in failed", str(exc))
    response = see_other(login_state.next)
    try:
        state.codec.set_session(response, state.codec.new_session(identity))
    except CookieTooLarge as exc:
        return error_page(request, 400, "Sign-in failed", str(exc))
    state.codec.clear_login(response)
    log.info("web UI sign-in: %s", identity.username)
    return response


@page(form=True)
async def logout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Sign out here and on every replica: a copy of the cookie stops working too."""
    store = request.config_dict[UI].gateway.store
    try:
        if store is not None:
            await sign_out(store, viewer.session)
    except (StoreError, SQLAlchemyError) as exc:
        response = error_page(
            request,
            503,
            "Not signed out everywhere",
            f"kubegate could not record the sign-out in its store ({exc}), so a copy of this "
            "session's cookie would still work until it expires. This browser is signed out; "
            "tell a kubegate operator.",
        )
        request.config_dict[UI].codec.clear_session(response)
        return response
    response = see_other("/ui/login?signed_out=1")
    request.config_dict[UI].codec.clear_session(response)
    log.info("web UI sign-out: %s", viewer.identity.username)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login)
    app.router.add_get("/auth/start", start)
    app.router.add_get("/auth/callback", callback)
    app.router.add_post("/logout", logout)
