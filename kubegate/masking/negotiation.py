"""Asking the upstream for a body kubegate can mask, and judging the body it got.

kube-apiserver picks the response encoding from Accept: protobuf and CBOR cannot be masked as
JSON, so every other media range is dropped while a mask applies. The JSON variants stay with
their parameters (`as=Table;v=v1;g=meta.k8s.io`, `as=PartialObjectMetadata...`), so kubectl's
Table and metadata-only requests keep working. Wildcards become plain JSON.
"""

from __future__ import annotations

from typing import Literal

from kubegate.kube.body import media_type

JSON = "application/json"
BodyKind = Literal["json", "text", "empty", "unmaskable"]


def is_json_media(media: str) -> bool:
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def json_only_accept(accept: str) -> str:
    """Keep the JSON media ranges of an Accept header (wildcards become application/json)."""
    kept: list[str] = []
    for part in accept.split(","):
        part = part.strip()
        media = media_type(part)
        if is_json_media(media):
            kept.append(part)
        elif media in ("*/*", "application/*") and JSON not in kept:
            kept.append(JSON)
    return ", ".join(dict.fromkeys(kept)) or JSON


def classify(content_type: str, content_encoding: str, content_length: str | None) -> BodyKind:
    """What a response body is, for masking purposes."""
    if content_encoding.strip().lower() not in ("", "identity"):
        return "unmaskable"
    media = media_type(content_type)
    if not media:
        return "empty" if content_length == "0" else "unmaskable"
    if is_json_media(media):
        return "json"
    if media.startswith("text/"):
        return "text"
    return "unmaskable"
