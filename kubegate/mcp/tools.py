"""The Kubernetes tools an agent calls: each one is a few ordinary Kubernetes API requests, nothing more.

No tool decides anything: every request travels the pipeline (see loopback), so the rules, approvals,
masking, recording and temporary RBAC that govern kubectl govern the agent. A refusal comes back as a
tool error carrying kubegate's own message; a held request as a pending-approval result.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import aiohttp
import orjson
import yaml
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field

from kubegate import __version__
from kubegate.approvals.model import ResourceRef, Scope
from kubegate.durations import parse_duration
from kubegate.identity.model import AuthError
from kubegate.identity.stage import bearer_token
from kubegate.kube.status import Refused
from kubegate.mcp import approvals
from kubegate.mcp.discovery import Discovery, Resource
from kubegate.mcp.loopback import Answer, Caller, Loopback
from kubegate.mcp.recording import OBJECT_ARGUMENTS, ToolCalls
from kubegate.mcp.shaping import diff, dump, fit, items_that_fit, trimmed
from kubegate.policy.explain import ExplainError, request_from_kubectl

if TYPE_CHECKING:
    from kubegate.app import Gateway

T = TypeVar("T")
FIELD_MANAGER = "kubegate-mcp"
PROGRESS_SECONDS = 5.0
LONG_ARGUMENT = 80
INSTRUCTIONS = (
    "Kubernetes through kubegate: every call runs as you, under kubegate's policy (it may refuse, "
    "mask values, or hold a call for human approval). Start with list_api_resources."
)

Connection = Annotated[str, Field(description="kubegate connection (cluster) name; default: the first one")]
Namespace = Annotated[str, Field(description="namespace; empty for cluster-scoped resources or all namespaces")]
ResourceName = Annotated[
    str, Field(description="resource as kubectl names it: pods, deploy, secrets, deployments.apps ...")
]


def call_line(tool: str, arguments: dict[str, Any]) -> str:
    """The tool call as its recorded command line (`mcp get resource=pods namespace=shop`); long values and
    manifests by size (a manifest's objects may hold secrets: the tool_call event keeps them masked)."""
    parts = [f"mcp {tool}"]
    for key, value in arguments.items():
        if value in ("", None, [], {}):
            continue
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        by_size = len(text) > LONG_ARGUMENT or key in OBJECT_ARGUMENTS.get(tool, ())
        parts.append(f"{key}=<{len(text)} characters>" if by_size else f"{key}={text}")
    return "".join(c if " " <= c <= "~" else "?" for c in " ".join(parts))  # a header value: one ASCII line


def _status_message(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message") or body.get("reason") or f"HTTP {answer.status}")
    return f"HTTP {answer.status}: {str(body)[:500]}"


class Tools:
    """Binds the tools to one gateway: its loopback, discovery, approvals and MCP settings."""

    def __init__(self, gateway: Gateway, loopback: Callable[[], Loopback | None]) -> None:
        self.gateway = gateway
        self._loopback = loopback
        self.config = gateway.config.mcp
        self._discovery: Discovery | None = None

    @property
    def loopback(self) -> Loopback:
        lb = self._loopback()
        if lb is None:
            raise ToolError("kubegate's MCP endpoint is not listening yet; try again in a moment")
        return lb

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            self._discovery = Discovery(self.loopback)
        return self._discovery

    def connection(self, name: str) -> str:
        names = list(self.gateway.connections)
        if not name:
            if not names:
                raise ToolError("kubegate has no connections configured; ask its operator to add one")
            return names[0]
        if name not in names:
            raise ToolError(
                f"kubegate has no connection named {name!r}; registered connections: {', '.join(names) or 'none'}"
            )
        return name

    @staticmethod
    def caller(ctx: Context) -> Caller:
        headers = ctx.headers or {}
        token = bearer_token(headers.get("authorization"))  # the endpoint verified it
        session = headers.get("mcp-session-id", "")
        params = ctx.session.client_params if ctx.session is not None else None
        client = params.client_info.name if params is not None else ""
        call = ctx.request_context.params or {}
        return Caller(
            token=token,
            session_id=session,
            client=client,
            command=call_line(str(call.get("name", "")), call.get("arguments") or {}),
        )

    async def send(
        self,
        ctx: Context,
        connection: str,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        allow: tuple[int, ...] = (),
    ) -> Answer | dict[str, Any]:
        """The request's answer; a pending-approval result when a rule holds it; ToolError when refused."""
        caller = self.caller(ctx)
        answer = await self.unless_held(
            caller,
            method,
            path,
            self.loopback.request(caller, connection, method, path, query=query, body=body, content_type=content_type),
        )
        if isinstance(answer, dict):
            return answer
        service = self.gateway.approvals
        details = answer.body.get("details") if isinstance(answer.body, dict) else None
        if answer.status == 403 and isinstance(details, dict) and details.get("kind") == "accessrequest":
            held = await service.get(details["name"]) if service is not None else None
            if held is not None and held.state == "pending":
                return approvals.pending_result(held, self.gateway.base_url)
        if not answer.ok and answer.status not in allow:
            raise ToolError(_status_message(answer))
        return answer

    async def unless_held(self, caller: Caller, method: str, path: str, request: Awaitable[T]) -> T | dict[str, Any]:
        """What `request` answers, or at once a pending-approval result when a review rule holds it."""
        since = time.time()
        call = asyncio.ensure_future(request)
        try:
            service = self.gateway.approvals
            if service is not None:
                identity = await self.gateway.verifier.verify(caller.token)
                held = await approvals.held(
                    service, identity, method, path, since, call, self.config.approval_poll_seconds
                )
                if held is not None:
                    return approvals.pending_result(held, self.gateway.base_url)
            return await call
        except aiohttp.ClientError as exc:
            raise ToolError(
                f"kubegate could not pass this call to its own Kubernetes endpoint ({exc}); try again, "
                "and tell kubegate's operator if it keeps failing"
            ) from exc
        finally:
            if not call.done():
                call.cancel()

    def finish(self, result: Answer | dict[str, Any], text: Callable[[Answer], str]) -> str:
        if isinstance(result, dict):
            return dump(result)
        out = text(result)
        if result.warnings:
            out = "".join(f"warning: {w}\n" for w in result.warnings) + out
        return fit(out, self.config.max_result_chars, "ask for less (a name, a selector, a smaller limit)")

    async def resource(self, ctx: Context, connection: str, name: str, api_version: str = "") -> Resource:
        return await self.discovery.resolve(self.caller(ctx), connection, name, api_version)

    async def recorded(self, ctx: Context, tool: str, arguments: dict[str, Any], run: Callable[[], Awaitable[T]]) -> T:
        """`run()` (the tool call), recorded in the caller's MCP session before it runs and after."""
        recorder = self.gateway.recorder
        if recorder is None:
            raise ToolError("kubegate's recorder is not running yet, so it runs no tool call; try again in a moment")
        caller = self.caller(ctx)
        try:
            identity = await self.gateway.verifier.verify(caller.token)
        except AuthError as exc:
            raise ToolError(f"kubegate refused the token: {exc.reason}; sign in again") from exc
        connection = str(arguments.get("connection") or next(iter(self.gateway.connections), ""))
        client = getattr(ctx.request_context.request, "client", None)
        calls = ToolCalls(recorder, self.gateway.masker)
        return await calls.around(identity, caller, connection, getattr(client, "host", ""), tool, arguments, run)


class RecordedServer(MCPServer):
    """The SDK's server, with every tool call recorded around the SDK's own handling of it (see recording)."""

    def __init__(self, tools: Tools) -> None:
        super().__init__(name="kubegate", version=__version__, instructions=INSTRUCTIONS)
        self.tools = tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> CallToolResult | InputRequiredResult:
        if context is None:  # not a client's call (the SDK makes none such): nobody to record it for
            raise ToolError("kubegate runs tool calls only for an MCP client's request")
        return await self.tools.recorded(
            context, name, arguments, lambda: super(RecordedServer, self).call_tool(name, arguments, context)
        )


def build_server(tools: Tools) -> MCPServer:
    """The MCP server with every tool; the write tools only when not read-only."""
    server = RecordedServer(tools)

    @server.tool()
    async def list_api_resources(ctx: Context, connection: Connection = "") -> str:
        """List the resource types of the cluster (name, apiVersion, kind, namespaced, short names, verbs)."""
        conn = tools.connection(connection)
        found = await tools.discovery.resources(tools.caller(ctx), conn)
        return fit(dump([r.describe() for r in found]), tools.config.max_result_chars, "the list is long")

    @server.tool()
    async def get(
        ctx: Context,
        resource: ResourceName,
        name: str = "",
        namespace: Namespace = "",
        api_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        continue_token: str = "",
        connection: Connection = "",
    ) -> str:
        """Get one object by name, or list objects (selectors, a page of `limit`, next page by continue_token).
        Output is YAML without managedFields; values policy masks read `<masked by kubegate>`."""
        conn = tools.connection(connection)
        res = await tools.resource(ctx, conn, resource, api_version)
        path = res.path(namespace, name)
        if name:
            result = await tools.send(ctx, conn, "GET", path)
            return tools.finish(result, lambda a: dump(trimmed(a.body)))
        query = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_token,
        }
        result = await tools.send(ctx, conn, "GET", path, query=query)
        if isinstance(result, Answer) and isinstance(result.body, dict):
            fits = items_that_fit(trimmed(result.body), tools.config.max_result_chars)
            if fits < len(result.body.get("items") or []):  # ask for a page that fits, so continue stays exact
                result = await tools.send(ctx, conn, "GET", path, query={**query, "limit": fits})
        return tools.finish(result, _listing)

    @server.tool()
    async def describe(
        ctx: Context,
        resource: ResourceName,
        name: str,
        namespace: Namespace = "",
        api_version: str = "",
        connection: Connection = "",
    ) -> str:
        """One object with its status and the events about it (like kubectl describe)."""
        conn = tools.connection(connection)
        res = await tools.resource(ctx, conn, resource, api_version)
        result = await tools.send(ctx, conn, "GET", res.path(namespace, name))
        if not isinstance(result, Answer):
            return dump(result)
        obj = trimmed(result.body)
        uid = obj.get("metadata", {}).get("uid", "")
        events_path = f"/api/v1/namespaces/{namespace}/events" if namespace else "/api/v1/events"
        events = await tools.send(
            ctx, conn, "GET", events_path, query={"fieldSelector": f"involvedObject.uid={uid}"}, allow=(403,)
        )
        listed = events.body.get("items", []) if isinstance(events, Answer) and events.ok else None
        summary = {
            "object": obj,
            "events": "not readable by you"
            if listed is None
            else [
                {k: e.get(k) for k in ("type", "reason", "message", "count", "lastTimestamp") if e.get(k) is not None}
                for e in listed
            ],
        }
        return tools.finish(Answer(200, summary, result.warnings), lambda a: dump(a.body))

    @server.tool()
    async def pod_logs(
        ctx: Context,
        pod: str,
        namespace: str,
        container: str = "",
        tail_lines: Annotated[int, Field(ge=1, le=10_000)] = 200,
        since_seconds: Annotated[int | None, Field(ge=1)] = None,
        previous: bool = False,
        connection: Connection = "",
    ) -> str:
        """The last lines of a pod's log (one container, optionally since some seconds ago or the previous run)."""
        conn = tools.connection(connection)
        query = {"container": container, "tailLines": tail_lines, "sinceSeconds": since_seconds, "previous": previous}
        result = await tools.send(ctx, conn, "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query)
        return tools.finish(result, lambda a: str(a.body or ""))

    @server.tool()
    async def rollout_status(
        ctx: Context, resource: ResourceName, name: str, namespace: str, connection: Connection = ""
    ) -> str:
        """Whether a deployment, statefulset or daemonset has rolled out: generations, replicas, conditions."""
        conn = tools.connection(connection)
        res = await tools.resource(ctx, conn, resource)
        result = await tools.send(ctx, conn, "GET", res.path(namespace, name))
        return tools.finish(result, _rollout)

    @server.tool()
    async def approval_status(
        ctx: Context,
        request_id: str,
        wait_seconds: Annotated[
            int, Field(ge=0, le=600, description=("wait up to this long for a decision, with progress notifications"))
        ] = 0,
    ) -> str:
        """The state of an access request a held call created, and what to do next."""
        identity = await tools.gateway.verifier.verify(tools.caller(ctx).token)
        service = tools.gateway.approvals
        request = await service.get(request_id) if service is not None else None
        if service is None or request is None or request.username != identity.username:
            raise ToolError(
                f"kubegate has no access request {request_id!r} of yours; use the request_id a held call returned"
            )
        deadline = time.monotonic() + wait_seconds
        while request.effective_state(time.time()) == "pending" and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            await ctx.report_progress(wait_seconds - left, wait_seconds, f"access request {request_id} is pending")
            with contextlib.suppress(TimeoutError):
                request = await asyncio.wait_for(service.wait(request_id), min(left, PROGRESS_SECONDS))
            request = await service.get(request_id) or request
        return dump(approvals.status_result(request))

    @server.tool()
    async def explain(
        ctx: Context,
        kubectl: Annotated[
            str, Field(description=("the request as a kubectl command line, e.g. `delete configmap cfg -n shop`"))
        ],
        connection: Connection = "",
    ) -> str:
        """What kubegate's policy would decide for you on a request, before trying it (nothing is sent)."""
        conn = tools.connection(connection)
        identity = await tools.gateway.verifier.verify(tools.caller(ctx).token)
        try:
            info, obj = request_from_kubectl(shlex.split(kubectl.removeprefix("kubectl ")))
        except (ExplainError, ValueError) as exc:
            raise ToolError(f"kubegate cannot read that as a kubectl command: {exc}") from exc
        decision = tools.gateway.policy.explain(identity, info, conn, obj).as_dict()
        decision.pop("misses", None)  # other rules' conditions are for policy readers, not every caller
        return dump(
            {"request": {k: v for k, v in info.as_dict().items() if v not in ("", None, [])}, "decision": decision}
        )

    @server.tool()
    async def request_access(
        ctx: Context,
        namespace: str,
        verbs: list[str],
        resources: Annotated[
            list[str],
            Field(description="as kubectl names them, with group and subresource: pods, pods/log, deployments.apps"),
        ],
        reason: Annotated[str, Field(description="why, for the reviewers")],
        duration: Annotated[str, Field(description="how long, e.g. 30m, 2h")] = "1h",
        connection: Connection = "",
    ) -> str:
        """Ask reviewers ahead of time for verbs on resources in a namespace for a while (a time-boxed grant)."""
        conn = tools.connection(connection)
        identity = await tools.gateway.verifier.verify(tools.caller(ctx).token)
        service = tools.gateway.approvals
        if service is None:
            raise ToolError("kubegate's approvals are not running yet; try again in a moment")
        try:
            refs = tuple(ResourceRef.parse(r) for r in resources)
            scope = Scope(namespace=namespace, verbs=tuple(verbs), resources=refs, duration=parse_duration(duration))
            request = await service.ask_scope(identity, conn, scope, reason, tools.gateway.base_url)
        except ValueError as exc:
            raise ToolError(f"kubegate cannot read that access request: {exc}") from exc
        except Refused as exc:
            raise ToolError(f"kubegate refused the access request: {exc}") from exc
        return dump(approvals.pending_result(request, tools.gateway.base_url, approvals.SCOPE))

    if tools.config.read_only:
        return server

    @server.tool()
    async def apply(
        ctx: Context,
        manifest: Annotated[str, Field(description="YAML or JSON, one or more documents")],
        namespace: Namespace = "",
        dry_run: bool = False,
        force: bool = False,
        connection: Connection = "",
    ) -> str:
        """Server-side apply of a manifest (field manager kubegate-mcp); returns each object's diff."""
        conn = tools.connection(connection)
        try:
            docs = [d for d in yaml.safe_load_all(manifest) if d]
        except yaml.YAMLError as exc:
            raise ToolError(f"kubegate could not read the manifest as YAML: {_yaml_problem(exc)}") from exc
        out = []
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("metadata", {}).get("name"):
                raise ToolError("kubegate applies objects with apiVersion, kind and metadata.name; fix the manifest")
            res = await tools.resource(ctx, conn, doc["kind"], doc.get("apiVersion", ""))
            ns = (doc["metadata"].get("namespace") or namespace) if res.namespaced else ""
            if res.namespaced and not ns:
                raise ToolError(
                    f"{res.kind} {doc['metadata']['name']} needs a namespace: set metadata.namespace "
                    "or the namespace argument"
                )
            path = res.path(ns, doc["metadata"]["name"])
            # For the diff only: an agent may be let write what it may not read; the apply is what policy judges.
            before = await tools.send(ctx, conn, "GET", path, allow=(403, 404))
            if isinstance(before, dict):
                return dump(before)
            result = await tools.send(
                ctx,
                conn,
                "PATCH",
                path,
                body=orjson.dumps(doc),
                content_type="application/apply-patch+yaml",
                query={"fieldManager": FIELD_MANAGER, "force": force, "dryRun": "All" if dry_run else ""},
            )
            if isinstance(result, dict):
                return dump(result)
            name = f"{res.kind}/{doc['metadata']['name']}"
            changed = diff(before.body if before.ok else None, result.body, name)
            if before.status == 403:
                changed = f"(you may not read {name}, so this diff shows all of it as new)\n{changed}"
            out.append(
                ("(dry run) " if dry_run else "") + (f"{name} applied\n{changed}" if changed else f"{name} unchanged\n")
            )
        return fit("".join(out), tools.config.max_result_chars, "apply fewer objects at once")

    @server.tool()
    async def delete(
        ctx: Context,
        resource: ResourceName,
        name: str,
        namespace: Namespace = "",
        api_version: str = "",
        dry_run: bool = False,
        connection: Connection = "",
    ) -> str:
        """Delete one object by name."""
        conn = tools.connection(connection)
        res = await tools.resource(ctx, conn, resource, api_version)
        result = await tools.send(
            ctx, conn, "DELETE", res.path(namespace, name), query={"dryRun": "All" if dry_run else ""}
        )
        return tools.finish(result, lambda a: f"{'(dry run) ' if dry_run else ''}{res.kind}/{name} deleted\n")

    @server.tool()
    async def scale(
        ctx: Context,
        resource: ResourceName,
        name: str,
        namespace: str,
        replicas: Annotated[int, Field(ge=0)],
        connection: Connection = "",
    ) -> str:
        """Set the replicas of a deployment, statefulset or replicaset (its scale subresource)."""
        conn = tools.connection(connection)
        res = await tools.resource(ctx, conn, resource)
        result = await tools.send(
            ctx,
            conn,
            "PATCH",
            res.path(namespace, name, "scale"),
            body=orjson.dumps({"spec": {"replicas": replicas}}),
            content_type="application/merge-patch+json",
        )
        return tools.finish(result, lambda a: f"{res.kind}/{name} scaled to {replicas} replicas\n")

    @server.tool(name="exec")
    async def exec_(
        ctx: Context,
        pod: str,
        namespace: str,
        command: list[str],
        container: str = "",
        timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 30,
        connection: Connection = "",
    ) -> str:
        """Run a non-interactive command in a pod (no stdin, no TTY); stdout, stderr and the exit code."""
        conn = tools.connection(connection)
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
        query = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
        if container:
            query.append(("container", container))
        caller = tools.caller(ctx)
        done = await tools.unless_held(
            caller, "GET", path, tools.loopback.exec(caller, conn, path, query, seconds=timeout_seconds)
        )
        if isinstance(done, dict):
            return dump(done)
        if done.refused:
            raise ToolError(
                f"the exec was refused before it started (HTTP {done.refused}); call explain with "
                f"`exec {pod} -n {namespace} -- {' '.join(command)}` to see what kubegate's policy says"
            )
        status = done.status or {}
        causes = status.get("details", {}).get("causes", [])
        code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), None)
        exit_code = 0 if status.get("status") == "Success" else code
        result: dict[str, Any] = {
            "exit_code": exit_code,
            "timed_out": done.timed_out,
            "stdout": done.output[1].decode(errors="replace"),
            "stderr": done.output[2].decode(errors="replace"),
        }
        if status.get("status") == "Failure" and code is None:
            result["error"] = status.get("message", "")
        text = dump(result)
        return fit(text, tools.config.max_result_chars, "print less (| head, | tail)")

    return server


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's quote of the line: the line may hold a Secret's value."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def _listing(answer: Answer) -> str:
    body = trimmed(answer.body) if isinstance(answer.body, dict) else {}
    items = body.get("items") or []
    token = body.get("metadata", {}).get("continue", "")
    head = f"{len(items)} items" + (f"; more: call again with continue_token={token!r}" if token else "") + "\n"
    return head + dump(items)


def _rollout(answer: Answer) -> str:
    obj = answer.body if isinstance(answer.body, dict) else {}
    spec, status, meta = obj.get("spec", {}), obj.get("status", {}), obj.get("metadata", {})
    want = spec.get("replicas", status.get("desiredNumberScheduled", 0))
    updated = status.get("updatedReplicas", status.get("updatedNumberScheduled", 0))
    ready = status.get("availableReplicas", status.get("numberAvailable", 0))
    observed = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    done = observed and updated == want and ready == want
    return dump(
        {
            "rolled_out": done,
            "generation": meta.get("generation"),
            "observedGeneration": status.get("observedGeneration"),
            "desired": want,
            "updated": updated,
            "available": ready,
            "conditions": status.get("conditions", []),
        }
    )
