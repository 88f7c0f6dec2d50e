"""Symbolic dims: the algebra shape inference relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlc.ir.symbolic import Sym, evaluate_dim, product

T = Sym.symbol("T")
N = Sym.symbol("N")


def test_linear_expressions_cancel_to_the_symbol() -> None:
    assert T + 2 - 3 + 1 == T
    assert (T + 1) - 1 == T
    assert T - T == 0
    assert isinstance(T - T, int)


def test_products_and_printing() -> None:
    assert str(N * T * 4) == "4*N*T"
    assert str(T + 1) == "T+1"
    assert str(2 - T) == "-T+2"
    assert product([N, 3, 4]) == 12 * N


def test_floor_division_exact_and_opaque() -> None:
    assert (4 * T) // 2 == 2 * T
    strided = (T + 2 - 3) // 2 + 1  # a stride-2 convolution's output length
    assert strided.evaluate({"T": 9}) == 5
    assert strided == (T + 1) // 2  # the same expression, canonicalized
    with pytest.raises(TypeError):
        T // 0


@given(st.integers(1, 500), st.integers(-20, 20), st.integers(1, 7), st.integers(1, 5))
def test_floor_division_evaluates_like_python(t: int, offset: int, divisor: int, scale: int) -> None:
    expression = (scale * T + offset) // divisor
    assert evaluate_dim(expression, {"T": t}) == (scale * t + offset) // divisor


def test_a_chain_of_strided_layers_stays_one_flat_floor_division() -> None:
    """((X)//a + c)//b == (X + c*a)//(a*b): 40 stride-2 layers make one atom, not 40 nested."""
    length = T
    for _ in range(40):
        length = (length + 2 - 3) // 2 + 1
    assert str(length).count("//") == 1
    for t in (1, 7, 2**20, 2**40 + 3):
        expected = t
        for _ in range(40):
            expected = (expected + 2 - 3) // 2 + 1
        assert evaluate_dim(length, {"T": t}) == expected


def test_floor_divisions_that_cannot_flatten_stop_at_a_limit() -> None:
    from dlc.ir.symbolic import MAX_FLOOR_NESTING, SymbolicLimitError

    length = T
    with pytest.raises(SymbolicLimitError, match="floor divisions"):
        for _ in range(MAX_FLOOR_NESTING + 1):
            length = (3 * length + 1) // 2  # a scaled quotient: no flattening applies
