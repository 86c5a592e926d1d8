"""A checkpoint: the chain head (seq and hash), the number of events chained and the time, signed.

Checkpoints are numbered and each names the digest of the one before, so a verifier holding the
anchored copies sees one that is missing. The signed bytes are the canonical JSON of `body`; the
anchored document is `{"checkpoint": body, "key_id": ..., "signature": base64}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from kubegate.audit.signing import Keyring, Signer
from kubegate.recording.chain import canonical

KIND = "ChainCheckpoint"
API_VERSION = "kubegate.dev/v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    seq: int
    hash: str
    events: int
    time: float
    previous: str
    """sha256 of the previous checkpoint's document; "" for the first."""

    def body(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, **asdict(self)}


class CheckpointError(Exception):
    """An anchored document kubegate cannot read as a signed checkpoint."""


def signed_document(cp: Checkpoint, signer: Signer) -> str:
    body = cp.body()
    signature = signer.sign(canonical(body).encode())
    return canonical({"checkpoint": body, "key_id": signer.key_id, "signature": base64.b64encode(signature).decode()})


def digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    key_id: str
    signature: bytes
    document: str


def parse(document: str | bytes) -> SignedCheckpoint:
    try:
        doc = orjson.loads(document)
        body = doc["checkpoint"]
        if body.get("kind") != KIND:
            raise CheckpointError(f"it is not a {KIND}")
        cp = Checkpoint(**{k: body[k] for k in Checkpoint.__dataclass_fields__})
        signature = base64.b64decode(doc["signature"], validate=True)
        text = document.decode() if isinstance(document, bytes) else document
        return SignedCheckpoint(cp, str(doc["key_id"]), signature, text)
    except CheckpointError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
        raise CheckpointError(f"it is not a signed checkpoint document ({type(exc).__name__})") from exc


def check_signature(signed: SignedCheckpoint, keys: Keyring) -> str | None:
    """None when the checkpoint is signed by a trusted key, else what is wrong."""
    return keys.verify(signed.key_id, signed.signature, canonical(signed.checkpoint.body()).encode())
