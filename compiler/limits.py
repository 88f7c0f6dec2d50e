"""Resource limits: how large a model dlc agrees to build, checked before the work starts.

A spec is a few lines of YAML, and a few lines can ask for a terabyte (``linear: 1e9``
after a wide layer), a million layers (``repeat: 1000000``) or a dimension no tensor can
have (``shape: [N, 10**30]``). dlc bounds each of these and answers with a located error
when one is exceeded, instead of allocating, looping or writing until the machine gives
out:

- every dimension and every integer option of a block is at most `MAX_DIM` (2^31 - 1,
  the int32 range that tensor indexing assumes), checked where the spec writes it and on
  every shape that lowering infers, so an absurd size never reaches an emitter;
- the IR has at most `Limits.max_nodes` operations: a `repeat` checks its count against
  what remains after its first iteration, and a block that stacks a counted number of
  layers reserves them (`BlockContext.reserve`) before building any;
- the parameters and buffers of a model total at most `Limits.max_params`, checked after
  lowering (which only records shapes) and before any weight is drawn, folded or written;
- layers nest at most `MAX_NESTING` deep (a residual in a repeat in a template ...),
  and no algorithm recurses in proportion to the number of layers in a chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlc.errors import SpecError

MAX_DIM = 2**31 - 1  # the largest dimension (and integer block option) a spec may ask for
MAX_NESTING = 64  # layers inside layers (residual, repeat, template bodies)
DEFAULT_MAX_PARAMS = 10**10  # 40 GB of float32: far past every zoo spec (BERT-large: 3.4e8)
DEFAULT_MAX_NODES = 200_000  # IR operations: a 20,000-layer MLP has 50,000


class ResourceLimitError(SpecError):
    """A spec asks for more than a resource limit allows (parameters, operations, sizes).

    Lowering stops at the first one: whatever it would lower next is as large."""


@dataclass(frozen=True)
class Limits:
    """The limits one compilation runs under (`--max-params`, `--max-nodes`)."""

    max_params: int = DEFAULT_MAX_PARAMS
    max_nodes: int = DEFAULT_MAX_NODES

    def __post_init__(self) -> None:
        for name in ("max_params", "max_nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


def format_count(count: int) -> str:
    """``4.1e12`` for large counts, the plain number for small ones (no float overflow, no
    int-to-str limit, however large the count)."""
    if abs(count) < 10**7:
        return f"{count:,}"
    if abs(count) < 10**300:
        return f"{count:.2g}".replace("e+", "e")
    return f"{'-' if count < 0 else ''}about 1e{int(abs(count).bit_length() * math.log10(2))}"


def format_bytes(size: float) -> str:
    """A byte count in the largest decimal unit that keeps a number >= 1 (``16 TB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if size < 1000 or unit == "EB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def dim_problem(value: int) -> str | None:
    """Why `value` is not a usable dimension size, or None when it is."""
    if value < 1:
        return f"a dimension must be positive, got {value}"
    if value > MAX_DIM:
        return f"dimension {format_count(value)} is larger than the limit {MAX_DIM:,} (2^31 - 1)"
    return None
