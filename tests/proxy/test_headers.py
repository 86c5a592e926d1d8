"""Client headers that must never cross the gateway, and the ones that must."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from kubegate.proxy.headers import add_headers, downstream_response_headers, upstream_request_headers, warning_header


def proxy(pairs: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_identity_and_hop_by_hop_headers_are_removed_in_any_case_and_count() -> None:
    out = upstream_request_headers(
        proxy(
            [
                ("Authorization", "Bearer secret"),
                ("Impersonate-User", "admin"),
                ("impersonate-group", "system:masters"),
                ("IMPERSONATE-GROUP", "x"),
                ("Impersonate-Extra-scopes", "all"),
                ("Impersonate-Uid", "1"),
                ("X-Remote-User", "admin"),
                ("Connection", "keep-alive, X-Custom"),
                ("Keep-Alive", "5"),
                ("X-Custom", "dropped"),
                ("TE", "trailers"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic x"),
                ("Host", "evil"),
                ("Accept", "application/json"),
                ("Kubectl-Command", "kubectl get"),
                ("User-Agent", "kubectl/v1.37"),
            ]
        )
    )
    assert sorted(out.keys()) == ["Accept", "Kubectl-Command", "User-Agent"]


def test_connection_header_cannot_remove_what_kubegate_adds() -> None:
    out = upstream_request_headers(
        proxy([("Connection", "Impersonate-User, Authorization"), ("Accept", "application/json")])
    )
    add_headers(out, [("Authorization", "Bearer gateway"), ("Impersonate-User", "sandbox:alice")])
    assert out["Authorization"] == "Bearer gateway" and out["Impersonate-User"] == "sandbox:alice"


def test_upgrade_headers_are_kept_only_for_upgrades() -> None:
    pairs = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Protocol", "v5.channel.k8s.io")]
    assert "Upgrade" not in upstream_request_headers(proxy(pairs))
    kept = upstream_request_headers(proxy(pairs), keep_upgrade=True)
    assert kept["Upgrade"] == "websocket" and kept["Connection"] == "Upgrade"


def test_response_headers_lose_hop_by_hop_and_stale_length() -> None:
    upstream = proxy(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "10"),
            ("Connection", "close, X-A"),
            ("X-A", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Audit-Id", "abc"),
            ("Content-Encoding", "gzip"),
        ]
    )
    out = downstream_response_headers(upstream, drop_length=True)
    assert sorted(out.keys()) == ["Audit-Id", "Content-Encoding", "Content-Type"]
    assert downstream_response_headers(upstream, drop_length=False)["Content-Length"] == "10"


def test_warning_header_is_quoted_ascii() -> None:
    assert warning_header('kubegate: approved by "bob"') == '299 - "kubegate: approved by \\"bob\\""'
    assert warning_header("a\\b\nc é") == '299 - "a\\\\b?c ?"'
