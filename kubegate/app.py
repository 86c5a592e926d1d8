"""Wires the parts into one aiohttp Application: the pipeline, probes, metrics and the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubegate.approvals import slack
from kubegate.approvals.service import ApprovalService
from kubegate.approvals.stage import ApprovalStage
from kubegate.audit.accesslog import AccessLogStage
from kubegate.audit.wiring import AuditServices
from kubegate.config import Config, policy_engine
from kubegate.flow import Flow, Stage
from kubegate.identity.model import Identity
from kubegate.identity.oidc import Verifier
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube.body import RequestBodyStage
from kubegate.kube.stage import RequestInfoStage
from kubegate.kube.status import Refused, status_response
from kubegate.masking.masker import Masker
from kubegate.masking.stage import MaskingStage
from kubegate.masking.writeback import WriteBack
from kubegate.mcp import routes as mcp_routes
from kubegate.mcp.loopback import Loopback
from kubegate.metrics import Metrics, MetricsStage, UpstreamLatencyStage
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.stage import PolicyStage
from kubegate.proxy.headers import connection_tokens, upstream_request_headers
from kubegate.proxy.pipeline import Pipeline
from kubegate.proxy.upgrade import UpgradeBridge, UpgradeGate
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RecorderStage, SessionStage
from kubegate.store.engine import Store
from kubegate.tracing import Tracing
from kubegate.upstream.bindings import TemporaryBindings
from kubegate.upstream.connection import Connection
from kubegate.upstream.dryrun import StoredObjects
from kubegate.upstream.stage import RoleGrants, UpstreamAccessStage
from kubegate.web import approvals_api, policy_api, sessions_api
from kubegate.web.auth import make_authorize, roles_of
from kubegate.web.ui import setup_ui

log = logging.getLogger(__name__)
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
K8S_PREFIX = "/k8s/"


@dataclass(eq=False)
class Gateway:
    """Everything one running kubegate holds; built from Config, started and closed with the app."""

    config: Config
    verifier: Verifier
    policy: PolicyEngine
    masker: Masker
    metrics: Metrics = field(default_factory=Metrics)
    connections: dict[str, Connection] = field(default_factory=dict)
    bindings: dict[str, TemporaryBindings] = field(default_factory=dict)
    store: Store | None = None
    recorder: Recorder | None = None
    pipeline: Pipeline | None = None
    approvals: ApprovalService | None = None
    audit: AuditServices | None = None
    tracing: Tracing | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    base_url: str = ""
    """What approve commands and sign-in redirects name: listen.base_url(), with the bound port once listening."""
    loopback: Loopback | None = None
    """kubegate's own bound listener, where MCP tool calls send their Kubernetes requests; set once listening."""

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        gateway = cls(
            config=config,
            verifier=Verifier(config.identity),
            policy=policy_engine(config),
            masker=Masker(config.masking),
            base_url=config.listen.base_url(),
        )
        gateway.connections = {c.name: Connection(c) for c in config.connections}
        gateway.bindings = {name: TemporaryBindings(conn) for name, conn in gateway.connections.items()}
        return gateway

    async def start(self) -> None:
        self.store = await Store.open(self.config.store_url)
        self.recorder = Recorder.from_config(self.store, self.config.store, scrub=self.masker.scrub)
        await self.recorder.start()
        self.metrics.watch_recorder(self.recorder)
        self.metrics.watch_verifier(self.verifier)
        await self.verifier.start()
        self.approvals = ApprovalService(
            self.store, self.recorder, self.policy, self.config.approvals, connections=tuple(self.connections)
        )
        self.metrics.watch_approvals(self.approvals)
        await self.approvals.start()
        grants = RoleGrants(self.bindings, self.recorder)
        stages: list[Stage] = [
            *([AccessLogStage(self.config.audit.access_log)] if self.config.audit.access_log.enabled else []),
            MetricsStage(self.metrics),
            AuthenticationStage(self.verifier),
            SessionStage(self.recorder),
            RequestInfoStage(),
            UpgradeGate(self.config.streams),
            RequestBodyStage(),
            PolicyStage(self.policy, StoredObjects(grants), WriteBack(self.masker, self.policy, grants)),
            ApprovalStage(self.approvals, self.masker, lambda: self.base_url),
            RecorderStage(self.recorder, self.masker),
            MaskingStage(self.masker),
            UpstreamAccessStage(grants),
            UpstreamLatencyStage(self.metrics),
        ]
        if self.config.tracing.otlp_endpoint:
            self.tracing = Tracing(self.config.tracing)
            stages = self.tracing.instrument(stages)
        self.pipeline = Pipeline(stages, upgrades=UpgradeBridge(self.config.streams), streams=self.config.streams)
        self.audit = AuditServices.from_config(self.config.audit, self.store, self.metrics.registry)
        self.tasks.extend(self.audit.start())
        self.tasks.append(asyncio.create_task(self.policy.watch(), name="policy-reload"))
        for name, bindings in self.bindings.items():
            self.tasks.append(asyncio.create_task(bindings.run_reaper(), name=f"reap-bindings-{name}"))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stage in self.pipeline.stages if self.pipeline else []:
            await stage.close()
        if self.pipeline is not None and self.pipeline.upgrades is not None:
            await self.pipeline.upgrades.close()
        if self.audit is not None:
            await self.audit.close()
        if self.recorder is not None:
            await self.recorder.close()
        for conn in self.connections.values():
            await conn.close()
        if self.loopback is not None:
            await self.loopback.close()
        await self.verifier.close()
        if self.store is not None:
            await self.store.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    def current_store(self) -> Store:
        """The store, once started: the admin API is served only after start-up, so a missing store is a 503."""
        if self.store is None:
            raise Refused(503, "kubegate is still starting; try again in a moment", reason="ServiceUnavailable")
        return self.store

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        ok = True
        try:
            assert self.store is not None
            await asyncio.wait_for(self.store.ping(), 5)
            checks["store"] = "ok"
        except Exception as exc:
            ok, checks["store"] = False, f"unavailable: {exc.__class__.__name__}: {exc}"
        issuers = self.verifier.ready()
        checks["issuers"] = issuers
        if issuers and not any(v == "ok" for v in issuers.values()):
            ok = False
        checks["policy"] = self.policy.status()
        if self.audit is not None:
            checks.update(self.audit.status())
        return ok, checks


def _split_target(target: str) -> tuple[str, str, str] | None:
    """(connection, raw path, raw query) from the raw request target `/k8s/<conn>/<path>?<query>`."""
    if not target.startswith(K8S_PREFIX):
        return None
    path, _, query = target.partition("?")
    conn, slash, rest = path[len(K8S_PREFIX) :].partition("/")
    return conn, "/" + rest if slash else "/", query


async def handle_kube(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    split = _split_target(request.raw_path)
    connection = gateway.connections.get(split[0]) if split else None
    if split is None or connection is None:
        names = ", ".join(sorted(gateway.connections)) or "none"
        return status_response(
            404,
            f"kubegate has no connection named {split[0] if split else ''!r}; registered connections: {names}",
            reason="NotFound",
        )
    upgrade = "upgrade" in connection_tokens(request.headers) and "Upgrade" in request.headers
    try:
        body = b"" if upgrade else await request.read()
    except web.HTTPRequestEntityTooLarge:
        return status_response(
            413, f"request body is larger than kubegate accepts ({gateway.config.max_request_body_bytes} bytes)"
        )
    flow = Flow(
        request=request,
        connection=connection,
        method=request.method,
        raw_path=split[1],
        query_string=split[2],
        headers=upstream_request_headers(request.headers),
        body=body,
        is_upgrade=upgrade,
    )
    assert gateway.pipeline is not None
    return await gateway.pipeline.run(flow)


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def handle_readyz(request: web.Request) -> web.Response:
    ok, checks = await request.app[GATEWAY].readiness()
    return web.Response(
        status=200 if ok else 503, content_type="application/json", body=orjson.dumps({"ready": ok, "checks": checks})
    )


async def handle_metrics(request: web.Request) -> web.Response:
    await request.app[GATEWAY].metrics.refresh()
    body = generate_latest(request.app[GATEWAY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admin API handlers refuse by raising Refused; the client gets a Status, never a traceback."""
    try:
        return await handler(request)
    except Refused as refusal:
        return refusal.response()


def build_app(config: Config) -> web.Application:
    gateway = Gateway.from_config(config)
    app = web.Application(client_max_size=config.max_request_body_bytes, middlewares=[refusals])
    app[GATEWAY] = gateway
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/livez", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    authorize = make_authorize(gateway.verifier, config.identity)
    sessions_api.setup_routes(app, gateway.current_store, authorize)
    policy_api.setup_routes(app, lambda: gateway.policy, config, authorize)

    def is_reviewer(identity: Identity) -> bool:
        return gateway.approvals is not None and gateway.approvals.is_reviewer(identity)

    approvals_api.setup_routes(
        app,
        lambda: gateway.approvals,
        make_authorize(gateway.verifier, config.identity, is_reviewer),
        lambda identity: roles_of(identity, config.identity, is_reviewer),
        lambda: gateway.base_url,
    )
    slack.setup_routes(app, config.approvals.slack, lambda: gateway.approvals)
    app.router.add_route("*", "/k8s/{tail:.*}", handle_kube)
    setup_ui(app, gateway, config)
    mcp = None
    if config.mcp.enabled:
        mcp = mcp_routes.setup_routes(app, gateway)  # the MCP SDK loads on the first /mcp request

    async def lifecycle(app: web.Application) -> Any:
        await gateway.start()
        async with mcp.running() if mcp is not None else contextlib.nullcontext():
            yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app
