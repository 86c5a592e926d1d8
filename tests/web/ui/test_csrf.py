"""The CSRF check: the session's token, and the browser's word that the form is from this origin."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from kubegate.identity.model import Identity
from kubegate.web.ui.cookies import UISession
from kubegate.web.ui.csrf import CSRFError, check

SESSION = UISession(Identity(issuer="https://idp", subject="bob", username="idp#bob"), "token-1", 2e9)


def _request(**headers: str):  # type: ignore[no-untyped-def]
    return make_mocked_request("POST", "/ui/logout", headers={"Host": "kubegate.example:8443", **headers})


def test_a_form_from_this_origin_with_the_token_passes() -> None:
    check(_request(), SESSION, "token-1")
    check(_request(**{"Sec-Fetch-Site": "same-origin", "Origin": "https://kubegate.example:8443"}), SESSION, "token-1")
    check(_request(**{"Sec-Fetch-Site": "none"}), SESSION, "token-1")  # typed into the address bar
    behind_proxy = _request(Origin="https://gate.example.com")
    check(behind_proxy, SESSION, "token-1", base_url="https://gate.example.com")


@pytest.mark.parametrize(
    ("headers", "token", "message"),
    [
        ({}, None, "has expired or was not made for this sign-in"),
        ({}, "token-2", "has expired or was not made for this sign-in"),
        ({"Sec-Fetch-Site": "cross-site"}, "token-1", r"from another site \(cross-site\)"),
        ({"Sec-Fetch-Site": "same-site"}, "token-1", r"from another site \(same-site\)"),
        ({"Origin": "https://evil.example"}, "token-1", "from another origin"),
        ({"Origin": "null"}, "token-1", "from another origin"),
    ],
)
def test_anything_else_is_refused(headers: dict[str, str], token: str | None, message: str) -> None:
    with pytest.raises(CSRFError, match=message):
        check(_request(**headers), SESSION, token)
