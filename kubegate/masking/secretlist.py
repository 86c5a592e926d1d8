"""The fast path for the largest body kubegate masks: a SecretList.

A LIST of thousands of Secrets is tens of megabytes of JSON. Decoding all of it into Python objects
and encoding it again costs more than the masking (orjson loads alone is ~100 ms for 27 MB). Here
msgspec decodes the list into structs that mirror core/v1 Secret and ObjectMeta field for field,
keeping every value that is never masked as raw JSON bytes; only `data`, `stringData`, `type` and
the annotations become Python values. The masking itself is the same code as everywhere
(`mask_fields`, on a small dict that shares those values), and encoding writes the raw bytes back
unchanged, in kube-apiserver's field order.

credentials-in-text reads every string of a Secret, so the raw metadata fields are read too, at the
cost of one byte search over all of them: a built-in detector only ever changes a string holding one of
its triggers, so only the Secrets whose raw fields hold a trigger in a value (or a `\\u`/`\\/` escape,
which could hide one) are decoded and scanned like the general path scans them (user detectors promise
no trigger: with one, every Secret is). The list's own metadata is no object's, so neither path reads it.

Unknown fields are refused by the decoder, so anything this module does not model exactly (a
field added in a future Kubernetes, a user-defined field rule for Secrets, a malformed value)
makes `mask_secret_list` return None and the caller takes the general path.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Literal

import ahocorasick_rs
import msgspec
import orjson
from msgspec import UNSET, Raw, UnsetType

from kubegate.masking.detectors import TRIGGER_WORDS
from kubegate.masking.fields import mask_fields, scan_strings
from kubegate.masking.plan import Plan
from kubegate.masking.untouched import in_key

SECRET = "Secret"
LIST_PREFIXES = (b'{"kind":"SecretList"', b'{"apiVersion":"v1","kind":"SecretList"')
NONE = Raw()  # an absent raw field: no JSON value is empty, so it is never one that was sent
# What in raw (lower-cased) bytes may let a built-in detector change a string: a trigger, or an
# escape that could spell one.
_MAY_CHANGE = ahocorasick_rs.BytesAhoCorasick([*TRIGGER_WORDS, b"\\u", b"\\/"])


class _Meta(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """metav1.ObjectMeta, in its Go field order."""

    name: Raw = NONE
    generateName: Raw = NONE
    namespace: Raw = NONE
    selfLink: Raw = NONE
    uid: Raw = NONE
    resourceVersion: Raw = NONE
    generation: Raw = NONE
    creationTimestamp: Raw = NONE
    deletionTimestamp: Raw = NONE
    deletionGracePeriodSeconds: Raw = NONE
    labels: Raw = NONE
    annotations: dict[str, str] | UnsetType | None = UNSET
    ownerReferences: Raw = NONE
    finalizers: Raw = NONE
    managedFields: list[Raw] | UnsetType | None = UNSET  # never scanned (as a list)


class _Secret(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """corev1.Secret, in its Go field order."""

    kind: Literal["Secret"] | UnsetType = UNSET
    apiVersion: Raw = NONE
    metadata: _Meta | UnsetType | None = UNSET
    immutable: bool | UnsetType | None = UNSET
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
_META_FIELDS = _Meta.__struct_fields__
_ANNOTATIONS = _META_FIELDS.index("annotations")
_MANAGED = _META_FIELDS.index("managedFields")
# The raw metadata fields text detectors read, by position in a _Meta: the ones before the
# annotations and those between them and managedFields.
_SCANNED_META = (slice(0, _ANNOTATIONS), slice(_ANNOTATIONS + 1, _MANAGED))


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
    items = secrets.items or ()
    if plan.scan_text_fields and not _scan_raw(plan, items):
        return None
    for secret in items:
        mask_fields(plan, _view(secret), SECRET)
    return _encoder.encode(secrets)


def _scan_raw(plan: Plan, items: Sequence[_Secret]) -> bool:
    """Run the text detectors over the raw fields of the Secrets whose bytes may hold something they
    change; False when a change cannot be written back here (a user detector rewriting the kind)."""
    if plan.text.mask(SECRET) != SECRET:
        return False
    parts: list[Raw] = []
    ends: list[int] = []  # ends[i]: how many parts Secrets 0..i have
    for secret in items:
        parts.append(secret.apiVersion)
        meta = secret.metadata
        if meta:
            fields = msgspec.structs.astuple(meta)
            for part in _SCANNED_META:
                parts += fields[part]
        ends.append(len(parts))
    if plan.text.triggered:
        joined = b",".join(parts)  # a separator no key follows: a value's closing quote never meets a colon
        found = [at for _, at, _ in _MAY_CHANGE.find_matches_as_indexes(joined.lower()) if not in_key(joined, at)]
        if not found:
            return True
        starts = list(accumulate((len(p) + 1 for p in parts), initial=0))
        touched: Sequence[int] = sorted({bisect_right(ends, bisect_right(starts, at) - 1) for at in found})
    else:
        touched = range(len(items))
    return all(_scan_secret(plan, items[i]) for i in touched)


def _scan_secret(plan: Plan, secret: _Secret) -> bool:
    """The general path's string scan over one Secret's raw fields, each decoded under its own key
    (so a label keyed like the last-applied annotation is skipped as it is there); a field it changes
    is written back as the JSON orjson would send. False for a field orjson cannot decode."""
    targets: list[tuple[Any, str]] = [(secret, "apiVersion")]
    if secret.metadata:
        targets += [(secret.metadata, name) for part in _SCANNED_META for name in _META_FIELDS[part]]
    for obj, name in targets:
        raw = getattr(obj, name)
        if not raw:
            continue
        try:
            box = {name: orjson.loads(memoryview(raw))}
        except orjson.JSONDecodeError:
            return False
        if scan_strings(plan, box, None):
            setattr(obj, name, Raw(orjson.dumps(box[name])))
    return True


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
