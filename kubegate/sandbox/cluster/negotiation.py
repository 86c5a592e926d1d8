"""Accept-header negotiation as kube-apiserver does it: JSON, Table, PartialObjectMetadata or
aggregated discovery, in the client's order of preference; 406 when none of those is acceptable."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import not_acceptable

JSON = "application/json"
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class Target:
    form: str  # "json", "table", "partial" or "discovery"
    content_type: str
    version: str = "v1"  # meta.k8s.io version for table/partial


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]
    q: float


def parse_accept(header: str) -> list[MediaRange]:
    ranges: list[MediaRange] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append(MediaRange(pieces[0].lower(), params, q))
    return sorted(ranges, key=lambda r: -r.q)


def _is_json(media: str) -> bool:
    return media in (JSON, "application/*", "*/*", "*")


def negotiate(header: str, *, resource: bool = False, discovery: bool = False) -> Target:
    """Choose the response form. `resource`: Table/PartialObjectMetadata may be served;
    `discovery`: the aggregated discovery document may be served."""
    if not header.strip():
        return Target("json", JSON)
    for r in parse_accept(header):
        if not _is_json(r.type):
            continue
        as_kind, group, version = r.params.get("as"), r.params.get("g"), r.params.get("v")
        if as_kind is None:
            return Target("json", JSON)
        if resource and group == "meta.k8s.io" and version in ("v1", "v1beta1"):
            if as_kind == "Table":
                return Target("table", f"{JSON};as=Table;v={version};g=meta.k8s.io", version)
            if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return Target("partial", f"{JSON};as={as_kind};v={version};g=meta.k8s.io", version)
        if discovery and as_kind == "APIGroupDiscoveryList" and group == "apidiscovery.k8s.io" and version == "v2":
            return Target("discovery", DISCOVERY_V2)
    raise not_acceptable([JSON])
