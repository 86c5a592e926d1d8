"""What a reviewer reads on a request card: the CI run's link and the summary's diff lines."""

from __future__ import annotations

import pytest

from kubegate.web.ui.approvals import ci_run_url, diff_lines


def test_a_github_actions_run_links_to_its_page() -> None:
    assert ci_run_url({"repository": "acme/app", "run_id": "42"}) == "https://github.com/acme/app/actions/runs/42"


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"repository": "acme/app"},
        {"run_id": "42"},
        {"repository": "acme/app", "run_id": "42x"},
        {"repository": "acme/app/../../evil", "run_id": "1"},
        {"repository": "acme", "run_id": "1"},
        {"repository": "acme/app?x=1", "run_id": "1"},
    ],
)
def test_anything_else_gets_no_link(claims: dict[str, str]) -> None:
    assert ci_run_url(claims) is None


def test_diff_lines_mark_additions_removals_and_hunks() -> None:
    summary = "--- configmaps/cfg (now)\n+++ configmaps/cfg (after)\n@@ -1,3 +1,3 @@\n data:\n-  a: '1'\n+  a: '2'"
    assert diff_lines(summary) == [
        ("file", "--- configmaps/cfg (now)"),
        ("file", "+++ configmaps/cfg (after)"),
        ("hunk", "@@ -1,3 +1,3 @@"),
        ("", " data:"),
        ("del", "-  a: '1'"),
        ("add", "+  a: '2'"),
    ]
