from __future__ import annotations

from kubegate.mcp.shaping import diff, dump, fit, items_that_fit, trimmed


def test_managed_fields_are_dropped_from_objects_and_list_items() -> None:
    obj = {"metadata": {"name": "a", "managedFields": [{"manager": "kubectl"}]}}
    assert trimmed(obj) == {"metadata": {"name": "a"}} and "managedFields" in obj["metadata"]
    listing = trimmed({"items": [obj, obj]})
    assert all("managedFields" not in i["metadata"] for i in listing["items"])


def test_a_page_is_cut_to_the_items_that_fit() -> None:
    items = [{"metadata": {"name": f"n{i}", "labels": {"x": "y" * 200}}} for i in range(10)]
    listing = {"kind": "List", "items": items}
    one = len(dump([listing["items"][0]]))
    assert items_that_fit(listing, 3 * one + 20) == 3
    assert items_that_fit(listing, 1) == 1
    assert fit("abcdef", 3, "ask for less").startswith("abc\n... [kubegate cut this result at 3 characters: ask")
    assert fit("abc", 3, "x") == "abc"


def test_diff_shows_changes_without_bookkeeping() -> None:
    before = {"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"replicas": 1}}
    after = {"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"replicas": 2}}
    changed = diff(before, after, "Deployment/a")
    assert "-  replicas: 1" in changed and "+  replicas: 2" in changed and "resourceVersion" not in changed
    assert diff(before, before, "x") == ""
