"""The byte-level pre-check: whenever it says masking would leave a body as it is, the full path (decode,
mask_document, encode) leaves it as it is. Bodies are drawn in every JSON spelling kube-apiserver or a
hostile upstream could send (escapes included), with kinds, annotations, env vars and strings that
each mask profile and detector reacts to, under random plans that include a user detector and user
field rules."""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.masking.config import BUILTIN_PROFILES, MaskingConfig
from kubegate.masking.masker import Masker, mask_document
from kubegate.masking.untouched import untouched

MASKER = Masker(
    MaskingConfig.model_validate(
        {
            "detectors": [{"name": "acme-key", "pattern": "acme_[a-z]{4}"}],
            "field_rules": [
                {"name": "service-ip", "kind": "Service", "path": "spec.clusterIP"},
                {"name": "every-note", "kind": "*", "path": "metadata.annotations.note"},
            ],
        }
    )
)
DEFAULT = Masker(MaskingConfig())  # no user detector: credentials-in-text is all built-ins, with triggers
PROFILE_SETS = [
    *([p] for p in BUILTIN_PROFILES),
    list(BUILTIN_PROFILES),
    ["secret-values", "env-credentials"],
    ["credentials-in-text", "acme-key"],
    ["acme-key"],
    ["jwt"],
    ["service-ip", "credentials-in-text"],
    ["every-note"],
    *(list(c) for c in combinations(BUILTIN_PROFILES[:4], 2)),
]
KINDS = [
    "Service",
    "Namespace",
    "Event",
    "Secret",
    "ConfigMap",
    "Pod",
    "Deployment",
    "TokenRequest",
    "ServiceList",
    "SecretList",
    "PodList",
    "List",
    "PartialObjectMetadata",
    None,
]
HINTS = [None, "Secret", "ConfigMap", "Pod", "Deployment", "TokenRequest"]
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# Strings each detector, profile or escape rule reacts to, spelled in several cases, beside plain ones.
STRINGS = st.one_of(
    st.sampled_from(
        [
            "web",
            "frontend",
            "10.0.0.12",
            "Token",
            "my-secret-volume",
            "PASSWORD=hunter2",
            "password: 'hunter22'",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefgh",
            "postgres://app:s3cr3t@db:5432/app",
            "see https://example.com/docs",
            "AKIAABCDEFGHIJKLMNOP",
            "ghp_" + "a" * 36,
            "xoxb-1234567890-abc",
            "Bearer abcdefgh12345",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
            "acme_abcd",
            "to\u212aen=x",  # KELVIN SIGN lower-cases to k
            "Secret",
            "\u00e9t\u00e9 <b> & \u2028",
            "kubectl.kubernetes.io/last-applied-configuration",
            'token" : "x',  # a quote inside a string: a key's end is the next quote that is not escaped
            "password\\",
            '\\"secret=abc',
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def objects(draw: st.DrawFn, kind: str | None, depth: int = 0) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1"}
    if kind is not None:
        obj["kind"] = kind
    meta: dict[str, Any] = {"name": draw(STRINGS), "labels": draw(st.dictionaries(STRINGS, STRINGS, max_size=2))}
    annotations = draw(st.dictionaries(st.sampled_from(["note", "description", "x"]), STRINGS, max_size=2))
    if draw(st.booleans()):
        applied = {"apiVersion": "v1", "data": {"password": draw(STRINGS)}}
        if draw(st.booleans()):
            applied["kind"] = draw(st.sampled_from(["Secret", "ConfigMap", "Service"]))
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(applied)
    if annotations:
        meta["annotations"] = annotations
    obj["metadata"] = meta
    if draw(st.booleans()):
        obj["data"] = draw(st.dictionaries(st.sampled_from(["password", "tls.key", "stage", "url"]), STRINGS))
    if draw(st.booleans()):
        env = [{"name": n, "value": draw(STRINGS)} for n in draw(st.lists(st.sampled_from(["DB_PASSWORD", "LEVEL"])))]
        spec = {"containers": [{"name": "app", "env": env, "args": draw(st.lists(STRINGS, max_size=2))}]}
        obj["spec"] = {"template": {"spec": spec}, **spec} if draw(st.booleans()) else spec
    if draw(st.booleans()):
        obj.setdefault("spec", {})["clusterIP"] = draw(STRINGS)
    if draw(st.booleans()):
        obj["status"] = {"token": draw(STRINGS), "message": draw(STRINGS)}
    if kind is not None and kind.endswith("List") and depth == 0:
        item_kind = st.sampled_from([*KINDS[:8], None]) if kind == "List" else st.just(None)
        obj["items"] = draw(st.lists(item_kind.flatmap(lambda k: objects(k, depth + 1)), max_size=3))
    return obj


@st.composite
def documents(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["object", "event", "table"]))
    obj = draw(st.sampled_from(KINDS).flatmap(objects))
    if shape == "event":
        return {"type": "ADDED", "object": obj}
    if shape == "table":
        row_obj = draw(st.sampled_from(["PartialObjectMetadata", "Secret", "Service"]).flatmap(objects))
        row = {"cells": draw(st.lists(STRINGS, max_size=3)), "object": row_obj}
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [row]}
    return obj


def spell(doc: Any, how: str) -> bytes:
    """The same document as different encoders write it: all are JSON that decodes to `doc`."""
    if how == "orjson":
        return orjson.dumps(doc)
    if how == "ascii":  # every non-ASCII character as \\uXXXX, as Go does for <, > and &
        return json.dumps(doc, ensure_ascii=True).encode()
    if how == "letters":  # a hostile upstream: letters too, so `"kind":"\\u0053ecret"` is a Secret
        return _letters_escaped(doc).encode()
    if how == "spaced":  # whitespace between a key and its colon
        return json.dumps(doc, ensure_ascii=False, indent=1, separators=(",", " \n : ")).encode()
    return json.dumps(doc, ensure_ascii=False).replace("/", "\\/").encode()  # "/" only occurs inside strings


def _letters_escaped(node: Any) -> str:
    if isinstance(node, str):
        chars = (f"\\u{ord(c):04x}" if c.isascii() and c.isalpha() else json.dumps(c)[1:-1] for c in node)
        return '"' + "".join(chars) + '"'
    if isinstance(node, dict):
        return "{" + ",".join(f"{_letters_escaped(k)}:{_letters_escaped(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(map(_letters_escaped, node)) + "]"
    return json.dumps(node)


@SETTINGS
@given(documents(), st.sampled_from(["orjson", "ascii", "letters", "slashes", "spaced"]))
def test_what_the_pre_check_lets_through_the_full_path_leaves_alone(doc: Any, how: str) -> None:
    body = spell(doc, how)
    assert orjson.loads(body) == doc
    plans = [MASKER.plan(p) for p in PROFILE_SETS] + [
        DEFAULT.plan(p) for p in PROFILE_SETS if set(p) <= set(BUILTIN_PROFILES) | {"jwt"}
    ]
    for plan in plans:
        for hint in HINTS:
            if not untouched(plan, body, hint):
                continue
            decoded = orjson.loads(body)
            assert not mask_document(plan, decoded, hint), (plan, hint, body)
            assert decoded == doc


SERVICE = {
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], "clusterIP": "10.0.0.12", "type": "ClusterIP"},
}
ALL = list(BUILTIN_PROFILES)


def test_bodies_no_mask_touches_take_the_fast_path() -> None:
    """Not vacuous: realistic bodies of kinds no built-in profile masks pass under every built-in mask
    (with the default config: a user detector joins credentials-in-text and has no trigger)."""
    services = {"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": [SERVICE, SERVICE]}
    namespace = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team-a"}, "spec": {}}
    account = {  # triggers in keys only: text detectors read values
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": {"name": "builder"},
        "secrets": [],
        "automountServiceAccountToken": False,
    }
    for doc in (SERVICE, services, namespace, account, {"type": "MODIFIED", "object": SERVICE}):
        assert untouched(DEFAULT.plan(ALL), orjson.dumps(doc), None), doc
    assert untouched(MASKER.plan(["secret-values"]), orjson.dumps(SERVICE), "Service")


@pytest.mark.parametrize(
    ("profiles", "doc", "hint"),
    [
        pytest.param(["secret-values"], SERVICE, "Secret", id="the resource serves a masked kind"),
        pytest.param(ALL, {**SERVICE, "kind": "SecretList"}, None, id="a masked kind in the body"),
        pytest.param(["env-credentials"], {**SERVICE, "kind": "Deployment"}, None, id="pod templates"),
        pytest.param(ALL, {**SERVICE, "spec": {"x": "token=abc"}}, None, id="a trigger"),
        pytest.param(ALL, {**SERVICE, "spec": {"token": "token=abc"}}, None, id="a trigger in a key and a value"),
        pytest.param(ALL, {**SERVICE, "spec": {"x": 'token\\" : x'}}, None, id="a colon after an escaped quote"),
        pytest.param(ALL, {**SERVICE, "spec": {"x": "é"}}, None, id="an escape"),
        pytest.param(
            ["secret-values"],
            {**SERVICE, "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}},
            None,
            id="a last-applied annotation",
        ),
        pytest.param(["credentials-in-text", "acme-key"], SERVICE, None, id="a user detector scans text"),
        pytest.param(["every-note"], SERVICE, None, id="a field rule for every kind"),
        pytest.param(["service-ip"], SERVICE, None, id="a field rule for this kind"),
    ],
)
def test_what_could_be_masked_takes_the_full_path(profiles: list[str], doc: Any, hint: str | None) -> None:
    body = json.dumps(doc).encode()  # ensure_ascii: "é" becomes \\u00e9
    masker = MASKER if {"acme-key", "every-note", "service-ip"} & set(profiles) else DEFAULT
    assert not untouched(masker.plan(profiles), body, hint)
