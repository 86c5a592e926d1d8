"""Who signs checkpoints: a small provider interface, with an Ed25519 key file as the one built in.

A KMS or HSM provider implements `Signer` (a key id and `sign`); verification only ever needs public
keys, so `audit verify` runs with no access to the private key. A key id is the first 16 hex digits of
sha256 over the raw public key: rotating keys changes it, and each checkpoint names the key it used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SigningError(Exception):
    """A key cannot be loaded or used; the message names the file and the problem, never key material."""


class Signer(Protocol):
    key_id: str

    def sign(self, payload: bytes) -> bytes: ...


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class FileSigner:
    """An Ed25519 private key in a PEM file (PKCS#8, unencrypted: mount it as a Secret)."""

    def __init__(self, path: Path) -> None:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise SigningError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise SigningError(f"{path}: not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{path}: the signing key must be Ed25519, not {type(key).__name__}")
        self._key = key
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A trusted key: a PEM public key, or a PEM private key whose public half is taken."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise SigningError(f"{path}: not a PEM Ed25519 key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: the key must be Ed25519, not {type(key).__name__}")
    return key


class Keyring:
    """The public keys a verifier trusts, by key id."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: list[Path]) -> Keyring:
        return cls([load_public_key(p) for p in paths])

    def verify(self, kid: str, signature: bytes, payload: bytes) -> str | None:
        """None when `signature` is kid's over payload, else what is wrong."""
        key = self.keys.get(kid)
        if key is None:
            return f"it is signed by key {kid}, which is not among the trusted keys"
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            return f"its signature does not verify with key {kid}: it was forged or altered"
        return None


def generate(path: Path) -> str:
    """Write a new Ed25519 private key (mode 0600) and its public key beside it (.pub); return the key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.with_name(path.name + ".pub").write_bytes(public)
    return key_id(key.public_key())
