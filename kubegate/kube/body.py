"""Request bodies read once, in one place: what a create, update, patch or delete sent.

`flow.sent` is the body as sent, decoded from JSON or YAML (apply patches); it is what the recording shows.
What policy judges for a write is the object the cluster would store (`flow.object`, from a dry run, see
upstream/dryrun.py), so this stage never has to decode protobuf or apply patches itself. What it refuses
is what the cluster and kubegate could read two ways: a JSON or YAML object with a repeated key
(sigs.k8s.io/json decodes the second value *into* the first, so nested objects merge where most decoders
keep the last one), JSON's non-standard constants, and text that is not UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from kubegate.flow import Flow, Stage
from kubegate.kube.goyaml import DuplicateKey, GoYAMLLoader, as_json_number, go_int
from kubegate.kube.status import Refused

BODY_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
JSON_MEDIA = (
    "application/json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+json",
)
YAML_MEDIA = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class AmbiguousBody(ValueError):
    """The body means one thing to kubegate's decoder and possibly another to the cluster's."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise AmbiguousBody(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise AmbiguousBody(f"{name} is not JSON")


def _go_float(text: str) -> float | int:
    """A JSON number with a fraction or exponent, as the stored object will hold it (see as_json_number)."""
    value = float(text)
    if not math.isfinite(value):
        raise AmbiguousBody(f"the number {text} does not fit a float64")
    return as_json_number(value)


def _lone_surrogate(node: Any) -> bool:
    if isinstance(node, str):
        return any("\ud800" <= c <= "\udfff" for c in node)
    if isinstance(node, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_lone_surrogate(v) for v in node)
    return False


def parse_json(text: str) -> Any:
    """JSON as sigs.k8s.io/json reads it and the stored object keeps it: integers exact within int64 (else
    float64), integral floats as integers (Go writes 1.0 as 1); a repeated key,
    a number beyond float64 or an escaped lone UTF-16 surrogate (Go reads U+FFFD) refused."""
    doc = json.loads(
        text,
        object_pairs_hook=_pairs,
        parse_constant=_no_constant,
        parse_int=lambda t: go_int(int(t)),
        parse_float=_go_float,
    )
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(doc):
        raise AmbiguousBody("a string holds an escaped lone UTF-16 surrogate, which Go reads as U+FFFD")
    return doc


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_body(body: bytes, content_type: str) -> Any:
    """The decoded body if it is JSON or YAML, None for other encodings (protobuf, CBOR) and for bodies
    that do not parse (the cluster answers those). Raises AmbiguousBody for what reads two ways."""
    media = media_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if media in JSON_MEDIA or media in YAML_MEDIA:
            raise AmbiguousBody("the body is not UTF-8 text") from exc
        return None
    try:
        if media in JSON_MEDIA or media.endswith("+json"):
            return parse_json(text)
        if media in YAML_MEDIA or media.endswith("+yaml"):
            return yaml.load(text, Loader=GoYAMLLoader)
    except DuplicateKey as exc:
        raise AmbiguousBody(str(exc)) from exc
    except (ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, AmbiguousBody):
            raise
        return None
    return None


class RequestBodyStage(Stage):
    name = "body"

    async def on_request(self, flow: Flow) -> None:
        if not flow.body or flow.info is None or flow.info.verb not in BODY_VERBS:
            return
        try:
            flow.sent = parse_body(flow.body, flow.headers.get("Content-Type", ""))
        except AmbiguousBody as exc:
            raise Refused(
                400,
                f"kubegate refused this request body because it can be read two ways: {exc}. "
                "kube-apiserver would merge or reinterpret it; send each key once, as JSON or YAML "
                "encoders do",
                reason="BadRequest",
            ) from exc
