"""Request bodies read once, in one place: the object a create, update or patch carries.

kubectl sends JSON, YAML (apply patches) or, from its typed clients, protobuf. Policy conditions,
recording and approvals read `flow.object`; the body itself is forwarded untouched. A protobuf body
is read strictly (every field that carries a value understood), so no field a rule might look at
can hide in a part kubegate skipped. A body that cannot be read leaves `flow.object_error` set, and
a stage that must read the object refuses the request (fail closed).
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from kubegate.kube.protobuf import PROTOBUF, ProtobufError, decode_body
from kubegate.proxy.flow import Flow, Stage

BODY_VERBS = frozenset({"create", "update", "patch"})


class UnreadableBody(ValueError):
    """The request body is in a form kubegate cannot read."""


def parse_body(body: bytes, content_type: str) -> Any:
    """The request object from a JSON, YAML or protobuf body (merge, strategic, JSON and apply patches too)."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == "application/json" or media.endswith("+json"):
            return orjson.loads(body)
        if media in ("application/yaml", "application/x-yaml", "text/yaml") or media.endswith("+yaml"):
            return yaml.safe_load(body)
        if media == PROTOBUF:
            return decode_body(body, strict=True)
    except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError, ProtobufError) as exc:
        raise UnreadableBody(f"kubegate cannot read the request body as {media}: {exc}") from exc
    raise UnreadableBody(f"kubegate cannot read a request body of type {media or '(none)'}; "
                         "send application/json, YAML or protobuf of a built-in kind")


class RequestBodyStage(Stage):
    name = "body"

    async def on_request(self, flow: Flow) -> None:
        if not flow.body or flow.info is None or flow.info.verb not in BODY_VERBS:
            return
        try:
            flow.object = parse_body(flow.body, flow.headers.get("Content-Type", ""))
        except UnreadableBody as exc:
            flow.object_error = str(exc)
