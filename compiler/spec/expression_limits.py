"""Bounds on `${...}` expressions: no spec can make dlc hang, recurse or eat memory.

simpleeval already refuses `eval`, imports and dunder attributes; these limits close what
it leaves open to a hostile spec (issue 12): `range(10**12)`, `'a'.ljust(10**10)`,
`(10**4000000)**2`, a megabyte of `+`, ten thousand `not`s. Each check runs *before* the
costly work where the cost is predictable (sizes of repeats, exponents, shifts, ranges),
and every value is checked after each step. The limits (stated in the README):

- `MAX_EXPRESSION_CHARS` characters of source and `MAX_EXPRESSION_DEPTH` levels of syntax
  nesting (checked before evaluation, which recurses once per level);
- integers of at most `MAX_INT_BITS` bits (like the largest float, 1.8e308);
- strings, lists, ranges, dicts of at most `MAX_ELEMENTS` elements (enough for a
  64 x 49 x 49 attention window mask, 150,528 elements);
- at most `MAX_STEPS` evaluation steps per expression (comprehensions iterate).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Sized
from typing import Any

import simpleeval

MAX_EXPRESSION_CHARS = 10_000
MAX_EXPRESSION_DEPTH = 100
MAX_INT_BITS = 1024
MAX_ELEMENTS = 2**20
MAX_STEPS = 2**22  # a few seconds of CPU at most: a step costs about a microsecond

# Methods whose result is no larger than the value they are called on; any other method
# could grow a string or list without bound ('a'.ljust(10**10), ''.replace('', ...)).
ALLOWED_METHODS = frozenset(
    {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "count",
        "find",
        "index",
        "get",
        "keys",
        "values",
        "items",
    }
)


class ExpressionLimitError(simpleeval.InvalidExpression):
    """An expression broke one of the limits above; the message names the limit."""


def check_source(source: str) -> ast.AST:
    """Parse `source`, refusing over-long or over-deep expressions before evaluating them."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionLimitError(
            f"it is {len(source):,} characters long; the limit is {MAX_EXPRESSION_CHARS:,}"
        )
    try:
        tree = ast.parse(source)
    except (RecursionError, MemoryError):  # CPython's parser stack on deep nesting
        raise ExpressionLimitError(
            f"it nests too deep to parse; the limit is {MAX_EXPRESSION_DEPTH} levels"
        ) from None
    deepest = 0
    pending: list[tuple[ast.AST, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_EXPRESSION_DEPTH + 2:  # Module and Expr wrap every expression
            raise ExpressionLimitError(
                f"it nests too deep (more than {MAX_EXPRESSION_DEPTH} levels); "
                f"the limit is {MAX_EXPRESSION_DEPTH} levels"
            )
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def check_value(value: Any) -> Any:
    """`value` if it is within the size limits."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise ExpressionLimitError(_int_too_large(value.bit_length()))
    elif isinstance(value, (str, list, tuple, dict, set, range)) and len(value) > MAX_ELEMENTS:
        raise ExpressionLimitError(_too_long(len(value)))
    return value


def _int_too_large(bits: int) -> str:
    return f"an integer of about {bits:,} bits; the limit is {MAX_INT_BITS:,} bits"


def _too_long(length: int) -> str:
    return f"a value of {length:,} elements; the limit is {MAX_ELEMENTS:,}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def bounded_power(base: Any, exponent: Any) -> Any:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = (abs(base).bit_length() - 1) * exponent
        if bits > MAX_INT_BITS:
            raise ExpressionLimitError(_int_too_large(bits))
    return base**exponent


def bounded_multiply(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, Sized) and _is_int(count) and len(sequence) * count > MAX_ELEMENTS:
            raise ExpressionLimitError(_too_long(len(sequence) * count))
    return left * right


def bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, Sized) and isinstance(right, Sized) and len(left) + len(right) > MAX_ELEMENTS:
        raise ExpressionLimitError(_too_long(len(left) + len(right)))
    return left + right


def bounded_left_shift(value: Any, shift: Any) -> Any:
    if _is_int(shift) and _is_int(value) and value and value.bit_length() + shift > MAX_INT_BITS:
        raise ExpressionLimitError(_int_too_large(value.bit_length() + shift))
    return value << shift


def bounded_range(*args: int) -> list[int]:
    """`range` as a list (specs index and measure it), refused past `MAX_ELEMENTS`."""
    numbers = range(*args)
    if len(numbers) > MAX_ELEMENTS:
        raise ExpressionLimitError(f"range of {len(numbers):,} numbers; the limit is {MAX_ELEMENTS:,}")
    return list(numbers)


def bounded_round(number: Any, digits: int | None = None) -> Any:
    # round(10**300, -10**9) would compute 10**(10**9) first.
    if digits is not None and _is_int(digits) and abs(digits) > 400:
        raise ExpressionLimitError(f"round to {digits:,} digits; the limit is 400")
    return round(number) if digits is None else round(number, digits)


OPERATORS = {
    **simpleeval.DEFAULT_OPERATORS,
    ast.Pow: bounded_power,
    ast.Mult: bounded_multiply,
    ast.Add: bounded_add,
    ast.LShift: bounded_left_shift,
    ast.RShift: operator.rshift,
}


class BoundedEvaluator(simpleeval.EvalWithCompoundTypes):
    """simpleeval with the limits above: source checked before, every value after each step."""

    def __init__(self, names: dict[str, Any], functions: dict[str, Any]) -> None:
        super().__init__(operators=dict(OPERATORS), functions=dict(functions), names=names)
        self._steps = 0

    def eval(self, expr: str, previously_parsed: Any = None) -> Any:
        self._steps = 0
        tree = previously_parsed or check_source(expr.strip())
        body = tree.body if isinstance(tree, ast.Module) else None
        if body is not None and not body:
            raise simpleeval.InvalidExpression("empty expression")
        return super().eval(expr, body[0] if body is not None else tree)

    def _eval(self, node: ast.AST) -> Any:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise ExpressionLimitError(f"it takes more than {MAX_STEPS:,} evaluation steps (the limit)")
        return check_value(super()._eval(node))

    def _eval_call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute) and node.func.attr not in ALLOWED_METHODS:
            raise ExpressionLimitError(
                f"the method '{node.func.attr}' is not allowed in expressions "
                f"(allowed: {', '.join(sorted(ALLOWED_METHODS))})"
            )
        return super()._eval_call(node)
