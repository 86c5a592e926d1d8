"""One access-log line per request, JSON or text: who, where, what, the decision and rule, the answer, the
session; never the token, the query or a body."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.audit.accesslog import AccessLogStage, text_line
from kubegate.audit.config import AccessLogConfig
from kubegate.flow import Flow
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision, RuleMatch

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def flow(path: str = "/api/v1/namespaces/shop/secrets/db", query: str = f"token={TOKEN}") -> Flow:
    request = make_mocked_request("GET", f"{path}?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    f = Flow(
        request=request,
        connection=SimpleNamespace(name="prod"),  # type: ignore[arg-type]
        method="GET",
        raw_path=path,
        query_string=query,
        headers=CIMultiDict(),
        body=b'{"data":{"password":"hunter2"}}',
    )
    f.identity = Identity(issuer="https://idp.example", subject="alice", username="idp#alice", groups=("devs",))
    f.info = parse_request_info("GET", path, query)
    return f


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def stage(format: str) -> tuple[AccessLogStage, Lines]:
    logger = logging.getLogger(f"test.access.{format}")
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    return AccessLogStage(AccessLogConfig(format=format), logger), lines  # type: ignore[arg-type]


async def test_a_served_request_is_one_json_line_with_its_decision_and_session() -> None:
    access, out = stage("json")
    f = flow()
    f.decision = Decision(
        "allow", (RuleMatch("devs-read", "allow", []), RuleMatch("log-all", "log", [])), "", masks=("secret-values",)
    )
    f.session_id, f.bytes_sent = "s-42", 1234
    f.grant = SimpleNamespace(request_id="ar-7f3k")  # type: ignore[assignment]
    f.response_status = 200
    await access.on_end(f)
    assert len(out.lines) == 1
    line = orjson.loads(out.lines[0])
    assert {
        k: line[k]
        for k in (
            "identity",
            "connection",
            "verb",
            "resource",
            "namespace",
            "name",
            "decision",
            "rule",
            "approval",
            "status",
            "bytes",
            "session",
            "request_id",
        )
    } == {
        "identity": "idp#alice",
        "connection": "prod",
        "verb": "get",
        "resource": "secrets",
        "namespace": "shop",
        "name": "db",
        "decision": "allow",
        "rule": "devs-read",
        "approval": "ar-7f3k",
        "status": 200,
        "bytes": 1234,
        "session": "s-42",
        "request_id": f.id,
    }
    assert line["time"].endswith("Z") and line["duration_ms"] >= 0
    assert TOKEN not in out.lines[0] and "hunter2" not in out.lines[0] and "token=" not in out.lines[0]


async def test_a_refusal_is_a_text_line_with_its_code() -> None:
    access, out = stage("text")
    f = flow("/api/v1/namespaces/kube-system/pods/x", query="")
    f.refusal = Refused(403, "kube-system is managed by the platform team", reason="Forbidden")
    await access.on_end(f)
    (line,) = out.lines
    assert line.startswith("time=") and " identity=idp#alice connection=prod " in line
    assert ' decision=refused rule="" approval="" status=403 ' in line and 'session=""' in line
    assert TOKEN not in line


@pytest.mark.parametrize(
    ("value", "shown"), [("a b", 'k="a b"'), ('say "x"', 'k="say \\"x\\""'), ("", 'k=""'), ("plain", "k=plain")]
)
def test_text_values_are_quoted_when_they_would_split(value: str, shown: str) -> None:
    assert text_line({"k": value}) == shown
