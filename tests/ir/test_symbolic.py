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
