"""Which headers cross the gateway, per RFC 9110 and the impersonation pitfalls in KUBE-NOTES.md.

Request headers from a client lose hop-by-hop headers (including every header its `Connection`
names), `Authorization` and every `Impersonate-*`; kubegate's own are added afterwards, so a
client's `Connection: Impersonate-User` can never remove what kubegate sets (CVE-2021-31999).
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NEVER_FORWARDED = frozenset({"host", "content-length", "authorization", "expect", "cookie"})
CLIENT_IDENTITY_PREFIXES = ("impersonate-", "x-remote-")


def connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def upstream_request_headers(client: CIMultiDictProxy[str], keep_upgrade: bool = False) -> CIMultiDict[str]:
    """The client's headers that may travel upstream (before kubegate adds its own)."""
    named = connection_tokens(client)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        lower = name.lower()
        if lower in NEVER_FORWARDED or lower.startswith(CLIENT_IDENTITY_PREFIXES):
            continue
        upgrade_header = keep_upgrade and lower in ("upgrade", "connection")
        if (lower in HOP_BY_HOP or lower in named) and not upgrade_header:
            continue
        out.add(name, value)
    return out


def add_headers(headers: CIMultiDict[str], extra: Iterable[tuple[str, str]]) -> None:
    for name, value in extra:
        headers.add(name, value)


def downstream_response_headers(upstream: CIMultiDictProxy[str], drop_length: bool) -> CIMultiDict[str]:
    """The upstream's response headers a client may see: no hop-by-hop, no stale Content-Length."""
    named = connection_tokens(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named or lower in ("set-cookie", "date", "server"):
            continue
        if lower == "content-length" and drop_length:
            continue
        out.add(name, value)
    return out


def warning_header(text: str) -> str:
    """A Warning header value kubectl prints as `Warning: TEXT` (code 299, quoted as RFC 9111 wants)."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text).replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{clean}"'
