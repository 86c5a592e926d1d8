"""Discovery documents: /version, legacy /api, /apis and /apis/<g>/<v>, and aggregated discovery v2."""

from __future__ import annotations

from typing import Any

from .kinds import KINDS, Kind, Subresource, group_versions, kinds_in

VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in group_versions():
        if group:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == group]
    if not group or not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def _sub_kind(kind: Kind, sub: Subresource) -> tuple[str, str, str]:
    if sub.kind:
        return sub.group if sub.group is not None else kind.group, sub.version, sub.kind
    return kind.group, kind.version, kind.kind


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    kinds = kinds_in(group, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        entry: dict[str, Any] = {
            "name": k.resource,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": list(k.verbs),
        }
        if k.short_names:
            entry["shortNames"] = list(k.short_names)
        if k.categories:
            entry["categories"] = list(k.categories)
        resources.append(entry)
        for sub in k.subresources:
            g, v, kind_name = _sub_kind(k, sub)
            sub_entry: dict[str, Any] = {
                "name": f"{k.resource}/{sub.name}",
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind_name,
                "verbs": list(sub.verbs),
            }
            if sub.kind:
                sub_entry.update({"group": g, "version": v})
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": kinds[0].group_version,
        "resources": resources,
    }


def _discovery_resource(k: Kind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": k.resource,
        "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
        "scope": "Namespaced" if k.namespaced else "Cluster",
        "singularResource": k.singular,
        "verbs": list(k.verbs),
    }
    if k.short_names:
        entry["shortNames"] = list(k.short_names)
    if k.categories:
        entry["categories"] = list(k.categories)
    subs = []
    for sub in k.subresources:
        g, v, kind_name = _sub_kind(k, sub)
        subs.append(
            {
                "subresource": sub.name,
                "responseKind": {"group": g, "version": v, "kind": kind_name},
                "verbs": list(sub.verbs),
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(legacy: bool) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (legacy=True) or /apis."""
    items = []
    for group, version in group_versions():
        if (group == "") != legacy:
            continue
        resources = [_discovery_resource(k) for k in KINDS if k.group == group and k.version == version]
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
            }
        )
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
