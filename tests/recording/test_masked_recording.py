"""Property: secret values planted anywhere in a response or request body never leave the gateway,
neither in the bytes the client receives nor in the recording — whatever the chunking upstream."""

from __future__ import annotations

import asyncio
import base64
import string
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.flow import Flow, Stage
from kubegate.identity.model import Identity
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube.body import RequestBodyStage
from kubegate.kube.stage import RequestInfoStage
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.masking.stage import MaskingStage
from kubegate.policy.decision import Decision
from kubegate.proxy.pipeline import Pipeline
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RecorderStage, SessionStage
from kubegate.store.engine import Store
from kubegate.store.tables import events
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from tests.flows import flow_of

PROFILES = ("secret-values", "last-applied", "env-credentials", "credentials-in-text")
secrets = st.text(alphabet=string.ascii_letters + string.digits + "+/=_-", min_size=12, max_size=40)


class Verifier:
    async def verify(self, token: str) -> Identity:
        return Identity(issuer="https://idp", subject="alice", username="idp:alice", groups=("dev",))


class Masks(Stage):
    """Stands in for the policy stage: every request gets the masks under test."""

    name = "policy"

    async def on_request(self, flow: Flow) -> None:
        flow.decision = Decision("allow", (), "allowed", masks=PROFILES)


def documents(values: list[str]) -> tuple[dict[str, Any], str]:
    secret_list = {
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {},
        "items": [
            {
                "metadata": {
                    "name": f"s{i}",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(
                            {"stringData": {"k": v}}
                        ).decode()
                    },
                },
                "data": {"k": base64.b64encode(v.encode()).decode()},
                "type": "Opaque",
            }
            for i, v in enumerate(values)
        ],
    }
    log = "".join(f"line {i} password={v}\n" for i, v in enumerate(values))
    return secret_list, log


async def run_once(values: list[str], cut: int, root: Path) -> tuple[bytes, bytes, str]:
    secret_list, log = documents(values)
    body = orjson.dumps(secret_list)

    async def upstream(request: web.Request) -> web.StreamResponse:
        payload = log.encode() if request.path.endswith("/log") else body
        resp = web.StreamResponse(
            headers={"Content-Type": "text/plain" if request.path.endswith("/log") else "application/json"}
        )
        await resp.prepare(request)
        for i in range(0, len(payload), cut):
            await resp.write(payload[i : i + cut])
            await asyncio.sleep(0)
        return resp

    up_app = web.Application()
    up_app.router.add_route("*", "/{tail:.*}", upstream)
    up = TestServer(up_app)
    await up.start_server()
    store = await Store.open(f"sqlite:///{root / 'kubegate.db'}")
    recorder = Recorder(store, max_body_bytes=1 << 20)
    await recorder.start()
    masker = Masker(MaskingConfig())
    conn = Connection(ConnectionConfig(name="up", server=str(up.make_url("")).rstrip("/"), auth={"token": "gw"}))
    pipeline = Pipeline(
        [
            AuthenticationStage(Verifier()),
            RequestInfoStage(),
            RequestBodyStage(),
            Masks(),
            SessionStage(recorder),
            RecorderStage(recorder, masker),
            MaskingStage(masker),
        ]
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        flow = await flow_of(request, conn)
        return await pipeline.run(flow)

    gw_app = web.Application()
    gw_app.router.add_route("*", "/{tail:.*}", handle)
    gw = TestServer(gw_app)
    await gw.start_server()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as client:
            async with client.get(gw.make_url("/api/v1/namespaces/a/secrets")) as r:
                listed = await r.read()
            async with client.get(gw.make_url("/api/v1/namespaces/a/pods/p/log")) as r:
                logs = await r.read()
            created = secret_list["items"][0] | {"kind": "Secret", "apiVersion": "v1"}
            async with client.post(
                gw.make_url("/api/v1/namespaces/a/secrets"),
                data=orjson.dumps(created),
                headers={"Content-Type": "application/json"},
            ) as r:
                await r.read()
        await recorder.flush()
        async with store.read() as c:
            recorded = "\n".join(row.data for row in (await c.execute(sa.select(events.c.data))).all())
    finally:
        await gw.close()
        await conn.close()
        await recorder.close()
        await store.close()
        await up.close()
    return listed, logs, recorded


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(secrets, min_size=1, max_size=4, unique=True), cut=st.integers(min_value=1, max_value=64))
def test_planted_secrets_never_reach_the_client_or_the_recording(values: list[str], cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        listed, logs, recorded = asyncio.run(run_once(values, cut, Path(tmp)))
    assert orjson.loads(listed)["items"][0]["metadata"]["name"] == "s0"
    assert b"line 0 password=" in logs
    for v in values:
        for form in (v, base64.b64encode(v.encode()).decode()):
            assert form.encode() not in listed and form.encode() not in logs
            assert form not in recorded
