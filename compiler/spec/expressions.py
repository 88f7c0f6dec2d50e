"""`${...}` expressions in specs, evaluated safely with simpleeval (never `eval`).

A string that is exactly one ``${expr}`` becomes the value of `expr` (an int stays an int);
a string with text around expressions is interpolated (``"block_${i}"``). Expressions see
the spec's `params`, template parameters and loop variables, and may use arithmetic,
comparisons, ``a if c else b``, indexing (``widths[i]``), comprehensions and f-strings
(``[f'branch{i}' for i in range(k)]``: braces inside an expression nest), the functions
below and the constants `pi` and `e`.

Limits (they bound memory): one expression may generate at most
`MAX_COMPREHENSION_ELEMENTS` comprehension elements in all (a 64 x 49 x 49 attention mask
takes 156,864) and build strings or repeated lists of at most `MAX_VALUE_LENGTH` items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval

from dlc.spec.expression_limits import BoundedEvaluator, ExpressionLimitError, bounded_range, bounded_round
from dlc.spec.suggest import did_you_mean

MAX_COMPREHENSION_ELEMENTS = 1_000_000
MAX_VALUE_LENGTH = 1_000_000
simpleeval.MAX_COMPREHENSION_LENGTH = MAX_COMPREHENSION_ELEMENTS
simpleeval.MAX_STRING_LENGTH = MAX_VALUE_LENGTH

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

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
    "log": math.log,  # natural; log(x, base) for another base
    "log2": math.log2,
    "exp": math.exp,
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
    pieces = _split_expressions(text)
    stripped = [p for p in pieces if not (isinstance(p, str) and not p.strip())]
    if len(stripped) == 1 and isinstance(stripped[0], _Source):
        return _evaluate(stripped[0], scope)
    return "".join(str(_evaluate(p, scope)) if isinstance(p, _Source) else p for p in pieces)


class _Source(str):
    """The source of one ``${...}`` expression (text pieces are plain strings)."""


def _split_expressions(text: str) -> list[str]:
    """Text and expression sources, in order. Braces inside an expression nest, so dicts,
    sets and f-strings (``${[f'b{i}' for i in range(3)]}``) are allowed."""
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find("${", position)
        if start < 0:
            pieces.append(text[position:])
            return pieces
        depth, index = 1, start + 2
        while index < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        if depth:
            raise ExpressionError(f"unterminated expression in '{text}'", "write ${name} or ${a * b}")
        pieces.append(text[position:start])
        pieces.append(_Source(text[start + 2 : index - 1]))
        position = index


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
    evaluator = BoundedEvaluator(names={**CONSTANTS, **scope}, functions=FUNCTIONS)
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
    except simpleeval.IterableTooLong:
        raise ExpressionError(
            f"expression '{_shown(source)}' generates more than {MAX_COMPREHENSION_ELEMENTS:,} elements",
            "build smaller tables, or compute them in the graph",
        ) from None
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
