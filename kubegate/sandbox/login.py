"""The development issuer's login page: OAuth 2.0 authorization codes with PKCE, for the web UI.

Anyone at the page picks a user name and groups, as with `POST /token`; what the flow adds is the
real protocol a browser sign-in uses (authorize, redirect with a code, exchange with the verifier),
so the UI is tested against the same steps an outside identity provider takes.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2

from kubegate.web.ui.pkce import verifier_matches

CODE_LIFETIME = 60.0
ID_TOKEN_LIFETIME = 3600
SUGGESTED_GROUPS = ("developers", "platform-oncall", "auditors", "kubegate-admins")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")
PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "scope",
)
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class LoginError(ValueError):
    """An authorization request or code exchange the issuer refuses; the text says why."""


@dataclass(frozen=True, slots=True)
class CodeGrant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    sub: str
    groups: tuple[str, ...]
    expires: float


def authorization_request(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters of a valid authorization request; PKCE with S256 is required."""
    req = {name: str(params.get(name, "")) for name in PARAMS}
    if req["response_type"] != "code":
        raise LoginError("response_type must be code: this issuer supports the authorization code flow")
    if not req["client_id"]:
        raise LoginError("client_id is required")
    target = urlsplit(req["redirect_uri"])
    if target.scheme not in ("https", "http") or not target.netloc or target.fragment:
        raise LoginError("redirect_uri must be an absolute http(s) URL without a fragment")
    if req["code_challenge_method"] != "S256" or not req["code_challenge"]:
        raise LoginError("PKCE is required: send code_challenge with code_challenge_method=S256")
    return req


def redirect_with(redirect_uri: str, **params: str) -> str:
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)


@dataclass
class AuthorizationCodes:
    """Codes issued by the login page, each redeemable once within CODE_LIFETIME."""

    clock: Callable[[], float] = time.monotonic
    _codes: dict[str, CodeGrant] = field(default_factory=dict)

    def issue(self, req: Mapping[str, str], sub: str, groups: Iterable[str]) -> str:
        if not NAME.match(sub):
            raise LoginError("the user name must be letters, digits and . _ @ - (at most 63)")
        chosen = tuple(dict.fromkeys(g for g in groups if g))
        bad = [g for g in chosen if not NAME.match(g)]
        if bad:
            raise LoginError(f"group names must be letters, digits and . _ @ -: {', '.join(bad)}")
        now = self.clock()
        self._codes = {c: g for c, g in self._codes.items() if g.expires > now}
        code = secrets.token_urlsafe(32)
        self._codes[code] = CodeGrant(
            req["client_id"], req["redirect_uri"], req["code_challenge"], req["nonce"], sub, chosen, now + CODE_LIFETIME
        )
        return code

    def redeem(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> CodeGrant:
        """The grant behind a code; the code is spent whatever the outcome."""
        grant = self._codes.pop(code, None)
        if grant is None or grant.expires <= self.clock():
            raise LoginError("the code is unknown, used or expired")
        if (client_id, redirect_uri) != (grant.client_id, grant.redirect_uri):
            raise LoginError("client_id and redirect_uri must be those of the authorization request")
        if not verifier_matches(verifier, grant.challenge):
            raise LoginError("code_verifier does not match the code_challenge")
        return grant


def login_page(req: Mapping[str, str], *, error: str = "", groups: Iterable[str] = SUGGESTED_GROUPS) -> str:
    return _templates.get_template("login.html").render(req=req, params=PARAMS, groups=tuple(groups), error=error)
