"""One float32 normal draw cut into parts that threads draw at once, bit for bit numpy's
sequential draw.

numpy's float32 ziggurat (`Generator.standard_normal(dtype=float32)`) takes one 32-bit word
of the generator's stream for most values and more for about 2% of them, so the word where
value S begins is not known without drawing every value before it: a part cannot jump
ahead to its start as a uniform draw's can (`Init.parts`). But a draw started at any word
falls into step with the true one within a few values, since almost every value takes
exactly one word, and two draws at the same word stay in step. So:

- each part is drawn (on any thread, in any order) from a word safely before where its
  first value is expected (`MARGIN_SPREADS` standard deviations of the words S values take,
  below their mean), and far enough to pass its true end by `HEAD` values;
- the reader, part by part in order (`NormalSplit.finish`), finds where the part's true
  values begin: where the `HEAD` values that the previous part drew past its own end appear.
  From there on the part's values are the sequential draw's.

A part whose start is not found (guessed too late: a 6-standard-deviation event) is drawn
again from the tensor's first value, slowly and exactly. Whatever the guesses, the values
are the sequential draw's; only the time depends on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    Buffers = Callable[[], np.ndarray | None]

# The words numpy's float32 ziggurat takes per value: mean and standard deviation, measured
# over 200 draws of 2**20 values (1.0220 and 0.1854 per value).
WORDS_PER_VALUE = 1.0220
WORDS_SPREAD = 0.1854
MARGIN_SPREADS = 6.0  # a part's drawing starts this many standard deviations early
HEAD = 16  # values that identify where a part's true values begin
SLACK = 32  # words of margin beyond the spread (rounding to a whole 64-bit output, resync)


@dataclass(frozen=True)
class _PartPlan:
    start: int  # the part's first value in the tensor
    count: int  # its values
    first_word: int  # the stream word its drawing starts at (even: a whole 64-bit output)
    drawn: int  # values it draws: enough to reach `HEAD` past its true end


class NormalSplit:
    """The parts of a float32 draw of `total` standard normal values from `generator()`,
    scaled by `std` and shifted by `mean`, each at most `chunk` values. `sources()` are
    drawn independently; the reader passes each part's piece to `finish`, in order, and
    writes what it returns. `adjust(values, start)` is applied to each finished piece, the
    tensor's values [start, start + len(values)) (to zero a row)."""

    def __init__(
        self,
        total: int,
        chunk: int,
        generator: Callable[[], np.random.Generator],
        mean: float,
        std: float,
        adjust: Callable[[np.ndarray, int], None],
    ) -> None:
        self._generator = generator
        self._mean, self._std = mean, std
        self._adjust = adjust
        self.plans = _plan(total, chunk)
        self._head: np.ndarray | None = None  # the true values after the last finished part
        self._finished = 0

    @staticmethod
    def worthwhile(total: int, chunk: int) -> bool:
        """Whether cutting a draw of `total` values into parts of at most `chunk` pays:
        several parts, none of them mostly margin."""
        return total > 2 * chunk and _room(total, chunk) >= chunk // 2

    def sources(self) -> list[Callable[[Buffers | None], Iterator[np.ndarray]]]:
        return [lambda buffers, index=index: self._draw(index, buffers) for index in range(len(self.plans))]

    def _draw(self, index: int, buffers: Buffers | None) -> Iterator[np.ndarray]:
        plan = self.plans[index]
        values = piece_buffer(buffers, plan.drawn, np.dtype(np.float32))
        rng = self._generator()
        rng.bit_generator.advance(plan.first_word // 2)
        self._fill(rng, values)
        yield values

    def _fill(self, rng: np.random.Generator, values: np.ndarray) -> None:
        rng.standard_normal(out=values, dtype=np.float32)
        values *= self._std
        values += self._mean

    def finish(self, index: int, drawn: np.ndarray) -> np.ndarray:
        """Part `index`'s true values, a view of its drawn piece; parts in order, once each."""
        assert index == self._finished, f"part {index} finished after part {self._finished - 1}"
        plan = self.plans[index]
        begin = 0 if index == 0 else self._find_head(drawn, plan)
        if begin is None:  # its start was guessed too late: draw it again, exactly
            self._draw_exactly(plan, drawn)
            begin = 0
        values = drawn[begin : begin + plan.count]
        self._head = drawn[begin + plan.count : begin + plan.count + HEAD].copy()
        self._finished += 1
        self._adjust(values, plan.start)
        return values

    def _find_head(self, drawn: np.ndarray, plan: _PartPlan) -> int | None:
        assert self._head is not None
        latest = plan.drawn - plan.count - HEAD  # the part's true values must fit after it
        for begin in np.flatnonzero(drawn[: latest + 1] == self._head[0]):
            if np.array_equal(drawn[begin : begin + HEAD], self._head):
                return int(begin)
        return None

    def _draw_exactly(self, plan: _PartPlan, drawn: np.ndarray) -> None:
        rng = self._generator()
        skipped = np.empty(min(plan.start, len(drawn)), np.float32)
        for start in range(0, plan.start, len(skipped)):
            rng.standard_normal(out=skipped[: min(len(skipped), plan.start - start)], dtype=np.float32)
        self._fill(rng, drawn[: plan.count + HEAD])


def piece_buffer(buffers: Buffers | None, size: int, dtype: np.dtype) -> np.ndarray:
    """The first `size` elements of the caller's next buffer when it fits, else a new array."""
    given = buffers() if buffers is not None else None
    usable = given is not None and given.dtype == np.dtype(dtype) and given.size >= size
    return given[:size] if usable else np.empty(size, dtype=dtype)


def _margin(start: int) -> int:
    """Words a part starting at value `start` begins drawing before its expected word."""
    return math.ceil(MARGIN_SPREADS * WORDS_SPREAD * math.sqrt(start)) + SLACK if start else 0


def _room(start: int, chunk: int) -> int:
    """The values a part starting at value `start` can hold in `chunk` drawn values."""
    return chunk - 2 * _margin(start) - HEAD - SLACK


def _plan(total: int, chunk: int) -> list[_PartPlan]:
    plans = []
    start = 0
    while start < total:
        margin = _margin(start)
        count = min(_room(start, chunk), total - start)
        first_word = max(0, math.floor(start * WORDS_PER_VALUE) - margin) // 2 * 2
        plans.append(_PartPlan(start, count, first_word, count + 2 * margin + HEAD + SLACK))
        start += count
    return plans
