"""Sign-in by OpenID Connect authorization code with PKCE, against the real development issuer and the
gateway's own token Verifier: state, nonce and the verifier bind the answer to the sign-in that began it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.service import ApprovalService
from kubegate.config import Config, UIConfig
from kubegate.identity.config import IdentityConfig, IssuerConfig
from kubegate.identity.oidc import Verifier
from kubegate.sandbox.issuer import DevIssuer
from kubegate.store.engine import Store
from kubegate.web.ui import build_ui
from kubegate.web.ui.cookies import LOGIN_COOKIE, SESSION_COOKIE
from kubegate.web.ui.pages import safe_next
from tests.approvals.builders import engine
from tests.web.ui.conftest import StandInGateway

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[DevIssuer]:
    async with DevIssuer(tmp_path / "issuer", audience="kubegate") as dev:
        yield dev


@pytest.fixture
async def make_client(tmp_path: Path, issuer: DevIssuer) -> AsyncIterator[Callable[..., object]]:
    opened: list[tuple[Client, Verifier, ApprovalService, Store]] = []

    async def make(client_id: str = "kubegate") -> Client:
        identity = IdentityConfig(
            issuers=[IssuerConfig(url=issuer.url, audience="kubegate", ca_file=issuer.ca_file, username_prefix="dev:")],
            auditor_groups=["auditors"],
        )
        config = Config(
            state_dir=tmp_path / f"state-{len(opened)}",
            identity=identity,
            ui=UIConfig(client_id=client_id, vendor_dir=tmp_path / "none"),
        )
        verifier = Verifier(identity)
        store = await Store.open(f"sqlite:///{tmp_path / f'db-{len(opened)}.sqlite'}")
        service = ApprovalService(store, None, engine(), ApprovalsConfig())
        gateway = StandInGateway(store=store, approvals=service, policy=engine(), verifier=verifier)
        root = web.Application()
        root.add_subapp("/ui", build_ui(gateway, config, secure_cookies=False))  # type: ignore[arg-type]
        client: Client = TestClient(TestServer(root))
        await client.start_server()
        opened.append((client, verifier, service, store))
        return client

    yield make
    for client, verifier, service, store in opened:
        await client.close()
        await verifier.close()
        await service.close()
        await store.close()


async def _login_at_issuer(issuer: DevIssuer, authorize_url: str, sub: str, groups: list[str]) -> str:
    """What the person does on the issuer's page; returns where the issuer sends the browser back."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(issuer.ca_file)))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(
            f"{issuer.url}/authorize", data={**params, "sub": sub, "groups": groups}, allow_redirects=False
        ) as response,
    ):
        assert response.status == 303
        return response.headers["Location"]


async def _start(client: Client, next_path: str = "/ui/policy", headers: dict[str, str] | None = None) -> str:
    response = await client.get("/ui/auth/start", params={"next": next_path}, allow_redirects=False, headers=headers)
    assert response.status == 303
    return response.headers["Location"]


async def test_the_redirect_uri_never_comes_from_the_host_header(make_client: Callable) -> None:
    client: Client = await make_client()
    for host in ("attacker.example", "attacker.example:443", "kubegate.example.com@attacker.example"):
        authorize = await _start(client, headers={"Host": host, "X-Forwarded-Host": "attacker.example"})
        assert parse_qs(urlsplit(authorize).query)["redirect_uri"] == ["https://kubegate.example.com/ui/auth/callback"]
        assert "attacker" not in authorize


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_sign_in_with_pkce_lands_on_the_page_asked_for(issuer: DevIssuer, make_client: Callable) -> None:
    client: Client = await make_client()
    authorize = await _start(client, "/ui/policy")
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{issuer.url}/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == ["kubegate"] and query["scope"] == ["openid profile email"]
    assert query["redirect_uri"] == ["https://kubegate.example.com/ui/auth/callback"]
    back = await _login_at_issuer(issuer, authorize, "audrey", ["auditors"])
    assert back.startswith(query["redirect_uri"][0])
    response = await client.get(_local(back), allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/policy"
    assert response.cookies[SESSION_COOKIE].value
    assert response.cookies[LOGIN_COOKIE]["max-age"] == "0"  # the sign-in is over
    page = await client.get("/ui/policy", allow_redirects=False)
    assert page.status == 200 and "dev:audrey" in await page.text()
    replayed = await client.get(_local(back), allow_redirects=False)  # the code and the login are spent
    assert replayed.status == 400 and "Sign-in expired" in await replayed.text()


async def test_an_answer_for_another_sign_in_is_refused(issuer: DevIssuer, make_client: Callable) -> None:
    client: Client = await make_client()
    authorize = await _start(client)
    back = await _login_at_issuer(issuer, authorize, "audrey", ["auditors"])
    forged = back.replace("state=", "state=x")
    response = await client.get(_local(forged), allow_redirects=False)
    assert response.status == 400 and "state differs" in await response.text()
    stranger: Client = await make_client()  # a browser that never started this sign-in
    response = await stranger.get(_local(back), allow_redirects=False)
    assert response.status == 400 and "Sign-in expired" in await response.text()


async def test_a_sign_in_planted_from_another_browser_is_refused(issuer: DevIssuer, make_client: Callable) -> None:
    """Login CSRF: an attacker's own callback URL opened in the victim's browser, mid-sign-in."""
    attacker: Client = await make_client()
    planted = await _login_at_issuer(issuer, await _start(attacker), "mallory", ["kubegate-admins"])
    victim: Client = await make_client()
    await _start(victim)
    response = await victim.get(_local(planted), allow_redirects=False)
    assert response.status == 400 and "state differs" in await response.text()
    assert SESSION_COOKIE not in response.cookies


async def test_the_issuers_refusal_and_a_wrong_audience_are_explained(issuer: DevIssuer, make_client: Callable) -> None:
    client: Client = await make_client()
    await _start(client)
    response = await client.get(
        "/ui/auth/callback", params={"error": "access_denied", "error_description": "the user said no"}
    )
    assert response.status == 401 and "the user said no" in await response.text()
    other: Client = await make_client(client_id="kubegate-ui")
    back = await _login_at_issuer(issuer, await _start(other), "audrey", ["auditors"])
    response = await other.get(_local(back), allow_redirects=False)
    text = await response.text()
    assert response.status == 401 and "must include the UI&#39;s client id &#39;kubegate-ui&#39;" in text
    assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/ui/sessions?user=x", "/ui/sessions?user=x"),
        ("https://evil.example/", "/ui/approvals"),
        ("//evil.example/ui/", "/ui/approvals"),
        ("/ui//evil.example", "/ui/approvals"),
        ("/api/v1/requests", "/ui/approvals"),
        ("/ui/\\evil", "/ui/approvals"),
        (None, "/ui/approvals"),
    ],
)
def test_sign_in_only_returns_to_pages_of_the_ui(asked: str | None, kept: str) -> None:
    assert safe_next(asked) == kept
