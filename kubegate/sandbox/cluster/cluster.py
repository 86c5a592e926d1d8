"""SandboxCluster: an in-memory kube-apiserver over HTTPS that the real kubectl works against, for the
demo and for every end-to-end test of the gateway."""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from kubegate.tls import ensure_serving_cert, server_ssl_context

from .authn import Tokens
from .bootstrap import GATEWAY_USER, cluster_objects
from .handlers import Api
from .kinds import by_kind
from .logs import LogBook
from .rbac import Authorizer, User
from .resources import Resources, Write
from .server import SeenRequest, build_app
from .store import Store

ADMIN_USER = "sandbox-admin"
T = TypeVar("T")


class SandboxCluster:
    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0, *, watch_history: int = 2000) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.url = ""
        self.ca_file = self.state_dir / "cluster-tls" / "ca.crt"
        self.requests: list[SeenRequest] = []
        self.store = Store(watch_history)
        self.logs = LogBook()
        self.tokens = Tokens()
        self.authz = Authorizer(self.store)
        self.resources = Resources(self.store, self.authz, self.logs)
        self.gateway_token = secrets.token_urlsafe(32)
        self.admin_token = secrets.token_urlsafe(32)
        self.tokens.add(self.admin_token, ADMIN_USER, ["system:masters"])
        self.tokens.add(self.gateway_token, GATEWAY_USER, [])
        self._admin = User(ADMIN_USER, ("system:masters", "system:authenticated"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._runner: web.AppRunner | None = None
        self._create_all(cluster_objects())

    async def start(self) -> None:
        certs = ensure_serving_cert(self.state_dir / "cluster-tls", [self.host, "localhost"], cn="kubegate-sandbox")
        self.ca_file = certs.ca
        api = Api(self.store, self.resources, self.logs, self.authz, self.tokens)
        app = build_app(self.tokens, self.authz, api, self.requests.append)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=server_ssl_context(certs.cert, certs.key))
        await site.start()
        bound = self._runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"https://{host}:{bound}"
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._loop = None

    def add_token(self, token: str, user: str, groups: list[str]) -> None:
        self.tokens.add(token, user, groups)

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """A kubeconfig with context `sandbox`: this cluster, its CA embedded, and a bearer token."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "sandbox",
            "preferences": {},
            "clusters": [
                {
                    "name": "sandbox",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": "sandbox", "user": {"token": token or self.gateway_token}}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox"}}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def seed(self, objects: list[dict[str, Any]]) -> None:
        """Create objects as the admin (any supported kind); an invalid one raises ApiError."""
        self._on_loop(lambda: self._create_all(objects))

    def append_log(
        self, namespace: str, pod: str, text: str, container: str | None = None, partial: bool = False
    ) -> None:
        """Append log lines; `partial` leaves text without a final newline open, sent to followers as is."""
        self._on_loop(lambda: self.logs.append(namespace, pod, text, container, partial))

    def _create_all(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            kind = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            if kind is None or not kind.stored:
                raise ValueError(f"the sandbox cannot store {obj.get('apiVersion')}/{obj.get('kind')}")
            namespace = (obj.get("metadata") or {}).get("namespace", "default") if kind.namespaced else ""
            self.resources.create(kind, namespace, obj, Write(self._admin, "sandbox-seed"))

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop thread (the store and stream queues live there)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result()
