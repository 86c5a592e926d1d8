"""The fast path for the largest body kubegate masks: a SecretList.

A LIST of thousands of Secrets is tens of megabytes of JSON. Decoding all of it into Python objects
and encoding it again costs more than the masking (orjson loads alone is ~100 ms for 27 MB). Here
msgspec decodes the list into structs that mirror core/v1 Secret and ObjectMeta field for field,
keeping every value that is never masked as raw JSON bytes; only the keys of `data` and
`stringData`, `type` and the annotations become Python values. The masking is mask_fields written
out for these structs (the last-applied annotation and any string it decodes go through the same
fields.py code), and encoding writes the raw bytes back unchanged, in kube-apiserver's field order.
It also counts the markers it adds, so the stage need not count them over the whole body.

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
from kubegate.masking.fields import LAST_APPLIED, SA_TOKEN_TYPE, mask_last_applied, scan_strings
from kubegate.masking.marker import MARKER, MARKER_B64, markers_in
from kubegate.masking.plan import Plan
from kubegate.masking.untouched import in_key

SECRET = "Secret"
LIST_PREFIXES = (b'{"kind":"SecretList"', b'{"apiVersion":"v1","kind":"SecretList"')
NONE = Raw()  # an absent raw field: no JSON value is empty, so it is never one that was sent
_NULL = Raw(b"null")
# Strings masking writes or the decoder fixes, so the text detectors must leave them as they are.
_UNSCANNED = (SECRET, MARKER, MARKER_B64)
_VALUE_MAPS = (("data", MARKER_B64), ("stringData", MARKER))
_EMPTY: dict[str, Any] = {}
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


def mask_secret_list(plan: Plan, doc: bytes | bytearray) -> tuple[bytes, int] | None:
    """The masked list and how many values it hid (markers added, not those it held); None when the
    body is not exactly a SecretList this module models."""
    if plan.scan_text_fields and any(plan.text.mask(s) != s for s in _UNSCANNED):
        return None
    try:
        secrets = _decoder.decode(doc)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    items = secrets.items or ()
    # Markers the body held are not added ones; a body without any (all but a re-sent masked one)
    # spares counting them in every value replaced.
    replaced: list[Raw] | None = [] if markers_in(doc) else None
    added = sum(_mask_secret(plan, secret, replaced) for secret in items)
    if plan.scan_text_fields:
        scanned = _scan_raw(plan, items)
        if scanned is None:
            return None
        added += scanned
    if replaced:
        added -= markers_in(b"\0".join(replaced))  # a marker is never split: no NUL in it
    return _encoder.encode(secrets), added


def _mask_secret(plan: Plan, secret: _Secret, replaced: list[Raw] | None) -> int:
    """What mask_fields does to a Secret, on the decoded struct (raw fields aside, see _scan_raw):
    returns the markers it added, and appends each raw value it replaced to `replaced` (None: the
    body holds no marker, so nothing replaced held one)."""
    added = 0
    held = _str_markers if replaced is not None else _no_markers
    data, string_data = secret.data, secret.stringData
    if plan.secret_values:
        if data:
            added += _hide_all(data, MARKER_B64, replaced)
        if string_data:
            added += _hide_all(string_data, MARKER, replaced)
    elif plan.serviceaccount_tokens and secret.type == SA_TOKEN_TYPE:
        if data:
            added += _hide(data, "token", MARKER_B64, replaced)
        if string_data:
            added += _hide(string_data, "token", MARKER, replaced)
    meta = secret.metadata
    annotations = meta.annotations if meta else None
    text = plan.text.mask if plan.scan_text_fields else None
    if annotations:
        applied = annotations.get(LAST_APPLIED)
        if applied is not None and _mask_applied(plan, annotations, applied):
            added += _str_markers(annotations[LAST_APPLIED]) - held(applied)
        if text is not None:
            for key, value in annotations.items():
                masked = value if key == LAST_APPLIED else text(value)
                if masked != value:
                    annotations[key] = masked
                    added += _str_markers(masked) - held(value)
    if text is not None and isinstance(secret.type, str):
        masked = text(secret.type)
        if masked != secret.type:
            added += _str_markers(masked) - held(secret.type)
            secret.type = masked
    return added


def _mask_applied(plan: Plan, annotations: dict[str, str], applied: str) -> bool:
    """mask_last_applied for the annotation of a Secret, without scanning the values it has just
    replaced by markers (mask_secret_list checked the detectors leave markers alone). Anything but a
    Secret's JSON takes mask_last_applied itself."""
    inner = plan.annotation_plan
    try:
        doc = orjson.loads(applied)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("kind", SECRET) != SECRET or not inner.touches(SECRET):
        return mask_last_applied(plan, annotations, SECRET, None)
    changed = False
    hidden: dict[str, Any] = {}  # maps whose values are all markers or null now: nothing left to scan
    if inner.secret_values:
        for key, marker in _VALUE_MAPS:
            values = doc.get(key)
            if isinstance(values, dict):
                for name, value in values.items():
                    if value is not None and value != marker:
                        values[name] = marker
                        changed = True
                hidden[key] = values
    elif inner.serviceaccount_tokens and doc.get("type") == SA_TOKEN_TYPE:
        for key, marker in _VALUE_MAPS:
            values = doc.get(key)
            if isinstance(values, dict) and values.get("token") not in (None, marker):
                values["token"] = marker
                changed = True
    if inner.scan_text_fields:
        doc.update(dict.fromkeys(hidden, _EMPTY))  # in place: the keys keep their order
        changed |= scan_strings(inner, doc, None)
        doc.update(hidden)
    if changed:
        annotations[LAST_APPLIED] = orjson.dumps(doc).decode() + ("\n" if applied.endswith("\n") else "")
    return changed


def _hide_all(values: dict[str, Any], marker: str, replaced: list[Raw] | None) -> int:
    """Every value becomes the marker, except null, which masking leaves as it is."""
    if _NULL in values.values():
        return sum(_hide(values, key, marker, replaced) for key in list(values))
    if replaced is not None:
        replaced += values.values()
    for key in values:
        values[key] = marker
    return len(values)


def _hide(values: dict[str, Any], key: str, marker: str, replaced: list[Raw] | None) -> int:
    value = values.get(key)
    if value is None or value == _NULL:
        return 0
    if replaced is not None:
        replaced.append(value)
    values[key] = marker
    return 1


def _scan_raw(plan: Plan, items: Sequence[_Secret]) -> int | None:
    """Run the text detectors over the raw fields of the Secrets whose bytes may hold something they
    change; the markers that added, or None when a raw field cannot be decoded as the general path does."""
    parts: list[Raw] = []
    ends: list[int] = []  # ends[i]: how many parts Secrets 0..i have
    unhidden = not plan.secret_values  # with secret-values, only nulls are left raw in data and stringData
    for secret in items:
        parts.append(secret.apiVersion)
        meta = secret.metadata
        if meta:
            fields = msgspec.structs.astuple(meta)
            for part in _SCANNED_META:
                parts += fields[part]
        if unhidden:
            for values in (secret.data, secret.stringData):
                if values:
                    parts += (v for v in values.values() if isinstance(v, Raw))
        ends.append(len(parts))
    if plan.text.triggered:
        joined = b",".join(parts)  # a separator no key follows: a value's closing quote never meets a colon
        found = [at for _, at, _ in _MAY_CHANGE.find_matches_as_indexes(joined.lower()) if not in_key(joined, at)]
        if not found:
            return 0
        starts = list(accumulate((len(p) + 1 for p in parts), initial=0))
        touched: Sequence[int] = sorted({bisect_right(ends, bisect_right(starts, at) - 1) for at in found})
    else:
        touched = range(len(items))
    added = 0
    for i in touched:
        scanned = _scan_secret(plan, items[i])
        if scanned is None:
            return None
        added += scanned
    return added


def _scan_secret(plan: Plan, secret: _Secret) -> int | None:
    """The general path's string scan over one Secret's raw fields, each decoded under its own key
    (so a label keyed like the last-applied annotation is skipped as it is there); a field it changes
    is written back as the JSON orjson would send. None for a field orjson cannot decode."""
    targets: list[tuple[Any, str]] = [(secret, "apiVersion")]
    if secret.metadata:
        targets += [(secret.metadata, name) for part in _SCANNED_META for name in _META_FIELDS[part]]
    for values in (secret.data, secret.stringData):
        if values:
            targets += [(values, key) for key, value in values.items() if isinstance(value, Raw)]
    added = 0
    for obj, name in targets:
        raw = obj[name] if isinstance(obj, dict) else getattr(obj, name)
        if not raw:
            continue
        try:
            box = {name: orjson.loads(memoryview(raw))}
        except orjson.JSONDecodeError:
            return None
        if scan_strings(plan, box, None):
            new = orjson.dumps(box[name])
            added += markers_in(new) - markers_in(bytes(raw))
            if isinstance(obj, dict):
                obj[name] = Raw(new)
            else:
                setattr(obj, name, Raw(new))
    return added


def _str_markers(value: str) -> int:
    return value.count(MARKER) + value.count(MARKER_B64)


def _no_markers(value: str) -> int:
    return 0
