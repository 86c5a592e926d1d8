"""Property: every spelling of one request gets one decision, so no rule can be side-stepped by encoding."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from kubegate.kube.requestinfo import parse_request_info
from tests.policy.builders import engine, rule, who

POLICY = engine(
    rule("pr", subjects={"groups": ["agents"]}, match={"namespaces": ["pr-*"]}, mask=["secret-values"]),
    rule("read", subjects={"groups": ["readers"]}, match={"verbs": ["get", "list"]}),
    rule("watch-review", "review", match={"verbs": ["watch"], "resources": ["secrets"]}),
    rule("locked", "deny", match={"names": ["locked-*"]}),
    rule("apps", match={"api_groups": ["apps"], "namespaces": ["prod"], "verbs": ["watch"]}),
    rule("no-delete", "deny", match={"verbs": ["delete"], "namespaces": ["prod", "kube-*"]}),
)
IDENTITIES = [who("bot", groups=("agents",)), who("reader", groups=("readers",)), who("nobody")]
RESOURCES = [("/api/v1", "pods"), ("/api/v1", "secrets"), ("/apis/apps/v1", "deployments")]
label = st.from_regex(r"[a-z]([-a-z0-9.]{0,12}[a-z0-9])?", fullmatch=True)
namespaces = st.one_of(st.sampled_from(["pr-1", "pr-x", "prod", "kube-system", "default"]), label)
names = st.one_of(st.sampled_from(["locked-db", "web", "pr-1"]), label)
UNRESERVED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")


@st.composite
def encoded(draw: st.DrawFn, segment: str) -> str:
    """The segment with some unreserved characters percent-encoded, in either hex case."""
    out = []
    for ch in segment:
        if ch in UNRESERVED and draw(st.booleans()):
            code = f"%{ord(ch):02X}"
            out.append(code.lower() if draw(st.booleans()) else code)
        else:
            out.append(ch)
    return "".join(out)


@st.composite
def spell(draw: st.DrawFn, segments: list[str], query: list[tuple[str, str]]) -> tuple[str, str]:
    """One spelling: encoded segments, optional trailing slash, shuffled query with harmless extras."""
    path = "/" + "/".join([draw(encoded(s)) for s in segments])
    if draw(st.booleans()):
        path += "/"
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    ("pretty", "true"),
                    ("resourceVersion", "0"),
                    ("timeoutSeconds", "30"),
                    ("allowWatchBookmarks", "true"),
                ]
            ),
            unique=True,
        )
    )
    params = draw(st.permutations(query + extras))
    qs = "&".join(
        f"{quote(k, safe='')}={draw(st.sampled_from([quote(v, safe=''), quote(v, safe='=')]))}" for k, v in params
    )
    return path, qs


@st.composite
def request_spellings(draw: st.DrawFn) -> tuple[str, tuple[str, str, str, str], list[tuple[str, str, str]]]:
    """A request (kind; namespace, resource, name, API group) and several equivalent spellings of it."""
    prefix, resource = draw(st.sampled_from(RESOURCES))
    base = prefix.strip("/").split("/")
    ns, name = draw(namespaces), draw(names)
    kind = draw(st.sampled_from(["get", "list", "watch", "watch-one", "delete"]))
    collection = [*base, "namespaces", ns, resource]
    forms: list[tuple[str, list[str], list[tuple[str, str]]]]
    if kind == "get":
        forms = [("GET", [*collection, name], [])]
    elif kind == "delete":
        forms = [("DELETE", [*collection, name], [])]
    elif kind == "list":
        forms = [
            ("GET", collection, []),
            ("GET", collection, [("watch", "false")]),
            ("GET", collection, [("watch", "0")]),
            ("GET", collection, [("limit", "500")]),
        ]
    elif kind == "watch":
        forms = [("GET", collection, [("watch", v)]) for v in ("true", "1", "True", "yes")]
        forms.append(("GET", [*base, "watch", "namespaces", ns, resource], []))
    else:
        forms = [
            ("GET", collection, [("watch", "1"), ("fieldSelector", f"metadata.name{op}{name}")]) for op in ("=", "==")
        ]
        forms.append(("GET", [*base, "watch", "namespaces", ns, resource, name], []))
    spellings = []
    for method, segments, query in forms:
        path, qs = draw(spell(segments, query))
        spellings.append((draw(st.sampled_from([method, method.lower()])), path, qs))
    group = base[1] if base[0] == "apis" else ""
    return kind, (ns, resource, "" if kind in ("list", "watch") else name, group), spellings


@settings(max_examples=150, deadline=None)
@given(request_spellings(), st.sampled_from(IDENTITIES))
def test_equivalent_spellings_get_one_decision(case, identity) -> None:
    kind, drawn, spellings = case
    infos = [parse_request_info(*s) for s in spellings]
    expected_verb = {"watch-one": "watch"}.get(kind, kind)
    assert {i.verb for i in infos} == {expected_verb}
    assert {(i.namespace, i.resource, i.name, i.api_group) for i in infos} == {drawn}, spellings
    decisions = {str(POLICY.decide(identity, info, "dev").as_dict()) for info in infos}
    assert len(decisions) == 1, spellings


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(RESOURCES), st.sampled_from(IDENTITIES))
def test_cluster_wide_requests_never_match_namespace_globs(resource, identity) -> None:
    prefix, plural = resource
    for method, query in (("GET", ""), ("GET", "watch=1"), ("DELETE", "")):
        info = parse_request_info(method, f"{prefix}/{plural}", query)
        assert info.namespace == ""
        assert "pr" not in POLICY.decide(identity, info, "dev").deciding_rules


words = st.sampled_from(["pr-1", "pr-2", "prod", "kube-system", "", "team-a", "team-ab"])
patterns = st.one_of(words, st.sampled_from(["pr-*", "team-?", "team-*b", "*", "[pk]*", "kube-*"]))


@st.composite
def random_rule(draw: st.DrawFn, i: int) -> dict:
    match: dict = {}
    if draw(st.booleans()):
        match["verbs"] = draw(
            st.lists(st.sampled_from(["get", "list", "watch", "delete", "create", "*"]), min_size=1, max_size=3)
        )
    if draw(st.booleans()):
        match["resources"] = draw(
            st.lists(st.sampled_from(["pods", "secrets", "pods/*", "*", "deploy*", "pods/log"]), min_size=1, max_size=2)
        )
    if draw(st.booleans()):
        match["namespaces"] = draw(st.lists(patterns, min_size=1, max_size=2))
    subjects: dict = {}
    if draw(st.booleans()):
        subjects["groups"] = draw(st.lists(st.sampled_from(["agents", "readers", "read*"]), min_size=1, max_size=2))
    if draw(st.booleans()):
        subjects["users"] = draw(st.lists(st.sampled_from(["bot", "reader", "b*"]), min_size=1, max_size=2))
    return {"name": f"r{i}", "action": draw(st.sampled_from(["allow", "deny"])), "match": match, "subjects": subjects}


@st.composite
def random_policy(draw: st.DrawFn) -> list[dict]:
    return [draw(random_rule(i)) for i in range(draw(st.integers(1, 12)))]


CLUSTER_WIDE = [
    ("GET", "/api/v1/secrets", ""),
    ("GET", "/api/v1/nodes/n1", ""),
    ("GET", "/version", ""),
    ("DELETE", "/api/v1/namespaces/pr-1", ""),
    ("GET", "/apis/apps/v1/deployments", "watch=1"),
]


@settings(max_examples=150, deadline=None)
@given(
    random_policy(),
    st.one_of(request_spellings().map(lambda c: c[2][0]), st.sampled_from(CLUSTER_WIDE)),
    st.sampled_from(IDENTITIES),
)
def test_the_index_never_hides_a_matching_rule(rules, spelling, identity) -> None:
    e = engine(*(rule(r.pop("name"), r.pop("action"), **r) for r in rules))
    info = parse_request_info(*spelling)
    assert e.decide(identity, info, "dev").matches == e.explain(identity, info, "dev").matches
