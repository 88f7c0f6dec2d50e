"""Parameter initializers: deterministic from the seed, following torch's defaults.

Each parameter draws from its own generator seeded with ``(seed, crc32(name))``, so a
parameter's values depend only on the seed and its name, never on the order in which
parameters are created or emitted. Values are drawn directly in float32, in pieces of
`CHUNK` elements (the same stream as one draw), so a writer can stream a large tensor
through a small reused buffer instead of holding it whole (`Init.chunks`). A float32
uniform or normal draw can also be cut into parts drawn independently, by several threads
(`Init.parts`).

An initializer may pass its draw through a named `Transform` (e.g. the LRU's eigenvalue
ring), and parameters that name the same `stream` share one draw, so one can be a
function of another's values (the LRU's normalization of its eigenvalues' moduli).
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal, NamedTuple

from dlc.ir.normal_split import NormalSplit, piece_buffer
from dlc.lazy_imports import numpy as np

InitKind = Literal["uniform", "normal", "truncated_normal", "constant", "data"]

# Elements drawn per generator call. Uniform and normal streams do not depend on it; a
# truncated normal redraws its out-of-range values piece by piece, so it is part of that
# distribution's definition and must not change.
CHUNK = 1 << 20

if TYPE_CHECKING:  # aliases for annotations only: numpy stays unimported until used
    Buffers = Callable[[], np.ndarray | None]
    # Draws a tensor's pieces (or one part of them), each into a buffer from `Buffers` if given.
    PieceSource = Callable[[Buffers | None], Iterator[np.ndarray]]


class Parts(NamedTuple):
    """A draw cut into parts (`Init.parts`): `sources` may be drawn by any threads in any
    order; a reader passes each part's pieces, part by part in order, through
    `finish(part_index, piece)` when it is given, and writes what that returns."""

    sources: list[PieceSource]
    finish: Callable[[int, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True, eq=False)
class Transform:
    """A function applied element-wise to drawn values, named for the IR printer."""

    name: str
    function: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Init:
    """How to fill a parameter: a distribution with its arguments, or literal data."""

    kind: InitKind
    first: float = 0.0  # uniform: low; normal: mean; constant: value
    second: float = 0.0  # uniform: high; normal: std
    data: np.ndarray | None = field(default=None, repr=False)
    zero_row: int | None = None  # a row set to zero after drawing (embedding padding_idx)
    transform: Transform | None = None  # applied to the drawn values
    stream: str | None = None  # draw from this name's generator instead of the parameter's
    # Data computed when first needed (`deferred_data`): its dtype and shape, the function,
    # and the result once computed.
    deferred: tuple[str, tuple[int, ...], Callable[[], np.ndarray]] | None = field(default=None, repr=False)
    _computed: list[np.ndarray] = field(default_factory=list, repr=False)
    _computing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> str:
        if self.transform is not None:
            stream = f", stream={self.stream}" if self.stream else ""
            return f"{self.transform.name}({self._describe_draw()}{stream})"
        return self._describe_draw()

    def _describe_draw(self) -> str:
        if self.zero_row is not None:
            return f"{self.kind}({self.first:.6g}, {self.second:.6g}, zero_row={self.zero_row})"
        if self.kind == "uniform":
            return f"uniform({self.first:.6g}, {self.second:.6g})"
        if self.kind in ("normal", "truncated_normal"):
            return f"{self.kind}({self.first:.6g}, {self.second:.6g})"
        if self.kind == "constant":
            return f"constant({self.first:.6g})"
        if self.deferred is not None:
            dtype, shape, _ = self.deferred
            return f"data({dtype}{list(shape)})"
        assert self.data is not None
        return f"data({self.data.dtype}{list(self.data.shape)})"

    def materialize(self, shape: Sequence[int], dtype: np.dtype, seed: int, name: str) -> np.ndarray:
        shape = tuple(shape)
        if self.kind == "data":
            return np.ascontiguousarray(self._data(), dtype=dtype).reshape(shape)
        if self.kind == "constant":
            filled = np.full(shape, self.first, dtype=dtype)
            if self.transform is None:
                return filled
            return np.asarray(self.transform.function(filled), dtype=dtype)
        values = np.empty(shape, dtype=self._draw_type(dtype))
        flat = values.reshape(-1)
        rng = self._generator(seed, self.stream or name)
        for start in range(0, flat.size, CHUNK):
            self._draw_into(rng, flat[start : start + CHUNK], start, shape)
        if self.transform is None:
            return values.astype(dtype, copy=False)
        transformed = np.asarray(self.transform.function(values), dtype=dtype)
        if self.zero_row is not None:  # zero after the transform too, as documented
            transformed[self.zero_row] = 0
        return transformed

    def chunks(
        self,
        shape: Sequence[int],
        dtype: np.dtype,
        seed: int,
        name: str,
        buffers: Buffers | None = None,
    ) -> Iterator[np.ndarray]:
        """The values in C order, as consecutive pieces of at most `CHUNK` elements: the
        same values as `materialize`. Each drawn piece goes into a buffer from `buffers()`
        (at least `CHUNK` elements of `dtype`; else one is allocated), so a large tensor
        needs no memory of its size. A piece is yielded before `buffers()` is called again,
        so the caller may refill a buffer once its piece was consumed."""
        shape = tuple(shape)
        total = int(np.prod(shape, dtype=np.int64))
        whole = self.transform is not None or self._draw_type(dtype) != np.dtype(dtype)
        if self.kind in ("data", "constant") or whole:
            if self.kind == "constant" and self.transform is None:  # one piece's worth, repeated
                flat = np.full(min(CHUNK, total), self.first, dtype=dtype)  # not a caller's buffer
                yield from (flat[: min(CHUNK, total - start)] for start in range(0, total, CHUNK))
                return
            flat = self.materialize(shape, dtype, seed, name).reshape(-1)
            yield from (flat[start : start + CHUNK] for start in range(0, total, CHUNK))
            return
        rng = self._generator(seed, self.stream or name)
        for start in range(0, total, CHUNK):
            piece = piece_buffer(buffers, min(CHUNK, total - start), dtype)
            self._draw_into(rng, piece, start, shape)
            yield piece

    def parts(self, shape: Sequence[int], dtype: np.dtype, seed: int, name: str) -> Parts:
        """The pieces of `chunks`, as consecutive parts that can be drawn independently (by
        different threads): a plain float32 uniform or normal draw of more than a piece is
        cut into parts of at most a piece each; anything else is one part.

        PCG64 gives `random(dtype=float32)` one 64-bit output per two values (it keeps the
        unused half for the next value), so the piece starting at element k * CHUNK (CHUNK
        is even) is what the same seed's generator draws after `advance(k * CHUNK // 2)`,
        which also drops any kept half. A normal draw (ziggurat) uses a data-dependent
        number of outputs: its parts start early and the reader finds where their values
        begin (`Parts.finish`, `dlc.ir.normal_split`). A truncated normal's redraws and
        float64 draws stay one part."""
        shape = tuple(shape)
        total = int(np.prod(shape, dtype=np.int64))
        plain = self.transform is None and np.dtype(dtype) == np.float32
        if plain and self.kind == "normal" and NormalSplit.worthwhile(total, CHUNK):
            split = NormalSplit(
                total,
                CHUNK,
                partial(self._generator, seed, self.stream or name),
                self.first,
                self.second,
                partial(self._zero_row, shape=shape),
            )
            return Parts(split.sources(), split.finish)
        if not (plain and self.kind == "uniform"):
            return Parts([partial(self.chunks, shape, dtype, seed, name)])
        return Parts([partial(self._piece_at, shape, seed, name, start) for start in range(0, total, CHUNK)])

    def _piece_at(
        self, shape: tuple[int, ...], seed: int, name: str, start: int, buffers: Buffers | None
    ) -> Iterator[np.ndarray]:
        """The piece of a float32 uniform draw that starts at element `start` (see `parts`)."""
        assert start % 2 == 0, "a piece must start on a whole 64-bit output"
        rng = self._generator(seed, self.stream or name)
        rng.bit_generator.advance(start // 2)
        total = int(np.prod(shape, dtype=np.int64))
        piece = piece_buffer(buffers, min(CHUNK, total - start), np.dtype(np.float32))
        self._draw_into(rng, piece, start, shape)
        yield piece

    def _data(self) -> np.ndarray:
        if self.deferred is None:
            assert self.data is not None
            return self.data
        with self._computing:  # once, whichever thread asks first (the writer draws in several)
            if not self._computed:
                self._computed.append(self.deferred[2]())
            return self._computed[0]

    @staticmethod
    def _generator(seed: int, name: str) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    @staticmethod
    def _draw_type(dtype: np.dtype) -> np.dtype:
        return np.dtype(np.float32 if np.dtype(dtype) == np.float32 else np.float64)

    def _draw_into(
        self, rng: np.random.Generator, values: np.ndarray, start: int, shape: tuple[int, ...]
    ) -> None:
        """Fill `values`, the flat elements [start, start + len) of the tensor, in place."""
        if self.kind == "uniform":
            rng.random(out=values, dtype=values.dtype)
            values *= self.second - self.first
            values += self.first
        elif self.kind == "normal":
            rng.standard_normal(out=values, dtype=values.dtype)
            values *= self.second
            values += self.first
        else:  # truncated_normal on [mean - 2 std, mean + 2 std], as torch's trunc_normal_
            rng.standard_normal(out=values, dtype=values.dtype)
            outside = np.abs(values) > 2.0
            while outside.any():
                values[outside] = rng.standard_normal(int(outside.sum()), dtype=values.dtype)
                outside = np.abs(values) > 2.0
            values *= self.second
            values += self.first
        self._zero_row(values, start, shape)

    def _zero_row(self, values: np.ndarray, start: int, shape: tuple[int, ...]) -> None:
        """Zero the part of `zero_row` inside `values`, the flat elements [start, start + len)."""
        if self.zero_row is not None:
            row = int(np.prod(shape[1:], dtype=np.int64))
            low = max(self.zero_row * row, start) - start
            high = min((self.zero_row + 1) * row, start + values.size) - start
            if low < high:
                values[low:high] = 0


def uniform(bound: float) -> Init:
    return Init("uniform", -bound, bound)


def fan_in_uniform(fan_in: int) -> Init:
    """torch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (``kaiming_uniform_(a=sqrt(5))`` gives exactly this bound.)
    """
    return uniform(1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


def normal(std: float = 1.0, mean: float = 0.0, zero_row: int | None = None) -> Init:
    return Init("normal", mean, std, zero_row=zero_row)


def truncated_normal(std: float, mean: float = 0.0) -> Init:
    return Init("truncated_normal", mean, std)


def constant(value: float) -> Init:
    return Init("constant", float(value))


def zeros() -> Init:
    return constant(0.0)


def ones() -> Init:
    return constant(1.0)


def transformed(
    base: Init, name: str, function: Callable[[np.ndarray], np.ndarray], stream: str = ""
) -> Init:
    """`base`'s draw passed through `function`; parameters with the same `stream` draw the
    same values (from the stream's generator), so each may apply its own function to them."""
    return Init(
        base.kind, base.first, base.second, transform=Transform(name, function), stream=stream or None
    )


def from_array(array: np.ndarray) -> Init:
    return Init("data", data=np.asarray(array))


def deferred_data(compute: Callable[[], np.ndarray], dtype: np.dtype, shape: Sequence[int]) -> Init:
    """Data that `compute()` gives (an array of `dtype` and `shape`), computed the first
    time anyone reads it, once. A pass that folds a drawn weight (batch norm into a conv)
    leaves the drawing and the arithmetic to the file writer, whose threads do it for many
    weights at once while the model is written, instead of doing it weight by weight before."""
    return Init("data", deferred=(np.dtype(dtype).name, tuple(int(d) for d in shape), compute))
