"""CEL conditions (cel-python) over identity, request and object, compiled once per text.

celpy's InterpretedRunner is used: its CompiledRunner mis-evaluates `exists()` over maps whose
optional fields are absent (cel-python 0.5), which would turn a guarded condition into an error.
celpy (and its lark grammar, ~7 MB) is imported on the first condition, not by every gateway.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import celpy
    from celpy import celtypes


@functools.cache
def _env() -> celpy.Environment:
    import celpy
    return celpy.Environment()


class CelSyntaxError(ValueError):
    """A condition that does not parse; the message points at the problem."""


class CelEvalError(Exception):
    """A condition that could not be evaluated to a bool for this request."""


@functools.lru_cache(maxsize=4096)
def parse_condition(text: str) -> celpy.Runner:
    """Parse and prepare a condition; cached so a reload of unchanged rules costs nothing."""
    import celpy
    env = _env()
    try:
        ast = env.compile(text)
    except celpy.CELParseError as exc:
        detail = " ".join(str(exc).split())
        raise CelSyntaxError(f"not a valid CEL expression: {detail}") from exc
    return env.program(ast)


def to_cel(value: Any) -> celtypes.Value:
    """Python data (a parsed JSON body, identity, request) as CEL values."""
    import celpy
    return celpy.json_to_cel(value)


def evaluate(program: celpy.Runner, activation: Mapping[str, celtypes.Value]) -> bool:
    """True or False, or CelEvalError when the expression errors or is not a bool."""
    import celpy
    from celpy import celtypes
    try:
        result = program.evaluate(dict(activation))
    except Exception as exc:  # celpy raises CELEvalError and, on odd data, plain Python errors
        raise CelEvalError(_describe(exc)) from exc
    if isinstance(result, celpy.CELEvalError):
        raise CelEvalError(_describe(result))
    if not isinstance(result, celtypes.BoolType | bool):
        raise CelEvalError(f"the condition gave {type(result).__name__}, not a bool")
    return bool(result)


def _describe(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[0]) if args else type(exc).__name__
