"""The web UI in a real browser (Playwright driving Debian's Chromium): sign in at the development
issuer's login page, approve a `kubectl delete namespace` that is waiting, replay an exec session,
explain the policy, and see that each page answers only the roles it is for.

A screenshot of each page goes to artifacts/ui/ for a person to look at."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from kubegate.sandbox.envtest import GATEWAY_USER
from tests.conftest import World

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("KUBEGATE_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "ui"
ONCALL = ("platform-oncall",)
CI_CLAIMS = {"repository": "acme/shop", "run_id": "987654321", "workflow": "cleanup", "actor": "octocat"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise AssertionError(
            f"{CHROMIUM} is missing: scripts/install puts Debian's chromium there (apt-get install -y chromium)"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visitor:
    """One person in their own browser context (own cookies), collecting the console's errors."""

    def __init__(self, world: World, browser: Browser, *, width: int = 1280, height: int = 900) -> None:
        assert world.env.gateway is not None
        self.base = world.env.gateway.url
        self.context: BrowserContext = browser.new_context(
            ignore_https_errors=True, viewport={"width": width, "height": height}
        )
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def goto(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def sign_in(self, user: str, groups: tuple[str, ...], *, shots: str = "") -> None:
        page = self.goto("/ui/approvals")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        if shots:
            self.shot(f"{shots}-login")
        page.get_by_role("link", name="Sign in with SSO").click()
        expect(page.get_by_role("heading", name="kubegate development issuer")).to_be_visible()
        page.get_by_label("User name").fill(user)
        known = {"developers", "platform-oncall", "auditors", "kubegate-admins"}
        for group in groups:
            if group in known:
                page.get_by_label(group, exact=True).check()
        page.get_by_label("Other groups").fill(",".join(g for g in groups if g not in known))
        if shots:
            self.shot(f"{shots}-issuer-login")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/ui/approvals$"))
        expect(page.locator(".who .user")).to_have_text(f"sandbox:{user}")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        # The pages must run under their Content-Security-Policy without a single refusal.
        assert not [e for e in self.errors if "Content Security Policy" in e or "Refused" in e], self.errors


@pytest.fixture
def visitors(world: World, browser: Browser) -> Iterator[list[Visitor]]:
    opened: list[Visitor] = []
    yield opened
    for visitor in opened:
        visitor.close()


def visit(world: World, browser: Browser, opened: list[Visitor], **size: int) -> Visitor:
    visitor = Visitor(world, browser, **size)
    opened.append(visitor)
    return visitor


def test_a_reviewer_approves_a_waiting_kubectl_and_others_see_no_buttons(
    world: World, browser: Browser, visitors: list[Visitor]
) -> None:
    name = f"ui-appr-{uuid.uuid4().hex[:8]}"
    world.kubectl("create", "namespace", name)
    assert world.control.exists(f"/api/v1/namespaces/{name}")
    world.set_policies(
        "ui-db-oncall",
        [
            {
                "name": "ui-db-configmaps-need-db-oncall",
                "match": {"verbs": ["delete"], "resources": ["configmaps"], "namespaces": ["ui-db-*"]},
                "action": "review",
                "reviewers": {"groups": ["db-oncall"]},
            }
        ],
    )
    try:
        rita = visit(world, browser, visitors)
        rita.sign_in("rita", ONCALL, shots="01")
        page = rita.page
        expect(page.get_by_text("Nothing is waiting for a decision.")).to_be_visible()

        # --wait=false: without a controller-manager a deleted namespace stays Terminating, and kubectl would
        # wait for it to be gone; what matters here is that the DELETE reaches the cluster once approved.
        mark = world.control.audit_mark()
        kubectl = world.popen(
            "delete", "namespace", name, "--wait=false", kubeconfig=world.kubeconfig("alice", claims=CI_CLAIMS)
        )
        try:
            card = page.locator("article.request", has_text=f"namespaces {name}")
            expect(card).to_be_visible(timeout=30_000)  # arrives by polling: the page is never reloaded
            expect(card).to_contain_text("sandbox:alice")
            expect(card).to_contain_text(f"DELETE /api/v1/namespaces/{name}")
            expect(card).to_contain_text("kubectl delete")
            expect(card.get_by_role("link", name=f"acme/shop run {CI_CLAIMS['run_id']}")).to_have_attribute(
                "href", f"https://github.com/acme/shop/actions/runs/{CI_CLAIMS['run_id']}"
            )
            expect(card.get_by_role("button", name="Approve")).to_be_visible()
            rita.shot("02-inbox-pending")

            victor = visit(world, browser, visitors)
            victor.sign_in("victor", ("db-oncall", "auditors"))
            expect(victor.page.locator(".who .roles")).to_have_text("auditor, reviewer")
            seen = victor.page.locator("article.request", has_text=f"namespaces {name}")
            expect(seen).to_be_visible()
            expect(seen).to_contain_text("Only its reviewers decide this request: platform-oncall")
            expect(seen.get_by_role("button")).to_have_count(0)
            victor.shot("03-inbox-not-a-reviewer-of-this-rule")
            session_link = seen.locator("a.session-link").get_attribute("href")

            phone = visit(world, browser, visitors, width=390, height=844)
            phone.sign_in("pia", ONCALL)
            expect(phone.page.locator("article.request", has_text=f"namespaces {name}")).to_be_visible()
            phone.shot("04-inbox-phone-width")

            assert kubectl.poll() is None  # still waiting for a human
            assert not [e for e in world.reached(f"/api/v1/namespaces/{name}", mark) if e.verb == "delete"], (
                "nothing reaches the cluster before a reviewer decides"
            )
            card.get_by_label("Reason").fill("cleanup of a finished PR environment")
            page.keyboard.press("Tab")  # decided with the keyboard alone
            expect(card.get_by_role("button", name="Approve")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page).to_have_url(re.compile(r"/ui/approvals\?decided="))
            expect(page.get_by_role("status")).to_contain_text("is approved by sandbox:rita")
            out, err = kubectl.communicate(timeout=60)
            assert kubectl.returncode == 0, err
            assert f'namespace "{name}" deleted' in out
            [deleted] = [e for e in world.served(f"/api/v1/namespaces/{name}", mark) if e.verb == "delete"]
            assert deleted.user == GATEWAY_USER and deleted.code == 200
            assert (deleted.impersonated or {}).get("username") == "sandbox:alice"
            assert world.control.get(f"/api/v1/namespaces/{name}")["metadata"].get("deletionTimestamp")
            expect(page.locator("#recent-heading + .table-wrap")).to_contain_text("cleanup of a finished PR")
            rita.shot("05-inbox-after-approval")

            timeline = victor.goto(f"{session_link}").locator(".timeline")  # victor is also an auditor
            expect(timeline).to_contain_text("access_request")
            expect(timeline).to_contain_text("approval")
            expect(timeline).to_contain_text(f"DELETE /api/v1/namespaces/{name}")
            victor.shot("06-session-timeline-with-approval")
        finally:
            kubectl.kill()
    finally:
        world.clear_policies("ui-db-oncall")


def test_an_auditor_replays_an_exec_session_and_downloads_it(
    world: World, browser: Browser, visitors: list[Visitor]
) -> None:
    ns = world.namespace("ui-exec")
    world.pod(ns, "app")
    mark = world.control.audit_mark()
    out = world.kubectl(
        "exec", "app", "-n", ns, "--", "sh", "-c", "echo replayed-in-the-browser", kubeconfig=world.kubeconfig("ulla")
    ).stdout
    assert "replayed-in-the-browser" in out
    [opened] = world.served(f"/api/v1/namespaces/{ns}/pods/app/exec", mark)
    assert opened.code == 101 and (opened.impersonated or {}).get("username") == "sandbox:ulla"
    world.settle()

    audrey = visit(world, browser, visitors)
    audrey.sign_in("audrey", ("auditors",))
    page = audrey.goto("/ui/sessions")
    page.get_by_label("User").fill("sandbox:ulla")
    page.get_by_label("Command contains").fill("exec")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("kubectl exec")
    audrey.shot("07-sessions-filtered")
    rows.first.get_by_role("link").click()

    expect(page.get_by_role("heading", name="Terminal replay")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text(f"/api/v1/namespaces/{ns}/pods/app/exec")
    player = page.locator("#player")
    expect(player.locator(".ap-player")).to_be_visible()
    player.click()  # starts playback
    expect(player).to_contain_text("replayed-in-the-browser", timeout=20_000)
    audrey.shot("08-session-exec-replay")

    cast_link = page.get_by_role("link", name="Download asciicast").get_attribute("href")
    cast = page.request.get(f"{audrey.base}{cast_link}")
    assert cast.status == 200 and "attachment" in cast.headers["content-disposition"]
    lines = cast.text().splitlines()
    assert json.loads(lines[0])["version"] == 2
    assert any("replayed-in-the-browser" in line for line in lines[1:])
    export_link = page.get_by_role("link", name="Download JSONL export").get_attribute("href")
    export = page.request.get(f"{audrey.base}{export_link}")
    assert export.status == 200
    records = [json.loads(line) for line in export.text().splitlines()]
    assert records[0]["kind"] == "session" and records[0]["username"] == "sandbox:ulla"
    assert {r["type"] for r in records[1:]} >= {"request", "stream"}


def test_an_auditor_explains_the_policy_and_sees_connection_health(
    world: World, browser: Browser, visitors: list[Visitor]
) -> None:
    audrey = visit(world, browser, visitors)
    audrey.sign_in("audrey", ("auditors",))
    page = audrey.goto("/ui/policy")
    expect(page.get_by_role("heading", name="Rules, in order")).to_be_visible()
    expect(page.locator("article.rule", has_text="namespace-deletion-needs-a-human")).to_contain_text("platform-oncall")
    page.get_by_label("User (token subject)").fill("alice")
    page.get_by_label("Groups (comma-separated)").fill("developers")
    page.get_by_label("kubectl command").fill("kubectl delete namespace prod")
    page.get_by_role("button", name="Explain").click()
    result = page.locator(".result")
    expect(result).to_contain_text("Decision: review")
    expect(result.locator(".matches")).to_contain_text("namespace-deletion-needs-a-human")
    audrey.shot("09-policy-explain")

    page = audrey.goto("/ui/connections")
    row = page.locator("tr", has_text=world.env.connection)
    expect(row).to_contain_text("healthy")
    audrey.shot("10-connections")


def test_pages_answer_only_their_roles_and_sign_out_ends_the_session(
    world: World, browser: Browser, visitors: list[Visitor]
) -> None:
    dora = visit(world, browser, visitors)
    dora.sign_in("dora", ("developers",))
    nav = dora.page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Approvals"])
    for path in ("/ui/sessions", "/ui/policy", "/ui/connections"):
        page = dora.goto(path)
        expect(page.get_by_role("heading", name="Not for your roles")).to_be_visible()
    dora.shot("11-forbidden-for-a-developer")
    response = dora.page.request.get(dora.base + "/ui/sessions/anything/export.jsonl")
    assert response.status == 403
    dora.goto("/ui/approvals").get_by_role("button", name="Sign out").click()
    expect(dora.page.get_by_role("status")).to_have_text("You are signed out.")
    page = dora.goto("/ui/approvals")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
