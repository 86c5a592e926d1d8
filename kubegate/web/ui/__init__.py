"""kubegate's web UI at /ui: sign-in with OpenID Connect (authorization code + PKCE), the approvals
inbox, recorded sessions and their replay, the policy with its explain form, and connection health.

Pages are rendered on the server with Jinja2; htmx (polling) and asciinema-player come from the npm
registry. Every page checks the viewer's roles on the server; every form that changes something
carries the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from kubegate.config import Config
from kubegate.web.ui import approvals, auth, connections, policy, sessions
from kubegate.web.ui.assets import Assets
from kubegate.web.ui.cookies import CookieCodec, load_secret
from kubegate.web.ui.oidc import OIDCClient
from kubegate.web.ui.pages import SECURITY_HEADERS, UI, UIState, make_templates, see_other

if TYPE_CHECKING:
    from kubegate.app import Gateway


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in exc.headers})
        raise
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def build_ui(gateway: Gateway, config: Config, *, secure_cookies: bool = True) -> web.Application:
    """The /ui sub-application; `secure_cookies=False` only for unit tests over plain HTTP."""
    ui_config = config.ui
    issuers = {i.url: i for i in config.identity.issuers}
    issuer = issuers.get((ui_config.issuer or "").rstrip("/")) or next(iter(issuers.values()), None)
    codec = CookieCodec(
        load_secret(ui_config.secret, config.state_dir),
        session_lifetime=ui_config.session_lifetime,
        secure=secure_cookies,
    )
    oidc = OIDCClient(ui_config, issuer, gateway.verifier) if issuer is not None else None
    state = UIState(
        gateway=gateway,
        config=config,
        codec=codec,
        oidc=oidc,
        assets=Assets(ui_config.vendor_dir),
        templates=make_templates(),
    )
    app = web.Application(middlewares=[security_headers])
    app[UI] = state

    async def home(request: web.Request) -> web.StreamResponse:
        return see_other("/ui/approvals")

    app.router.add_get("/", home)
    for module in (auth, approvals, sessions, policy, connections):
        module.add_routes(app)
    state.assets.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        if oidc is not None:
            await oidc.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def setup_ui(app: web.Application, gateway: Gateway, config: Config) -> None:
    """Mount the UI at /ui (and send /ui itself there), unless `ui.enabled` is false."""
    if not config.ui.enabled:
        return

    async def to_ui(request: web.Request) -> web.StreamResponse:
        return see_other("/ui/")

    app.router.add_get("/ui", to_ui)
    app.add_subapp("/ui", build_ui(gateway, config))
