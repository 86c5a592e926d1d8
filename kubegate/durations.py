"""Durations as kubegate.yaml and the CLI spell them; standard library only, so the credential plugin
can parse --lifetime without importing the configuration models."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> float:
    """'90d', '1h', '30s', '250ms' or a number of seconds -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration such as 30s, 10m, 1h or 90d")
    return int(m.group(1)) * _UNITS[m.group(2)]
