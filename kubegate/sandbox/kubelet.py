"""A kubelet stand-in for a real kube-apiserver: a Node whose exec, attach, port-forward and logs work.

kube-apiserver proxies those subresources of a pod to the kubelet of the pod's Node, at the address in
`status.addresses` and the port in `status.daemonEndpoints.kubeletEndpoint`. This Node declares
`ExtendWebSocketsToKubelet` (kube-apiserver 1.36+), so the apiserver hands the client's WebSocket to it
as is, and the sandbox's container emulation (shell, filesystem, logs, port echo servers) answers.
Pods bound to the Node (`spec.nodeName`) are marked Running, as a kubelet would after starting them.
The kubelet's own query names differ from the pod API's: `input`, `output`, `error` for stdin, stdout
and stderr, `port` (once per port) for `ports`, and the container is a path segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import MultiDict

from kubegate.sandbox.cluster.errors import ApiError
from kubegate.sandbox.cluster.exec import Runtime, serve_attach, serve_exec
from kubegate.sandbox.cluster.logs import LogBook, serve_log
from kubegate.sandbox.cluster.portforward import serve_portforward
from kubegate.tls import ensure_serving_cert, server_ssl_context

log = logging.getLogger(__name__)
DECLARED_FEATURES = ["ExtendWebSocketsToKubelet"]
# kube-apiserver's PortForwardLocation/ExecLocation rename these when it proxies to the kubelet
KUBELET_PARAMS = {"input": "stdin", "output": "stdout", "error": "stderr", "port": "ports"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodObjects:
    """What the emulated containers read from the cluster (env from Secrets and ConfigMaps), fetched
    before each call, because the Runtime reads it synchronously."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((key, namespace, name))

    def put(self, key: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        if obj is None:
            self._objects.pop((key, namespace, name), None)
        else:
            self._objects[(key, namespace, name)] = obj


class Kubelet:
    """One Node's kubelet, on 127.0.0.1, registered with the cluster at `server` as the admin."""

    def __init__(self, root: Path, server: str, admin_token: str, ca_file: Path, node: str = "kubelet-1") -> None:
        self.root = Path(root)
        self.server = server
        self.node = node
        self.ca_file = ca_file
        self._headers = {"Authorization": f"Bearer {admin_token}"}
        self.logs = LogBook()
        self.objects = PodObjects()
        self.runtime = Runtime(self.objects, self.logs)  # type: ignore[arg-type]
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Event = asyncio.Event()

    async def start(self) -> None:
        certs = ensure_serving_cert(self.root / "tls", ["127.0.0.1", "localhost"], cn="kubelet")
        app = web.Application()
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_route("*", "/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_route("*", "/portForward/{namespace}/{pod}", self._portforward)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs.cert, certs.key))
        await site.start()
        self.port = self._runner.addresses[0][1]
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(headers=self._headers, connector=aiohttp.TCPConnector(ssl=ctx))
        await self._register()
        self._tasks.append(asyncio.create_task(self._run_pods(), name=f"kubelet-{self.node}-pods"))
        await asyncio.wait_for(self._ready.wait(), 30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def append_log(
        self, namespace: str, pod: str, text: str, container: str | None = None, partial: bool = False
    ) -> None:
        """Append container output (call on the kubelet's event loop)."""
        self.logs.append(namespace, pod, text, container, partial)

    # -- the Node and its pods ------------------------------------------------------------------------

    async def _api(
        self, method: str, path: str, body: Any = None, content_type: str = "application/merge-patch+json"
    ) -> tuple[int, Any]:
        assert self._session is not None
        data = orjson.dumps(body) if body is not None else None
        async with self._session.request(
            method, self.server + path, data=data, headers={"Content-Type": content_type}
        ) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None

    async def _register(self) -> None:
        status, _ = await self._api(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node,
                    "labels": {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux"},
                },
            },
            content_type="application/json",
        )
        if status not in (201, 409):
            raise RuntimeError(f"could not register Node {self.node}: {status}")
        stamp = _now()
        capacity = {"cpu": "2", "memory": "8Gi", "pods": "110"}
        status, answer = await self._api(
            "PATCH",
            f"/api/v1/nodes/{self.node}/status",
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                    "declaredFeatures": DECLARED_FEATURES,
                    "capacity": capacity,
                    "allocatable": capacity,
                    "nodeInfo": {
                        "kubeletVersion": "v1.36.2",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "containerRuntimeVersion": "kubegate-sandbox://1",
                        "machineID": "",
                        "systemUUID": "",
                        "bootID": "",
                        "kernelVersion": "",
                        "osImage": "kubegate sandbox",
                        "kubeProxyVersion": "",
                    },
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubegate's kubelet stand-in is ready",
                            "lastHeartbeatTime": stamp,
                            "lastTransitionTime": stamp,
                        }
                    ],
                }
            },
        )
        if status != 200:
            raise RuntimeError(f"could not set the status of Node {self.node}: {status} {answer}")

    async def _run_pods(self) -> None:
        """Watch the pods bound to this Node and mark each Running with ready containers."""
        selector = f"spec.nodeName={self.node}"
        while True:
            try:
                _, listed = await self._api("GET", f"/api/v1/pods?fieldSelector={selector}")
                for pod in (listed or {}).get("items", []):
                    await self._mark_running(pod)
                self._ready.set()
                version = (listed or {}).get("metadata", {}).get("resourceVersion", "")
                assert self._session is not None
                url = (
                    f"{self.server}/api/v1/pods?watch=true&fieldSelector={selector}"
                    f"&resourceVersion={version}&allowWatchBookmarks=true"
                )
                async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
                    async for line in resp.content:
                        event = orjson.loads(line)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            await self._mark_running(event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kubelet %s: pod watch failed (%s); watching again", self.node, exc)
                await asyncio.sleep(0.5)

    async def _mark_running(self, pod: dict[str, Any]) -> None:
        status = pod.get("status") or {}
        if status.get("phase") == "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        stamp = _now()
        containers = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": f"sandbox://{meta['uid']}/{c['name']}",
                "state": {"running": {"startedAt": stamp}},
            }
            for c in spec.get("containers") or []
        ]
        conditions = [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        code, answer = await self._api(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            {
                "status": {
                    "phase": "Running",
                    "hostIP": "127.0.0.1",
                    "podIP": "10.244.0.10",
                    "podIPs": [{"ip": "10.244.0.10"}],
                    "startTime": stamp,
                    "conditions": conditions,
                    "containerStatuses": containers,
                }
            },
        )
        if code not in (200, 404, 409):
            log.warning(
                "kubelet %s: cannot mark pod %s/%s running: %s %s",
                self.node,
                meta["namespace"],
                meta["name"],
                code,
                answer,
            )

    async def _pod(self, request: web.Request) -> dict[str, Any]:
        """The pod a call names, and the Secrets and ConfigMaps its containers read their env from."""
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        code, pod = await self._api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        if code != 200:
            raise ApiError(404, f'pods "{name}" not found', "NotFound")
        for container in [*(pod["spec"].get("initContainers") or []), *(pod["spec"].get("containers") or [])]:
            refs = [((v.get("valueFrom") or {}).get("secretKeyRef"), "secrets") for v in container.get("env") or []]
            refs += [
                ((v.get("valueFrom") or {}).get("configMapKeyRef"), "configmaps") for v in container.get("env") or []
            ]
            refs += [(s.get("secretRef"), "secrets") for s in container.get("envFrom") or []]
            refs += [(s.get("configMapRef"), "configmaps") for s in container.get("envFrom") or []]
            for ref, resource in refs:
                if ref and ref.get("name"):
                    code, obj = await self._api("GET", f"/api/v1/namespaces/{ns}/{resource}/{ref['name']}")
                    self.objects.put(f"/{resource}", ns, ref["name"], obj if code == 200 else None)
        return dict(pod)

    @staticmethod
    def _as_pod_api(request: web.Request, container: str | None) -> web.Request:
        """The call in the pod API's own terms, which the sandbox's handlers speak."""
        query: MultiDict[str] = MultiDict()
        for key, value in request.query.items():
            query.add(KUBELET_PARAMS.get(key, key), value)
        if container is not None:
            query["container"] = container
        return request.clone(rel_url=request.rel_url.with_query(query))

    @staticmethod
    async def _healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, lambda r, pod: serve_exec(r, pod, self.runtime))

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, lambda r, pod: serve_attach(r, pod, self.runtime))

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, lambda r, pod: serve_portforward(r, pod), container=False)

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, lambda r, pod: serve_log(r, self.logs, pod))

    async def _serve(self, request: web.Request, handler: Any, container: bool = True) -> web.StreamResponse:
        try:
            pod = await self._pod(request)
            call = self._as_pod_api(request, request.match_info["container"] if container else None)
            response: web.StreamResponse = await handler(call, pod)
            return response
        except ApiError as err:
            return web.Response(status=err.code, text=err.message)
