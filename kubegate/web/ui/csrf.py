"""CSRF protection for every form that changes something: the session's own token in a hidden field,
plus the browser's word (Sec-Fetch-Site, Origin) that the form came from kubegate's own pages.

SameSite=Lax already keeps the session cookie off cross-site POSTs in current browsers; the token
covers older ones and same-site attackers (another app on a sibling host).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from aiohttp import web

from kubegate.web.ui.cookies import UISession

FIELD = "csrf_token"


class CSRFError(Exception):
    """The form did not come from this session's own page; the text says what to do."""


def check(request: web.Request, session: UISession, form_token: str | None, base_url: str | None = None) -> None:
    """Refuse unless the token matches and the browser says the form came from this origin
    (the request's own host, or the host of `base_url` behind a proxy that rewrites Host)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise CSRFError(f"the form was sent from another site ({site}); open kubegate's page and send it from there")
    origin = request.headers.get("Origin")
    hosts = {request.host, urlsplit(base_url).netloc if base_url else request.host}
    if origin is not None and urlsplit(origin).netloc not in hosts:
        raise CSRFError("the form was sent from another origin; open kubegate's page and send it from there")
    if not form_token or not secrets.compare_digest(form_token, session.csrf):
        raise CSRFError("the form has expired or was not made for this sign-in; reload the page and try again")
