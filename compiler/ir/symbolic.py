"""Symbolic dimensions: polynomials over named dims such as `N` and `T`.

Shapes may contain symbols that stay dynamic in ONNX. Shape inference needs a little
algebra on them: ``T + 2*p - k + 1`` for a convolution, ``C*H*W`` for a flatten,
``T1 + T2`` for a concatenation, and exact equality to check that a residual add fits.
A `Sym` is a canonical polynomial with integer coefficients; a floor division that does
not divide exactly becomes an opaque atom, so equal expressions still compare equal.

We keep this small module rather than use sympy: we need only +, -, * and //, and
importing sympy alone costs about a fifth of the time budget for compiling BERT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, order=True)
class FloorDiv:
    """An opaque atom ``(numerator) // divisor`` that did not divide exactly."""

    numerator: Sym
    divisor: int

    def __str__(self) -> str:
        return f"({self.numerator})//{self.divisor}"


Atom = Union[str, FloorDiv]  # noqa: UP007 (a forward reference to Sym rules out `|` here)
Monomial = tuple[Atom, ...]


def _atom_key(atom: Atom) -> str:
    return atom if isinstance(atom, str) else "~" + str(atom)


@dataclass(frozen=True)
class Sym:
    """A polynomial ``sum(coeff * prod(atoms))``; build with `Sym.symbol` and arithmetic."""

    terms: tuple[tuple[Monomial, int], ...]  # sorted, no zero coefficients

    @staticmethod
    def symbol(name: str) -> Sym:
        return Sym((((name,), 1),))

    @staticmethod
    def _build(terms: Mapping[Monomial, int]) -> Dim:
        cleaned = {m: c for m, c in terms.items() if c != 0}
        if not cleaned:
            return 0
        if set(cleaned) == {()}:
            return cleaned[()]
        ordered = sorted(
            cleaned.items(),
            key=lambda item: (not item[0], len(item[0]), [_atom_key(a) for a in item[0]]),
        )
        return Sym(tuple(ordered))

    def _as_dict(self) -> dict[Monomial, int]:
        return dict(self.terms)

    @property
    def symbols(self) -> frozenset[str]:
        names: set[str] = set()
        for monomial, _ in self.terms:
            for atom in monomial:
                names.update([atom] if isinstance(atom, str) else atom.numerator.symbols)
        return frozenset(names)

    def __add__(self, other: Dim) -> Dim:
        result = self._as_dict()
        for monomial, coeff in _terms(other).items():
            result[monomial] = result.get(monomial, 0) + coeff
        return Sym._build(result)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Sym._build({m: -c for m, c in self.terms})

    def __sub__(self, other: Dim) -> Dim:
        return self + (-other)

    def __rsub__(self, other: Dim) -> Dim:
        return (-self) + other

    def __mul__(self, other: Dim) -> Dim:
        result: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in _terms(other).items():
                monomial = tuple(sorted(m1 + m2, key=_atom_key))
                result[monomial] = result.get(monomial, 0) + c1 * c2
        return Sym._build(result)

    __rmul__ = __mul__

    def __floordiv__(self, divisor: int) -> Dim:
        if not isinstance(divisor, int) or divisor <= 0:
            raise TypeError("symbolic dims can only be floor-divided by a positive int")
        if divisor == 1:
            return self
        if all(c % divisor == 0 for _, c in self.terms):
            return Sym._build({m: c // divisor for m, c in self.terms})
        terms = self._as_dict()
        constant = terms.pop((), 0)
        if len(terms) == 1:
            # ((X)//a + c) // b == (X + c*a) // (a*b) for integers X, c and positive a, b:
            # a chain of strided layers stays one flat atom instead of nesting per layer.
            [(monomial, coeff)] = terms.items()
            if coeff == 1 and len(monomial) == 1 and isinstance(monomial[0], FloorDiv):
                inner = monomial[0]
                if inner.divisor * divisor <= _MAX_DIVISOR:
                    return (inner.numerator + constant * inner.divisor) // (inner.divisor * divisor)
        # Pull out the constant part that divides exactly so `(T+2)//2` stays `(T)//2 + 1`.
        whole = constant // divisor
        rest = self - whole * divisor
        assert isinstance(rest, Sym)
        if _nesting(rest) >= MAX_FLOOR_NESTING:
            raise SymbolicLimitError(
                f"a symbolic size nests more than {MAX_FLOOR_NESTING} floor divisions; "
                "give the symbolic dims fixed sizes"
            )
        return Sym._build({(FloorDiv(rest, divisor),): 1, (): whole})

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        total = 0
        for monomial, coeff in self.terms:
            value = coeff
            for atom in monomial:
                value *= (
                    bindings[atom]
                    if isinstance(atom, str)
                    else atom.numerator.evaluate(bindings) // atom.divisor
                )
            total += value
        return total

    def __str__(self) -> str:
        parts: list[str] = []
        for monomial, coeff in self.terms:
            factors = [str(a) for a in monomial]
            if not factors:
                body = str(abs(coeff))
            elif abs(coeff) == 1:
                body = "*".join(factors)
            else:
                body = "*".join([str(abs(coeff)), *factors])
            sign = "-" if coeff < 0 else "+"
            parts.append(
                body if not parts and sign == "+" else (f"-{body}" if not parts else f"{sign}{body}")
            )
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Sym({self})"

    def __lt__(self, other: object) -> bool:  # only for deterministic sorting
        return str(self) < str(other)


Dim = int | Sym

# Floor divisions nest only where flattening cannot apply (a scaled quotient divided
# again); a divisor past 2^62 is beyond every dim. Both bound the recursion of `str`,
# `evaluate` and hashing, which follow the nesting.
MAX_FLOOR_NESTING = 32
_MAX_DIVISOR = 2**62


class SymbolicLimitError(ValueError):
    """A symbolic size grew past what dlc represents (see `MAX_FLOOR_NESTING`)."""


def _nesting(dim: Sym) -> int:
    """How deeply floor divisions nest inside `dim` (0: a plain polynomial)."""
    depth = 0
    for monomial, _ in dim.terms:
        for atom in monomial:
            if isinstance(atom, FloorDiv):
                depth = max(depth, 1 + _nesting(atom.numerator))
    return depth


def _terms(value: Dim) -> dict[Monomial, int]:
    if isinstance(value, Sym):
        return value._as_dict()
    return {(): int(value)} if value else {}


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def evaluate_dim(dim: Dim, bindings: Mapping[str, int]) -> int:
    return dim if isinstance(dim, int) else dim.evaluate(bindings)


def floor_div(dim: Dim, divisor: int) -> Dim:
    return dim // divisor


def dim_symbols(dim: Dim) -> frozenset[str]:
    return dim.symbols if isinstance(dim, Sym) else frozenset()


def product(dims: tuple[Dim, ...] | list[Dim]) -> Dim:
    result: Dim = 1
    for dim in dims:
        result = result * dim
    return result
