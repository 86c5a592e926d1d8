"""Every page checks the viewer's roles on the server; every form that changes something needs the
session's CSRF token; decisions go through the approval service with its rules."""

from __future__ import annotations

import pytest

from tests.approvals.builders import AGENT, BOB, CAROL, DAVE, ONCALL_AGENT
from tests.web.ui.conftest import ADMIN, AUDITOR, UIHarness, csrf_of

PAGES = (
    "/ui/approvals",
    "/ui/sessions",
    "/ui/policy",
    "/ui/connections",
    "/ui/sessions/x/cast",
    "/ui/sessions/x/export.jsonl",
    "/ui/sessions/x",
    "/ui/approvals/pending",
)


@pytest.mark.parametrize("path", PAGES)
async def test_signed_out_viewers_are_sent_to_sign_in(ui: UIHarness, path: str) -> None:
    response = await ui.client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/ui/login?next=/ui/")
    polled = await ui.client.get(path, headers={"HX-Request": "true"}, allow_redirects=False)
    assert polled.headers["HX-Redirect"].startswith("/ui/login?next=")


async def test_a_form_sent_while_signed_out_is_refused(ui: UIHarness) -> None:
    request_id = await ui.ask()
    response = await ui.client.post(f"/ui/approvals/{request_id}/decide", data={"decision": "approve"})
    assert response.status == 401
    assert (await ui.service.get(request_id)).state == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        (DAVE, {"/ui/approvals"}),
        (BOB, {"/ui/approvals", "/ui/policy", "/ui/connections"}),
        (AUDITOR, {"/ui/approvals", "/ui/policy", "/ui/connections", "/ui/sessions"}),
        (ADMIN, {"/ui/approvals", "/ui/policy", "/ui/connections", "/ui/sessions"}),
    ],
)
async def test_each_page_answers_only_its_roles(ui: UIHarness, identity: object, allowed: set[str]) -> None:
    headers = ui.sign_in(identity)  # type: ignore[arg-type]
    for path in (
        "/ui/approvals",
        "/ui/policy",
        "/ui/connections",
        "/ui/sessions",
        "/ui/sessions/x/cast",
        "/ui/sessions/x/export.jsonl",
    ):
        status, html = await ui.page(path, headers)
        if path in allowed:
            assert status == 200, (path, html)
        elif path.startswith("/ui/sessions") and "/ui/sessions" in allowed:
            assert status in (404, 503), path  # no such session (the stand-in has no recording)
        else:
            assert status == 403, path
            assert "Not for your roles" in html and "it needs one of the roles" in html
        if status == 200:
            nav = html.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
            assert ('href="/ui/sessions"' in nav) == ("/ui/sessions" in allowed)


async def test_pages_carry_security_headers_and_are_not_cached(ui: UIHarness) -> None:
    response = await ui.client.get("/ui/approvals", headers=ui.sign_in(BOB))
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    login = await ui.client.get("/ui/login")
    assert "X-Frame-Options" in login.headers


async def test_a_reviewer_sees_the_request_with_its_ci_run_and_decides_it(ui: UIHarness) -> None:
    request_id = await ui.ask()
    headers = ui.sign_in(BOB)
    status, html = await ui.page("/ui/approvals", headers)
    assert status == 200
    assert f'id="request-{request_id}"' in html
    assert 'href="https://github.com/acme/app/actions/runs/42"' in html
    assert "GET /api/v1/namespaces/prod/pods" in html and ">Approve</button>" in html
    response = await ui.client.post(
        f"/ui/approvals/{request_id}/decide",
        headers=headers,
        allow_redirects=False,
        data={"decision": "approve", "reason": "read-only", "csrf_token": csrf_of(html)},
    )
    assert response.status == 303 and response.headers["Location"] == f"/ui/approvals?decided={request_id}"
    decided = await ui.service.get(request_id)
    assert decided is not None and decided.state == "approved" and decided.decided_by == BOB.username
    status, html = await ui.page(response.headers["Location"], headers)
    assert "is <strong>approved</strong> by idp#bob" in html


async def test_a_denial_needs_a_reason(ui: UIHarness) -> None:
    request_id = await ui.ask()
    headers = ui.sign_in(CAROL)
    _, html = await ui.page("/ui/approvals", headers)
    response = await ui.client.post(
        f"/ui/approvals/{request_id}/decide",
        headers=headers,
        data={"decision": "deny", "reason": " ", "csrf_token": csrf_of(html)},
    )
    assert response.status == 400 and "a denial needs a reason" in await response.text()
    assert (await ui.service.get(request_id)).state == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["missing", "other-session", "cross-site", "other-origin"])
async def test_a_decision_without_this_sessions_csrf_token_is_refused(ui: UIHarness, bad: str) -> None:
    request_id = await ui.ask()
    headers = ui.sign_in(BOB)
    _, html = await ui.page("/ui/approvals", headers)
    data = {"decision": "approve", "csrf_token": csrf_of(html)}
    if bad == "missing":
        del data["csrf_token"]
    elif bad == "other-session":
        _, other = await ui.page("/ui/approvals", ui.sign_in(BOB))  # the same person, another sign-in
        data["csrf_token"] = csrf_of(other)
    elif bad == "cross-site":
        headers = {**headers, "Sec-Fetch-Site": "cross-site"}
    else:
        headers = {**headers, "Origin": "https://evil.example"}
    response = await ui.client.post(f"/ui/approvals/{request_id}/decide", headers=headers, data=data)
    assert response.status == 403 and "Form refused" in await response.text()
    assert (await ui.service.get(request_id)).state == "pending"  # type: ignore[union-attr]


async def test_nobody_decides_their_own_request_and_others_see_no_buttons(ui: UIHarness) -> None:
    own_id = await ui.ask(identity=ONCALL_AGENT)  # a requester in the reviewers' group
    headers = ui.sign_in(ONCALL_AGENT)
    _, html = await ui.page("/ui/approvals", headers)
    assert f'id="request-{own_id}"' in html and ">Approve</button>" not in html
    assert "This is your own request" in html
    response = await ui.client.post(
        f"/ui/approvals/{own_id}/decide", headers=headers, data={"decision": "approve", "csrf_token": csrf_of(html)}
    )
    assert response.status == 403 and "nobody reviews their own request" in await response.text()
    _, html = await ui.page("/ui/approvals", ui.sign_in(AUDITOR))  # sees every request, decides none
    assert f'id="request-{own_id}"' in html and ">Approve</button>" not in html
    assert "Only its reviewers decide this request: platform-oncall" in html
    _, html = await ui.page("/ui/approvals", ui.sign_in(DAVE))  # neither reviewer nor requester
    assert f'id="request-{own_id}"' not in html


async def test_the_requester_sees_its_own_request(ui: UIHarness) -> None:
    request_id = await ui.ask(identity=AGENT)
    _, html = await ui.page("/ui/approvals", ui.sign_in(AGENT))
    assert f'id="request-{request_id}"' in html and "This is your own request" in html


async def test_the_inbox_fragment_answers_204_until_something_changes(ui: UIHarness) -> None:
    headers = ui.sign_in(BOB)
    _, html = await ui.page("/ui/approvals", headers)
    version = html.split('hx-get="/ui/approvals/pending?v=', 1)[1].split('"', 1)[0]
    status, _ = await ui.page(f"/ui/approvals/pending?v={version}", headers)
    assert status == 204
    request_id = await ui.ask()
    status, fragment = await ui.page(f"/ui/approvals/pending?v={version}", headers)
    assert status == 200 and f'id="request-{request_id}"' in fragment and "<html" not in fragment
    assert f'id="reason-{request_id}"' in fragment and 'hx-preserve="true"' in fragment


async def test_sign_out_needs_the_csrf_token_and_clears_the_cookie(ui: UIHarness) -> None:
    headers = ui.sign_in(BOB)
    _, html = await ui.page("/ui/approvals", headers)
    refused = await ui.client.post("/ui/logout", headers=headers, data={})
    assert refused.status == 403
    response = await ui.client.post(
        "/ui/logout", headers=headers, data={"csrf_token": csrf_of(html)}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/ui/login?signed_out=1"
    cleared = response.cookies["__Host-kubegate-session"]
    assert cleared.value == "" and cleared["max-age"] == "0"


async def test_a_copied_cookie_stops_working_at_sign_out(ui: UIHarness) -> None:
    """The cookie is sealed and valid until it expires; sign-out is recorded in the store, so a copy
    kept elsewhere (another tab, a stolen cookie, another replica) is signed out too."""
    headers = ui.sign_in(BOB)
    other = ui.sign_in(BOB)
    _, html = await ui.page("/ui/approvals", headers)
    response = await ui.client.post(
        "/ui/logout", headers=headers, data={"csrf_token": csrf_of(html)}, allow_redirects=False
    )
    assert response.status == 303
    replay = await ui.client.get("/ui/approvals", headers=headers, allow_redirects=False)
    assert replay.status == 303 and replay.headers["Location"].startswith("/ui/login")
    status, _ = await ui.page("/ui/approvals", other)  # another sign-in of the same person is its own session
    assert status == 200


async def test_policy_explain_shows_the_matching_rules(ui: UIHarness) -> None:
    headers = ui.sign_in(AUDITOR)
    status, html = await ui.page(
        "/ui/policy",
        headers,
        params={"explain": "1", "sub": "alice", "groups": "developers", "kubectl": "kubectl delete namespace pr-1"},
    )
    assert status == 200
    assert '<span class="badge review">review</span>' in html
    assert "namespace-deletion-needs-a-human" in html
    status, html = await ui.page(
        "/ui/policy", headers, params={"explain": "1", "sub": "alice", "kubectl": "frobnicate"}
    )
    assert status == 200 and 'class="error"' in html


async def test_pages_say_when_the_front_end_parts_are_missing(ui: UIHarness) -> None:
    _, html = await ui.page("/ui/approvals", ui.sign_in(BOB))
    assert 'class="banner" role="alert"' in html and "run `npm ci` in" in html
