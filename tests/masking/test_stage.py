"""MaskingStage through its hooks, as the pipeline drives it."""

from __future__ import annotations

import gzip

import orjson
import pytest

from kubegate.flow import Message, Upgrade
from kubegate.kube import channels
from kubegate.kube.status import Refused
from kubegate.masking.marker import MARKER, MARKER_B64, MARKER_BYTES
from kubegate.masking.stage import MaskingStage
from tests.masking.builders import (
    ALL,
    b64,
    configmap,
    event,
    exchange,
    flow,
    masker,
    secret,
    secret_list,
    split,
    table,
)

STAGE = MaskingStage(masker())
KUBECTL_TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


async def test_request_asks_for_uncompressed_json() -> None:
    f = flow("GET", "/api/v1/namespaces/default/secrets", accept=f"application/vnd.kubernetes.protobuf,{KUBECTL_TABLE}")
    await STAGE.on_request(f)
    assert f.headers.getall("Accept") == [KUBECTL_TABLE.replace(",", ", ")]
    assert f.headers.getall("Accept-Encoding") == ["identity"]


async def test_requests_without_masks_are_untouched() -> None:
    f = flow("GET", "/api/v1/namespaces/default/secrets", masks=(), accept="application/vnd.kubernetes.protobuf")
    assert await exchange(STAGE, f, [b"\x6b\x38\x73\x00"], content_type="application/vnd.kubernetes.protobuf") == [
        b"\x6b\x38\x73\x00",
        b"",
    ]
    assert f.headers["Accept"] == "application/vnd.kubernetes.protobuf" and f.headers["Accept-Encoding"] == "gzip"
    assert not f.rewrites_body


async def test_non_resource_requests_are_untouched() -> None:
    pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    f = flow("GET", "/openapi/v2", accept=pb)
    assert await exchange(STAGE, f, [b"\x0a\x03"], content_type="application/octet-stream") == [b"\x0a\x03", b""]
    assert f.headers["Accept"] == pb


async def test_unknown_profile_refuses_before_forwarding() -> None:
    f = flow("GET", "/api/v1/namespaces/default/secrets/db", masks=("nope",))
    with pytest.raises(Refused) as info:
        await STAGE.on_request(f)
    assert info.value.code == 500 and "nope" in info.value.message


async def test_secret_get_is_masked_whole_at_the_end() -> None:
    body = orjson.dumps(secret("db", {"password": "hunter2"}, last_applied=True)) + b"\n"
    f = flow("GET", "/api/v1/namespaces/default/secrets/db")
    out = await exchange(STAGE, f, split(body, [5, 100, 200]))
    assert out[:-1] == [b"", b"", b"", b""] and f.rewrites_body
    masked = orjson.loads(out[-1])
    assert masked["data"]["password"] == MARKER_B64
    assert b64("hunter2").encode() not in out[-1] and out[-1].endswith(b"\n")


async def test_a_body_with_nothing_to_mask_passes_byte_for_byte() -> None:
    body = b'{"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"a": "1"}}\n'
    f = flow("GET", "/api/v1/namespaces/default/configmaps/x", masks=("secret-values",))
    assert b"".join(await exchange(STAGE, f, split(body, [10]))) == body


async def test_secret_list_and_cluster_wide_table() -> None:
    body = orjson.dumps(secret_list(secret(f"s{i}", {"password": f"pw-{i}-value"}) for i in range(50)))
    f = flow("GET", "/api/v1/secrets", masks=("secret-values",))
    out = b"".join(await exchange(STAGE, f, split(body, range(0, len(body), 997))))
    assert b"pw-" not in out and out.count(MARKER_B64.encode()) == 50
    assert f.masked is not None and f.masked.values == 50

    tbl = orjson.dumps(table([(["db", "Opaque"], secret("db", {"k": "hunter2"}, kind=False))]))
    f = flow("GET", "/api/v1/secrets", query="includeObject=Object", accept=KUBECTL_TABLE)
    out = b"".join(await exchange(STAGE, f, [tbl]))
    assert b64("hunter2").encode() not in out and orjson.loads(out)["rows"][0]["cells"] == ["db", "Opaque"]


async def test_a_secret_list_counts_the_markers_it_added_not_those_it_held() -> None:
    """The SecretList fast path counts what it hides itself (the stage counts markers for the rest)."""
    held = secret("held", {"a": "x"})
    held["data"]["a"] = MARKER_B64
    body = orjson.dumps(secret_list([secret("db", {"password": "pw", "user": "u"}, last_applied=True), held]))
    f = flow("GET", "/api/v1/secrets")
    out = b"".join(await exchange(STAGE, f, [body]))
    assert out.count(MARKER_B64.encode()) == 5  # two values, the two in the annotation, the one held
    assert f.masked is not None and f.masked.values == 4


async def test_token_request_response() -> None:
    body = orjson.dumps(
        {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "status": {"token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
        }
    )
    f = flow("POST", "/api/v1/namespaces/default/serviceaccounts/default/token")
    out = b"".join(await exchange(STAGE, f, [body], status=201))
    assert orjson.loads(out)["status"]["token"] == MARKER


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/vnd.kubernetes.protobuf", None),
        ("application/cbor", None),
        ("application/yaml", None),
        ("application/json", "gzip"),
    ],
)
async def test_unmaskable_responses_are_refused(content_type: str, encoding: str | None) -> None:
    f = flow("GET", "/api/v1/namespaces/default/secrets/db")
    body = gzip.compress(orjson.dumps(secret("db", {"password": "hunter2"})))
    with pytest.raises(Refused) as info:
        await exchange(STAGE, f, [body], content_type=content_type, encoding=encoding)
    assert info.value.code == 502
    assert info.value.message.startswith("kubegate could not mask this response (content type")
    assert content_type in info.value.message and "so it was not sent" in info.value.message


async def test_invalid_json_is_refused_not_passed() -> None:
    f = flow("GET", "/api/v1/namespaces/default/secrets/db")
    with pytest.raises(Refused) as info:
        await exchange(STAGE, f, [b'{"kind":"Secret","data":{"password":"aHVudGVy'])
    assert info.value.code == 502 and "not valid JSON" in info.value.message


async def test_64_bit_integers_survive_a_rewrite_exactly() -> None:
    body = (
        b'{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"data":{"k":"aHVudGVy"},'
        b'"n":18446744073709551615,"m":-9223372036854775808}'
    )
    f = flow("GET", "/api/v1/namespaces/default/secrets/x")
    out = b"".join(await exchange(STAGE, f, [body]))
    assert b"aHVudGVy" not in out
    assert b'"n":18446744073709551615,"m":-9223372036854775808}' in out


async def test_empty_bodies_pass() -> None:
    f = flow("DELETE", "/api/v1/namespaces/default/secrets/x")
    assert await exchange(STAGE, f, [], status=204, content_type="") == [b""]
    f = flow("HEAD", "/api/v1/namespaces/default/secrets/x")
    assert await exchange(STAGE, f, [], content_type="application/vnd.kubernetes.protobuf") == [b""]


async def test_watch_events_go_out_as_soon_as_each_line_is_complete() -> None:
    first = event("ADDED", secret("a", {"password": "hunter2-a"}))
    second = event("MODIFIED", secret("b", {"password": "hunter2-b"}))
    f = flow("GET", "/api/v1/namespaces/default/secrets", query="watch=true")
    assert f.is_stream
    out = await exchange(STAGE, f, [first + second[:30], second[30:]])
    assert orjson.loads(out[0])["object"]["data"]["password"] == MARKER_B64 and out[0].endswith(b"\n")
    assert orjson.loads(out[1])["type"] == "MODIFIED" and out[2] == b""
    assert b"aHVudGVy" not in b"".join(out)


async def test_watch_stream_split_at_every_byte_boundary() -> None:
    stream = (
        event("ADDED", secret("a", {"password": "hunter2"}))
        + event("BOOKMARK", {"kind": "Secret", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}})
        + event("ADDED", table([(["t", "Opaque"], secret("t", {"k": "hunter2"}, kind=False))]))
        + event("ERROR", {"kind": "Status", "apiVersion": "v1", "code": 410})
    )
    expected = None
    for cut in range(1, len(stream), 7):
        f = flow("GET", "/api/v1/watch/secrets")
        out = b"".join(await exchange(STAGE, f, split(stream, [cut, cut * 2])))
        expected = expected or out
        assert out == expected
    assert expected is not None and b64("hunter2").encode() not in expected
    assert [orjson.loads(line)["type"] for line in expected.splitlines()] == ["ADDED", "BOOKMARK", "ADDED", "ERROR"]


async def test_logs_follow_masks_a_secret_split_across_chunks() -> None:
    f = flow("GET", "/api/v1/namespaces/default/pods/web/log", query="follow=true")
    out = await exchange(
        STAGE, f, [b"starting\nusing key AKIAIOSF", b"ODNN7EXAMPLE for s3\n", b"done"], content_type="text/plain"
    )
    assert out[0] == b"starting\nusing key "
    assert out[1] == MARKER_BYTES + b" for s3\n"
    assert b"".join(out) == b"starting\nusing key " + MARKER_BYTES + b" for s3\ndone"


async def test_logs_with_a_pem_key_across_chunks() -> None:
    f = flow("GET", "/api/v1/namespaces/default/pods/web/log")
    log = b"boot\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    out = b"".join(await exchange(STAGE, f, split(log, [12, 30, 50, 70]), content_type="text/plain"))
    assert b"b3BlbnNzaC1rZXktdjEAAAAA" not in out and out.startswith(b"boot\n-----BEGIN OPENSSH PRIVATE KEY-----")


async def test_the_values_masked_are_counted_per_response_in_every_mode() -> None:
    """What kubegate_masked_values_total adds: the markers masking put in, not those upstream sent."""
    whole = flow("GET", "/api/v1/namespaces/default/secrets/db")
    body = orjson.dumps(secret("db", {"password": "hunter2", "user": "root"})) + b"\n"
    await exchange(STAGE, whole, split(body, [7]))
    assert whole.masked is not None and whole.masked.values == 2
    watch = flow("GET", "/api/v1/namespaces/default/secrets", query="watch=true")
    events = event("ADDED", secret("a", {"password": "hunter2-a"})) + event("ADDED", secret("b", {"k": "x", "j": "y"}))
    await exchange(STAGE, watch, split(events, [40, 100]))
    assert watch.masked is not None and watch.masked.values == 3
    logs = flow("GET", "/api/v1/namespaces/default/pods/web/log", query="follow=true")
    await exchange(
        STAGE,
        logs,
        [b"key AKIAIOSF", b"ODNN7EXAMPLE and " + MARKER_BYTES + b"\n", b"again AKIAIOSFODNN7EXAMPLE"],
        content_type="text/plain",
    )
    assert logs.masked is not None and logs.masked.values == 2


async def test_logs_pass_when_no_text_profile_applies() -> None:
    f = flow("GET", "/api/v1/namespaces/default/pods/web/log", masks=("secret-values",))
    assert await exchange(STAGE, f, [b"AKIAIOSFODNN7EXAMPLE\n"], content_type="text/plain") == [
        b"AKIAIOSFODNN7EXAMPLE\n",
        b"",
    ]


async def test_configmap_values_under_all_profiles() -> None:
    body = orjson.dumps(configmap("app", {"app.env": "SLACK=xoxb-123456789012-abcdefABCDEF\n", "db_password": "p"}))
    f = flow("GET", "/api/v1/namespaces/default/configmaps/app", masks=ALL)
    data = orjson.loads(b"".join(await exchange(STAGE, f, [body])))["data"]
    assert data == {"app.env": f"SLACK={MARKER}\n", "db_password": MARKER}


async def test_exec_output_is_masked_message_by_message_and_its_values_counted() -> None:
    stage = MaskingStage(masker())
    f = flow("GET", "/api/v1/namespaces/default/pods/p/exec", "command=env&stdout=true", masks=("credentials-in-text",))
    f.upgrade = Upgrade("exec", (channels.V5,), protocol=channels.V5)
    await stage.on_request(f)
    f.response_status = 101
    await stage.on_response(f)
    out = await stage.on_message(f, Message(False, channels.STDOUT, b"password=hunter2", raw=b"\x01password=hunter2"))
    out += await stage.on_message(f, Message(False, channels.STDOUT, b"hunter2\nok\n"))
    out += await stage.on_stream_end(f)
    shown = b"".join(m.data for m in out)
    assert b"hunter2" not in shown and shown.endswith(b"\nok\n") and MARKER_BYTES in shown
    assert f.masked is not None and f.masked.values == 1
    typed = Message(True, channels.STDIN, b"password=hunter2hunter2\n", raw=b"\x00password=hunter2hunter2\n")
    assert await stage.on_message(f, typed) == [typed], "stdin reaches the pod as typed"
