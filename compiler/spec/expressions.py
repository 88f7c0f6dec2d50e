"""`${...}` expressions in specs, evaluated safely with simpleeval (never `eval`).

A string that is exactly one ``${expr}`` becomes the value of `expr` (an int stays an int);
a string with text around expressions is interpolated (``"block_${i}"``). Expressions see
the spec's `params`, template parameters and loop variables, and may use arithmetic,
comparisons, ``a if c else b``, indexing (``widths[i]``) and the functions below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval

from dlc.spec.expression_limits import BoundedEvaluator, ExpressionLimitError, bounded_range, bounded_round
from dlc.spec.suggest import did_you_mean

_EXPRESSION = re.compile(r"\$\{([^{}]*)\}")

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": bounded_round,
    "len": len,
    "sum": sum,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "log2": math.log2,
    "range": bounded_range,
}


class ExpressionError(Exception):
    """An expression failed; the caller attaches the spec location."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def has_expression(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def evaluate_text(text: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate the expressions in one string."""
    whole = _EXPRESSION.fullmatch(text.strip())
    if whole:
        return _evaluate(whole.group(1), scope)
    if "${" in text and not _EXPRESSION.search(text):
        raise ExpressionError(f"unterminated expression in '{text}'", "write ${name} or ${a * b}")
    return _EXPRESSION.sub(lambda m: str(_evaluate(m.group(1), scope)), text)


def substitute(value: Any, scope: Mapping[str, Any]) -> Any:
    """Evaluate every expression inside nested lists and dicts (used for whole configs)."""
    if isinstance(value, str):
        return evaluate_text(value, scope) if "${" in value else value
    if isinstance(value, list):
        return [substitute(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, scope) for key, item in value.items()}
    return value


def _evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    source = source.strip()
    if not source:
        raise ExpressionError("empty expression '${}'")
    evaluator = BoundedEvaluator(names=dict(scope), functions=FUNCTIONS)
    try:
        return evaluator.eval(source)
    except ExpressionLimitError as error:
        raise ExpressionError(
            f"expression '{_shown(source)}' breaks a limit: {error}",
            "the README lists the limits on expressions (Limits and hostile input)",
        ) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression '{_shown(source)}' breaks a limit: it is too large") from None
    except simpleeval.NameNotDefined as error:
        name = error.name
        known = list(scope)
        hint = did_you_mean(name, known) or _known_names_hint(known)
        raise ExpressionError(f"unknown name '{name}' in expression '{source}'", hint) from None
    except simpleeval.FunctionNotDefined as error:
        name = error.func_name
        hint = did_you_mean(name, FUNCTIONS) or f"available functions: {', '.join(FUNCTIONS)}"
        raise ExpressionError(f"unknown function '{name}' in expression '{source}'", hint) from None
    except SyntaxError as error:
        raise ExpressionError(f"invalid expression '{_shown(source)}': {error.msg}") from None
    except simpleeval.InvalidExpression as error:
        raise ExpressionError(f"expression '{source}' is not allowed: {error}") from None
    except ZeroDivisionError:
        raise ExpressionError(f"division by zero in expression '{source}'") from None
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as error:
        raise ExpressionError(f"cannot evaluate '{source}': {error}") from None


def _shown(source: str) -> str:
    """The expression as quoted in a message: long ones are cut."""
    return source if len(source) <= 80 else f"{source[:60]}...{source[-15:]}"


def _known_names_hint(known: list[str]) -> str:
    if not known:
        return "no names are defined here; declare values under `params`"
    return "names available here: " + ", ".join(sorted(known))
