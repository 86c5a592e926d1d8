"""The fast path for the largest body kubegate masks: a SecretList.

A LIST of thousands of Secrets is tens of megabytes of JSON. Decoding all of it into Python objects
and encoding it again costs more than the masking (orjson loads alone is ~100 ms for 27 MB). Here
msgspec decodes the list into structs that mirror core/v1 Secret and ObjectMeta field for field,
keeping every value that is never masked as raw JSON bytes; only `data`, `stringData`, `type` and
the annotations become Python values. The masking itself is the same code as everywhere
(`mask_fields`, on a small dict that shares those values), and encoding writes the raw bytes back
unchanged, in kube-apiserver's field order.

Unknown fields are refused by the decoder, so anything this module does not model exactly (a
field added in a future Kubernetes, a user-defined field rule for Secrets, a malformed value)
makes `mask_secret_list` return None and the caller takes the general path.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Raw, UnsetType

from kubegate.masking.fields import mask_fields
from kubegate.masking.plan import Plan

SECRET = "Secret"
LIST_PREFIXES = (b'{"kind":"SecretList"', b'{"apiVersion":"v1","kind":"SecretList"')


class _Meta(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """metav1.ObjectMeta, in its Go field order."""

    name: Raw | UnsetType = UNSET
    generateName: Raw | UnsetType = UNSET
    namespace: Raw | UnsetType = UNSET
    selfLink: Raw | UnsetType = UNSET
    uid: Raw | UnsetType = UNSET
    resourceVersion: Raw | UnsetType = UNSET
    generation: Raw | UnsetType = UNSET
    creationTimestamp: Raw | UnsetType = UNSET
    deletionTimestamp: Raw | UnsetType = UNSET
    deletionGracePeriodSeconds: Raw | UnsetType = UNSET
    labels: Raw | UnsetType = UNSET
    annotations: dict[str, str] | UnsetType | None = UNSET
    ownerReferences: Raw | UnsetType = UNSET
    finalizers: Raw | UnsetType = UNSET
    managedFields: Raw | UnsetType = UNSET


class _Secret(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """corev1.Secret, in its Go field order."""

    kind: Literal["Secret"] | UnsetType = UNSET
    apiVersion: Raw | UnsetType = UNSET
    metadata: _Meta | UnsetType | None = UNSET
    immutable: Raw | UnsetType = UNSET
    data: dict[str, Raw] | UnsetType | None = UNSET
    stringData: dict[str, Raw] | UnsetType | None = UNSET
    type: str | UnsetType | None = UNSET


class _SecretList(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    kind: Literal["SecretList"]
    apiVersion: Raw | UnsetType = UNSET
    metadata: Raw | UnsetType = UNSET
    items: list[_Secret] | UnsetType | None = UNSET


_decoder = msgspec.json.Decoder(_SecretList)
_encoder = msgspec.json.Encoder()


def applies(plan: Plan, doc: bytes | bytearray) -> bool:
    """Whether this body may take the fast path: it starts like a SecretList, and the plan masks
    Secrets only with the built-in field profiles (a field rule may name any path)."""
    return doc.startswith(LIST_PREFIXES) and not plan.rules_for(SECRET)


def mask_secret_list(plan: Plan, doc: bytes | bytearray) -> bytes | None:
    """The masked list; None when the body is not exactly a SecretList this module models."""
    try:
        secrets = _decoder.decode(doc)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    for secret in secrets.items or ():
        mask_fields(plan, _view(secret), SECRET)
    return _encoder.encode(secrets)


def _view(secret: _Secret) -> dict[str, Any]:
    """The parts of a Secret masking reads, as the dict mask_fields expects. The values are the
    struct's own dicts, so what mask_fields replaces in them is what gets encoded."""
    view: dict[str, Any] = {}
    if secret.data:
        view["data"] = secret.data
    if secret.stringData:
        view["stringData"] = secret.stringData
    if isinstance(secret.type, str):
        view["type"] = secret.type
    meta = secret.metadata
    if meta and meta.annotations:
        view["metadata"] = {"annotations": meta.annotations}
    return view
