"""Ed25519 signing keys from files; a keyring of trusted public keys names what is wrong with a signature."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from kubegate.audit.signing import FileSigner, Keyring, SigningError, generate, load_public_key


def test_a_generated_key_signs_and_its_public_half_verifies(tmp_path: Path) -> None:
    kid = generate(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    signer = FileSigner(tmp_path / "k.pem")
    assert signer.key_id == kid and len(kid) == 16
    keys = Keyring([load_public_key(tmp_path / "k.pem.pub")])
    signature = signer.sign(b"payload")
    assert keys.verify(kid, signature, b"payload") is None
    assert "forged or altered" in (keys.verify(kid, signature, b"other") or "")
    assert "not among the trusted keys" in (keys.verify("0" * 16, signature, b"payload") or "")


def test_generate_never_overwrites(tmp_path: Path) -> None:
    generate(tmp_path / "k.pem")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "k.pem")


def test_bad_keys_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match=r"missing\.pem: cannot read the signing key"):
        FileSigner(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(SigningError, match=r"junk\.pem: not an unencrypted PEM private key"):
        FileSigner(tmp_path / "junk.pem")
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.pem").write_bytes(ec)
    with pytest.raises(SigningError, match="must be Ed25519"):
        FileSigner(tmp_path / "ec.pem")
    with pytest.raises(SigningError, match="must be Ed25519"):
        load_public_key(tmp_path / "ec.pem")
