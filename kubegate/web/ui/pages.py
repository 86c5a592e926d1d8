"""What every UI page shares: the UI's state, the signed-in viewer and its roles (checked on the server
for every request), the Jinja2 templates, and the security headers of an HTML answer."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from kubegate.config import Config
from kubegate.identity.model import Identity
from kubegate.recording.query import describe_target
from kubegate.web.auth import roles_of
from kubegate.web.ui.assets import Assets
from kubegate.web.ui.cookies import CookieCodec, UISession
from kubegate.web.ui.csrf import FIELD, CSRFError, check
from kubegate.web.ui.oidc import OIDCClient
from kubegate.web.ui.signouts import is_signed_out

if TYPE_CHECKING:
    from kubegate.app import Gateway

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
READERS = frozenset({"auditor", "admin"})
"""Sessions: auditors read, admins see everything."""
POLICY_READERS = frozenset({"auditor", "admin", "reviewer"})
NAV: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("approvals", "/ui/approvals", "Approvals", frozenset()),
    ("sessions", "/ui/sessions", "Sessions", READERS),
    ("policy", "/ui/policy", "Policy", POLICY_READERS),
    ("connections", "/ui/connections", "Connections", POLICY_READERS),
)
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _time(value: str | None) -> str:
    """'2025-01-31T12:00:00.123456Z' as '2025-01-31 12:00:00 UTC'."""
    if not value:
        return ""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    env.filters["target"] = describe_target
    return env


@dataclass(eq=False)
class UIState:
    gateway: Gateway
    config: Config
    codec: CookieCodec
    oidc: OIDCClient | None
    assets: Assets
    templates: jinja2.Environment

    def roles(self, identity: Identity) -> set[str]:
        approvals = self.gateway.approvals
        return roles_of(identity, self.config.identity, approvals.is_reviewer if approvals is not None else None)


UI: web.AppKey[UIState] = web.AppKey("kubegate-ui")


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person looking at a page, with the roles kubegate gives them right now."""

    session: UISession
    roles: frozenset[str]

    @property
    def identity(self) -> Identity:
        return self.session.identity


def render(
    request: web.Request, template: str, *, viewer: Viewer | None = None, status: int = 200, **context: Any
) -> web.Response:
    state = request.config_dict[UI]
    nav = [
        (key, href, label)
        for key, href, label, roles in NAV
        if viewer is not None and (not roles or roles & viewer.roles)
    ]
    html = state.templates.get_template(template).render(
        viewer=viewer,
        nav=nav,
        csrf_field=FIELD,
        csrf=viewer.session.csrf if viewer else "",
        assets_missing=state.assets.missing_message() if state.assets.missing else "",
        path=request.path,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def error_page(
    request: web.Request, status: int, title: str, message: str, viewer: Viewer | None = None
) -> web.Response:
    return render(request, "error.html", viewer=viewer, status=status, title=title, message=message)


def see_other(location: str) -> web.Response:
    """303: after a form, the browser GETs the next page, so a reload never repeats the form."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def safe_next(value: str | None) -> str:
    """Only a path inside the UI: a login must never redirect to another site."""
    if not value or not value.startswith("/ui/") or "//" in value or "\\" in value:
        return "/ui/approvals"
    return value


async def viewer_of(request: web.Request) -> Viewer | None:
    """The signed-in viewer: a valid session cookie that was not signed out (see signouts.py)."""
    state = request.config_dict[UI]
    session = state.codec.session(request)
    store = state.gateway.store
    if session is None or store is None or await is_signed_out(store, session):
        return None
    return Viewer(session, frozenset(state.roles(session.identity)))


PageHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(roles: frozenset[str] = frozenset(), *, form: bool = False) -> Callable[[PageHandler], Handler]:
    """A handler for signed-in viewers holding one of `roles` (any viewer when empty). With `form`, the
    request changes something: the form's CSRF token must be this session's."""

    def wrap(handler: PageHandler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            viewer = await viewer_of(request)
            if viewer is None:
                login = f"/ui/login?next={quote(request.path_qs if request.method == 'GET' else '/ui/approvals')}"
                if request.headers.get("HX-Request"):
                    return web.Response(status=200, headers={"HX-Redirect": login})
                if request.method != "GET":
                    return error_page(
                        request,
                        401,
                        "Signed out",
                        "Your sign-in has ended. Sign in again, then repeat what you were doing.",
                    )
                return see_other(login)
            if roles and not roles & viewer.roles:
                return error_page(
                    request,
                    403,
                    "Not for your roles",
                    f"{viewer.identity.username} may not open this page: it needs one of the roles "
                    f"{', '.join(sorted(roles))}. Ask a kubegate admin to add one of your groups to "
                    "identity.admin_groups or identity.auditor_groups (or a policy rule's reviewers).",
                    viewer,
                )
            if form:
                data = await request.post()
                token = data.get(FIELD)
                try:
                    check(
                        request,
                        viewer.session,
                        token if isinstance(token, str) else None,
                        request.config_dict[UI].config.ui.base_url,
                    )
                except CSRFError as exc:
                    return error_page(request, 403, "Form refused", str(exc), viewer)
            return await handler(request, viewer)

        return run

    return wrap
