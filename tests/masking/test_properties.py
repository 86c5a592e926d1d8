"""Property: planted secrets never leave the masking stage, whatever the shape and the chunking.

Random values are planted where the profiles say they hide (Secret data and stringData, env
credentials, configmap keys, TokenRequest tokens, detector-shaped tokens in logs), the response is
cut into random chunks and fed through MaskingStage, and no output byte stream may contain a
planted value, raw or in base64.
"""

from __future__ import annotations

import asyncio
import base64
import string
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.stage import MaskingStage
from tests.masking.builders import (
    ALL,
    configmap,
    event,
    exchange,
    flow,
    masker,
    secret,
    secret_list,
    split,
    table,
    workload,
)

STAGE = MaskingStage(masker())
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits

values = st.text(ALNUM, min_size=10, max_size=40)
cuts = st.lists(st.integers(min_value=1, max_value=200_000), max_size=12)
ENV_NAMES = ["DB_PASSWORD", "API_TOKEN", "CLIENT_SECRET", "SIGNING_KEY", "AWS_SECRET_ACCESS_KEY", "GH_CREDENTIALS"]
CM_KEYS = ["db_password", "tls.key", "api-token", "client_secret", "service-account.key"]


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw)]


def assert_absent(output: bytes, planted: list[str]) -> None:
    for value in planted:
        for form in forms(value):
            assert form not in output, f"{form!r} leaked"


def assert_kept(output: bytes, chosen: Planted) -> None:
    """Masking hides values, it does not drop them: every object is still there by name, every planted
    value is a marker now, and what was never secret reads as before (an empty answer fails this)."""
    for obj, _ in chosen:
        assert f'"{obj["metadata"]["name"]}"'.encode() in output if "metadata" in obj else True
    for never_secret in (b'"LOG_LEVEL"', b'"info"', b'"mode"', b'"fast"'):
        if any(never_secret in orjson.dumps(obj) for obj, _ in chosen):
            assert never_secret in output, f"{never_secret!r} was lost"
    planted = sum(len(values) for _, values in chosen)
    markers = output.count(MARKER.encode()) + output.count(MARKER_B64.encode())
    assert markers >= planted, f"{planted} values planted, {markers} markers in the answer"


def _skeleton() -> str:
    """Every fixed string the fixtures contain: a planted value must not occur in it by chance."""
    filler = {"v": "v"}
    objs: list[Any] = [
        secret("secret-0", filler, filler, last_applied=True),
        configmap("settings", filler),
        {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "status": {"token": "v", "expirationTimestamp": "2030-01-01T00:00:00Z"},
        },
    ]
    objs += [workload(k, {"LOG_LEVEL": "info"}) for k in KINDS]
    objs += [secret_list(objs[:1]), table([(["x", "y", "Opaque"], objs[0])])]
    return MARKER + MARKER_B64 + " ".join(orjson.dumps(o).decode() for o in objs) + "ADDED MODIFIED"


KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"]
SKELETON = _skeleton()


def plantable(value: str) -> bool:
    return all(form.decode() not in SKELETON for form in forms(value))


def run(
    method: str,
    path: str,
    query: str,
    chunks: list[bytes],
    content_type: str = "application/json",
    masks: tuple[str, ...] = ALL,
) -> bytes:
    async def go() -> bytes:
        f = flow(method, path, query, masks=masks)
        return b"".join(await exchange(STAGE, f, chunks, content_type=content_type))

    return asyncio.run(go())


Planted = list[tuple[dict[str, Any], list[str]]]


@st.composite
def planted_objects(draw: st.DrawFn) -> Planted:
    """Secrets, a workload, a configmap and a TokenRequest, each with the values planted in it."""

    def plant(into: list[str]) -> str:
        value = draw(values)
        assume(plantable(value))
        into.append(value)
        return value

    out: Planted = []
    for i in range(draw(st.integers(1, 3))):
        mine: list[str] = []
        data = {f"k{j}": plant(mine) for j in range(draw(st.integers(0, 3)))}
        string_data = {f"s{j}": plant(mine) for j in range(draw(st.integers(0, 2)))}
        out.append((secret(f"secret-{i}", data, string_data or None, last_applied=draw(st.booleans())), mine))
    mine = []
    env = {name: plant(mine) for name in draw(st.lists(st.sampled_from(ENV_NAMES), max_size=3, unique=True))}
    out.append((workload(draw(st.sampled_from(KINDS)), env | {"LOG_LEVEL": "info"}), mine))
    mine = []
    cm = {key: plant(mine) for key in draw(st.lists(st.sampled_from(CM_KEYS), max_size=3, unique=True))}
    out.append((configmap("settings", cm | {"mode": "fast"}), mine))
    mine = []
    out.append(
        (
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "status": {"token": plant(mine), "expirationTimestamp": "2030-01-01T00:00:00Z"},
            },
            mine,
        )
    )
    return out


@SETTINGS
@given(planted=planted_objects(), shape=st.sampled_from(["get", "list", "table", "watch", "watch-table"]), cut_at=cuts)
def test_planted_object_values_never_leave(planted: Planted, shape: str, cut_at: list[int]) -> None:
    secrets = [(o, v) for o, v in planted if o["kind"] == "Secret"]
    query = ""
    if shape == "get":
        chosen = secrets[:1]
        body = orjson.dumps(chosen[0][0]) + b"\n"
        path = "/api/v1/namespaces/default/secrets/secret-0"
    elif shape == "list":
        chosen = secrets
        body = orjson.dumps(secret_list(o for o, _ in chosen))
        path = "/api/v1/secrets"
    elif shape == "table":
        chosen = secrets
        body = orjson.dumps(table([([o["metadata"]["name"], "Opaque"], o) for o, _ in chosen]))
        path, query = "/api/v1/secrets", "includeObject=Object"
    else:
        chosen = planted
        path, query = "/api/v1/namespaces/default/pods", "watch=true"
        if shape == "watch":
            body = b"".join(event("ADDED", o) for o, _ in chosen)
        else:
            body = b"".join(event("MODIFIED", table([(["x", "y"], o)])) for o, _ in chosen)
    out = run("GET", path, query, split(body, cut_at))
    assert_absent(out, [v for _, vs in chosen for v in vs])
    assert_kept(out, chosen)
    for obj, vs in planted:
        assert_absent(orjson.dumps(masker().mask_request_body(obj, ALL)), vs)


def _jwt(draw: st.DrawFn) -> str:
    seg = st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=30)
    return f"eyJ{draw(seg)}.{draw(seg)}.{draw(seg)}"


TOKEN_KINDS = ["akia", "asia", "ghp", "github_pat", "glpat", "slack", "jwt", "password", "token", "pem", "bearer"]


@st.composite
def planted_log(draw: st.DrawFn) -> tuple[bytes, list[str], list[str]]:
    pieces: list[str] = []
    planted: list[str] = []
    fillers: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        filler = draw(st.sampled_from(["starting", "GET /healthz 200", "retrying in 5s", "ok", "", "x=1"]))
        pieces.append(filler)
        fillers.append(filler)
        kind = draw(st.sampled_from(TOKEN_KINDS))
        secret_part = draw(st.text(ALNUM, min_size=24, max_size=48))
        if kind in ("akia", "asia"):
            secret_part = kind.upper() + draw(st.text(UPPER, min_size=16, max_size=16))
            token = secret_part
        elif kind == "ghp":
            token = secret_part = "ghp_" + secret_part + draw(st.text(ALNUM, min_size=12, max_size=12))
        elif kind == "github_pat":
            token = secret_part = "github_pat_" + secret_part
        elif kind == "glpat":
            token = secret_part = "glpat-" + secret_part
        elif kind == "slack":
            token = secret_part = "xoxb-" + secret_part
        elif kind == "jwt":
            token = secret_part = _jwt(draw)
        elif kind == "password":
            token = f"DB_PASSWORD={secret_part}"
        elif kind == "token":
            token = f'"token": "{secret_part}"'
        elif kind == "bearer":
            token = f"Authorization: Bearer {secret_part}"
        else:
            lines = [draw(st.text(ALNUM + "+/", min_size=24, max_size=64)) for _ in range(draw(st.integers(1, 4)))]
            secret_part = lines[0]
            planted.extend(lines[1:])
            token = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"
        planted.append(secret_part)
        pieces.append(token)
    separators = draw(st.lists(st.sampled_from([" ", "\n", "\t", " | "]), min_size=len(pieces), max_size=len(pieces)))
    text = "".join(p + s for p, s in zip(pieces, separators, strict=True))
    return text.encode(), planted, fillers


@SETTINGS
@given(log=planted_log(), cut_at=st.lists(st.integers(1, 2000), max_size=20), follow=st.booleans())
def test_planted_log_secrets_never_leave(
    log: tuple[bytes, list[str], list[str]], cut_at: list[int], follow: bool
) -> None:
    text, planted, fillers = log
    out = run(
        "GET",
        "/api/v1/namespaces/default/pods/web/log",
        "follow=true" if follow else "",
        split(text, cut_at),
        content_type="text/plain",
    )
    for value in planted:
        assert value.encode() not in out, f"{value!r} leaked from {text!r}: {out!r}"
    for filler in fillers:  # the log around the secrets reads as it did
        assert filler.encode() in out, f"{filler!r} was lost from {text!r}: {out!r}"
    assert out.count(b"\n") == text.count(b"\n")
