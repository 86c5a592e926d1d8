"""CEL conditions over identity, request and object, compiled once per text.

The evaluator is common-expression-language (Python bindings of the Rust cel-interpreter): a few
µs a condition on a converted activation, where cel-python's tree-walking interpreter took 600 µs.
It takes the parsed JSON as it is; each request's variables are converted once (`activation`). It
is imported on the first condition, not by every gateway. A missing field is an evaluation error,
as in Kubernetes' own CEL: guard optional fields with has().
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cel


# CEL string literals (raw or not, single, double or triple quoted), removed before looking for names.
_STRING = re.compile(r"""[rR]?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")""", re.S)
_IDENTIFIER = re.compile(r"(?<![.\w])[A-Za-z_]\w*")


def identifiers(text: str) -> frozenset[str]:
    """The top-level names an expression refers to (not fields after a dot, not words in strings):
    which of identity, request and object a condition reads."""
    return frozenset(_IDENTIFIER.findall(_STRING.sub('""', text)))


class CelSyntaxError(ValueError):
    """A condition that does not parse; the message points at the problem."""


class CelEvalError(Exception):
    """A condition that could not be evaluated to a bool for this request."""


@functools.lru_cache(maxsize=4096)
def parse_condition(text: str) -> cel.Program:
    """Parse and compile a condition; cached so a reload of unchanged rules costs nothing."""
    import cel

    try:
        return cel.compile(text)
    except ValueError as exc:
        detail = " ".join(str(exc).split())
        raise CelSyntaxError(f"not a valid CEL expression: {detail}") from exc


def activation(values: Mapping[str, Any]) -> cel.Context:
    """The variables of one request, converted once for all the conditions it meets (a conversion costs
    about eight evaluations). Values are plain JSON: dicts, lists, str, int, float, bool, None."""
    import cel

    return cel.Context(variables=dict(values))


def evaluate(program: cel.Program, variables: cel.Context) -> bool:
    """True or False, or CelEvalError when the expression errors or is not a bool."""
    try:
        result = program.execute(variables)
    except KeyError as exc:
        raise CelEvalError(f"no such key: {exc.args[0] if exc.args else '?'}") from exc
    except Exception as exc:  # the bindings raise TypeError, RuntimeError, ValueError, ZeroDivisionError
        raise CelEvalError(_describe(exc)) from exc
    if not isinstance(result, bool):
        raise CelEvalError(f"the condition gave {type(result).__name__}, not a bool")
    return result


def _describe(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.split(". ", 1)[0]
