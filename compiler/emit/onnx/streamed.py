"""An initializer's data as the writer streams it: pieces drawn when the file is written.

Apart from the writer so that weights can start drawing before onnx is imported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from dlc.ir.init import PieceSource


@dataclass(frozen=True)
class StreamedTensor:
    """An initializer's data, produced when the file is written: `pieces(buffers)` yields
    flat arrays that together hold `nbytes` bytes, in C order. It may draw each piece into
    a float32 buffer of `CHUNK` elements from `buffers()`, and must yield that piece before
    asking for another buffer. `parts`, if given, yields the same pieces as consecutive
    parts that may be drawn concurrently (`dlc.emit.onnx.parallel_draw`), each piece then
    passed through `finish(part_index, piece)` in order when that is given (`Init.parts`)."""

    nbytes: int
    pieces: PieceSource
    parts: tuple[PieceSource, ...] = ()
    finish: Callable[[int, np.ndarray], np.ndarray] | None = None
