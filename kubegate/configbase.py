"""What every section of kubegate.yaml shares: strict models (an unknown or misspelt key is an error, and
a loaded config never changes), errors that name the file, field and problem, and values kept in files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from kubegate.durations import parse_duration


class Strict(BaseModel):
    """The base of every config model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a duration such as 30s, 10m, 1h or 90d, or a number of seconds")
    return parse_duration(value)


def _longer_than_zero(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(_seconds)]
"""Seconds, written in kubegate.yaml as 30s, 10m, 1h, 90d or a number; parsed once, when the file is read."""
PositiveDuration = Annotated[float, BeforeValidator(_seconds), AfterValidator(_longer_than_zero)]


def once_each(names: list[str], what: str) -> None:
    """Refuse a list whose entries share a name (a connection, an issuer, a sink): which one would win?"""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique: {', '.join(repeated)}")


class ConfigError(Exception):
    """A config file kubegate cannot use; str() names the file, field and problem on each line."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_field_path(loc)}: {msg}")
    return "\n".join(lines)


def load_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from exc


def read_secret_file(path: Path, field: str) -> str:
    """A value kept in a file (a mounted Kubernetes Secret), so it stays out of kubegate.yaml and the pod spec."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{field}: {path} is empty")
    return value
