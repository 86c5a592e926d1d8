"""Which API path a model's resource name means: `pods`, `pod`, `Pod`, `po`, `deployments.apps`, as kubectl reads it.

Answered from the cluster's aggregated discovery, fetched through the pipeline as the caller (so the caller's
view, recorded like kubectl's own discovery) and kept per MCP session for a few minutes."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from kubegate.mcp.loopback import Caller, Loopback

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
CACHE_SECONDS = 300
CACHE_SESSIONS = 256


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...]
    verbs: tuple[str, ...]
    subresources: tuple[str, ...]

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.name}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "apiVersion": self.group_version,
            "kind": self.kind,
            "namespaced": self.namespaced,
            "shortNames": list(self.short_names),
            "verbs": list(self.verbs),
        }


def parse(documents: list[Any]) -> list[Resource]:
    """Resources of APIGroupDiscoveryList documents, each group's preferred version first."""
    out: list[Resource] = []
    for doc in documents:
        for group in (doc or {}).get("items", []):
            gname = group.get("metadata", {}).get("name", "")
            for version in group.get("versions", []):
                for r in version.get("resources", []):
                    out.append(
                        Resource(
                            gname,
                            version["version"],
                            r["resource"],
                            r.get("responseKind", {}).get("kind", ""),
                            r.get("scope") == "Namespaced",
                            r.get("singularResource", ""),
                            tuple(r.get("shortNames", [])),
                            tuple(r.get("verbs", [])),
                            tuple(s["subresource"] for s in r.get("subresources", [])),
                        )
                    )
    return out


def resolve(resources: list[Resource], wanted: str, api_version: str = "") -> Resource:
    """The resource `wanted` names (optionally `name.group`), in `api_version` if given, else preferred."""
    key = wanted.strip()
    name, _, group = key.partition(".")
    lowered = name.lower()
    for r in resources:
        if group and r.group != group and not r.group.startswith(group + "."):
            continue
        if api_version and r.group_version != api_version:
            continue
        if lowered in (r.name, r.singular, r.kind.lower()) or lowered in r.short_names:
            return r
    where = f" in {api_version}" if api_version else ""
    raise ToolError(
        f"kubegate found no resource {wanted!r}{where} that you can see on this connection; call "
        "list_api_resources for the names"
    )


class Discovery:
    def __init__(self, loopback: Loopback) -> None:
        self.loopback = loopback
        self._cache: OrderedDict[tuple[str, str], tuple[float, list[Resource]]] = OrderedDict()

    async def resources(self, caller: Caller, connection: str) -> list[Resource]:
        # Per caller: sessionless clients by a digest of their token, never one shared view.
        key = (caller.session_id or hashlib.sha256(caller.token.encode()).hexdigest(), connection)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        docs = []
        for path in ("/api", "/apis"):
            answer = await self.loopback.request(caller, connection, "GET", path, accept=AGGREGATED)
            if not answer.ok or not isinstance(answer.body, dict) or answer.body.get("kind") != "APIGroupDiscoveryList":
                raise ToolError(
                    f"kubegate could not read the cluster's API discovery ({path}: HTTP "
                    f"{answer.status}); check the connection name and try again"
                )
            docs.append(answer.body)
        found = parse(docs)
        self._cache[key] = (time.monotonic(), found)
        while len(self._cache) > CACHE_SESSIONS:
            self._cache.popitem(last=False)
        return found

    async def resolve(self, caller: Caller, connection: str, wanted: str, api_version: str = "") -> Resource:
        return resolve(await self.resources(caller, connection), wanted, api_version)
