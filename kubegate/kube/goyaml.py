"""YAML read the way kube-apiserver reads it: sigs.k8s.io/yaml, which is go-yaml v2 converted to JSON.

PyYAML resolves plain scalars by YAML 1.1's own table; go-yaml v2 by Go's number parsers. They disagree on
`y`/`n` (booleans to Go), `0o17` and `1e3` (numbers to Go, strings to PyYAML), `1:20` (base 60 to PyYAML),
and timestamps (PyYAML makes dates; go-yaml v2 keeps a timestamp-like scalar a string when it decodes into
an untyped value, as sigs.k8s.io/yaml does); and the JSON it becomes turns keys into strings and integral
floats into integers. This loader resolves plain scalars as go-yaml v2 does, refuses
a key given twice (the JSON it becomes would merge them), and leaves quoted and explicitly tagged scalars
to PyYAML, which reads those the same way.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import yaml

GO_SCALAR = "tag:kubegate,2026:go-plain"
INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_SPECIAL_FLOATS = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")


class DuplicateKey(ValueError):
    """A mapping gives the same key twice."""


def _go_int(text: str) -> int | float | None:
    """strconv.ParseInt(text, 0, 64), then ParseUint: None where both fail."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        value = sign * int(digits, 8)
    else:
        value = sign * int(digits, 0)
    if INT64[0] <= value <= INT64[1] or (0 <= value <= UINT64_MAX and not text.startswith("-")):
        return go_int(value)
    return None


def resolve_plain(text: str) -> Any:
    """A plain scalar as go-yaml v2 resolves it into an untyped value."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if text[:1] in "+-.0123456789":
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.fullmatch(plain):
            return as_json_number(float(plain))
        if plain.startswith(("0b", "-0b")):
            try:
                return int(plain.replace("0b", "", 1), 2)
            except ValueError:
                pass
    return text


def as_json_number(value: float) -> float | int:
    """What a float becomes once written as JSON by Go and read back keeping integers (sigs.k8s.io/json):
    an integral value under 1e21 is printed without a fraction, so it comes back an integer."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return go_int(int(Decimal(repr(value))))  # Go's shortest digits, as printed: 2**63 reads 9223372036854776000
    return value


def go_int(value: int) -> int | float:
    """An integer as sigs.k8s.io/json keeps it: exact within int64, else a float64."""
    return value if INT64[0] <= value <= INT64[1] else float(value)


def json_key(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        return repr(key) if not key.is_integer() else str(int(key))
    return str(key)


class GoYAMLLoader(yaml.SafeLoader):
    """SafeLoader with go-yaml v2's plain scalars and no repeated keys."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return GO_SCALAR
        return super().resolve(kind, value, implicit)  # type: ignore[no-any-return,no-untyped-call]


def _plain(loader: GoYAMLLoader, node: yaml.ScalarNode) -> Any:
    return resolve_plain(str(loader.construct_scalar(node)))


def _unique_mapping(loader: GoYAMLLoader, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    """Keys as JSON strings, built one by one (a Python dict would merge 1 and true before that)."""
    loader.flatten_mapping(node)  # merge keys (<<), as go-yaml v2 does
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = json_key(loader.construct_object(key_node, deep=True))
        if key in out:
            raise DuplicateKey(f"the key {key!r} appears twice in one mapping")
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


GoYAMLLoader.add_constructor(GO_SCALAR, _plain)
GoYAMLLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
