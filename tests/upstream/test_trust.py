"""TLS trust in the API server: only the CA given, and a CA file followed as it rotates (as client-go does)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from kubegate.tls import ensure_serving_cert
from kubegate.upstream import trust
from kubegate.upstream.trust import Trust


def _ca(tmp_path: Path, name: str) -> bytes:
    return ensure_serving_cert(tmp_path / name, ["127.0.0.1"]).ca.read_bytes()


def _trusted(context: ssl.SSLContext) -> list[int]:
    """The serial numbers of the CAs a context trusts."""
    return [int(cert["serialNumber"], 16) for cert in context.get_ca_certs()]


def _serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_bytes(_ca(tmp_path, "first"))
    return path


def test_a_connection_with_a_ca_trusts_that_ca_alone(ca_file: Path) -> None:
    assert _trusted(Trust(ca_file, None, False, None).context) == [_serial(ca_file.read_bytes())]
    assert _trusted(Trust(None, ca_file.read_bytes(), False, None).context) == [_serial(ca_file.read_bytes())]


def test_a_changed_ca_file_is_read_again_only_when_the_period_has_passed(
    ca_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = Trust(ca_file, None, False, None)
    first = tls.context
    assert not tls.refresh(), "nothing changed"
    rotated = _ca(tmp_path, "second")
    ca_file.write_bytes(rotated)
    assert not tls.refresh() and tls.context is first, "read again before the period (client-go: 5 min)"
    monkeypatch.setattr(trust, "CA_RECHECK_SECONDS", 0.0)
    assert tls.refresh()
    assert _trusted(tls.context) == [_serial(rotated)], "the old CA must no longer be trusted"
    assert not tls.refresh(), "unchanged since"


@pytest.mark.parametrize("broken", ["missing", "empty", "garbage"])
def test_a_ca_file_that_cannot_be_used_keeps_the_ca_in_use(
    ca_file: Path, broken: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tls = Trust(ca_file, None, False, None)
    before = tls.context
    monkeypatch.setattr(trust, "CA_RECHECK_SECONDS", 0.0)
    if broken == "missing":
        ca_file.unlink()
    else:
        ca_file.write_text("" if broken == "empty" else "-----BEGIN CERTIFICATE-----\nnot one\n")
    with caplog.at_level(logging.WARNING, logger="kubegate.upstream.trust"):
        assert not tls.refresh()
    assert tls.context is before
    assert f"cannot use CA file {ca_file}" in caplog.text


def test_an_insecure_connection_reads_no_ca_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = Trust(tmp_path / "absent.crt", None, True, None)
    monkeypatch.setattr(trust, "CA_RECHECK_SECONDS", 0.0)
    assert tls.context.verify_mode == ssl.CERT_NONE
    assert not tls.refresh()
