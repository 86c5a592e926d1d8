"""Issuer documents and keys come over https, or plain HTTP from this machine only."""

from __future__ import annotations

import pytest

from kubegate.identity.urls import is_loopback, key_url_problem


@pytest.mark.parametrize("host", ["127.0.0.1", "127.255.0.9", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["localhost.attacker.example", "localhost.", "0.0.0.0", "::ffff:7f00:1", "10.0.0.1", "127.0.0.1.nip.io", ""]
)
def test_hosts_that_only_look_local(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.com",
        "https://idp.example.com:8443/realms/x",
        "http://127.0.0.1:5556",
        "http://localhost:8080/dex",
        "http://[::1]:5556",
    ],
)
def test_allowed_key_urls(url: str) -> None:
    assert key_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost.attacker.example", "must be https://: plain http is allowed only for a loopback address"),
        ("http://127.0.0.1@attacker.example", "must be https://: plain http is allowed only for a loopback address"),
        ("ftp://idp", "must be an https:// URL"),
        ("https://", "must be an https:// URL"),
        ("https://idp:port", "is not a URL"),
    ],
)
def test_refused_key_urls(url: str, problem: str) -> None:
    found = key_url_problem(url)
    assert found is not None and problem in found
