"""Draw streamed weights on every core, ahead of the writer, in bounded memory.

Drawing the initial weights is most of a large model's compile, and one thread drawing
while the writer waits leaves the other cores idle. numpy's generators release the GIL
while they fill an array, so threads draw in parallel.

Each streamed tensor comes as one or more *parts* (`StreamedTensor.parts`): a large float32
uniform or normal draw one part per piece (`Init.parts`), so a single large tensor is shared
out too. Drawing threads take parts in file order; the writer reads their pieces strictly in
file order, passing each through the tensor's `finish` if it has one (a normal draw's part
finds there where its values begin), so the bytes are those of a sequential draw.

Memory: every piece drawn and not yet written holds one of a fixed number of slots, each
with a float32 buffer of `CHUNK` elements, from before it is drawn until the writer asks for
the next piece. A thread drawing ahead of the part the writer reads leaves
`RESERVED_SLOTS` free, so that part can always get one: no deadlock, whatever the model's
size. An error while drawing is raised in the writer when it reaches that part; `close`
stops and joins the threads (after an error or Ctrl-C in the writer too).
"""

from __future__ import annotations

import operator
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dlc.ir.init import CHUNK
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from dlc.emit.onnx.streamed import StreamedTensor
    from dlc.ir.init import PieceSource

    Finish = Callable[[int, np.ndarray], np.ndarray]

# Drawn-but-unwritten pieces at most: 32 buffers of 4 MB, so one thread draws most of a
# large normal tensor's time ahead (GPT-2's 38.6M-value token embedding comes first). 48
# cost more CPU than they saved (fresh pages to fault in, pieces written from DRAM rather
# than cache); 16-32 were alike on the 2-core development machine.
SLOTS = 32
RESERVED_SLOTS = 1  # kept for the part the writer reads


def drawing_threads() -> int:
    """One drawing thread per core this process may use (the writer mostly waits)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


class _Part:
    """One part's drawn pieces, each with its slot's buffer, on their way to the writer."""

    def __init__(self, index: int, draw: PieceSource, finish: Finish | None, index_in_tensor: int) -> None:
        self.index = index
        self.draw = draw
        self.finish = finish  # applied by the writer, in order (`Init.parts`)
        self.index_in_tensor = index_in_tensor
        self.pieces: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.finished = False
        self.error: BaseException | None = None


class ParallelDraw:
    """The pieces of `sources`, drawn by `threads` threads and read in order with `pieces()`.
    Use as a context manager, or call `close`, so the threads always stop."""

    def __init__(
        self, sources: Sequence[StreamedTensor], threads: int | None = None, slots: int | None = None
    ) -> None:
        slots = slots or SLOTS
        assert slots > RESERVED_SLOTS, "the part the writer reads needs a slot of its own"
        self.sources = tuple(sources)
        self._parts: list[_Part] = []
        self._part_counts: deque[int] = deque()
        for source in sources:
            draws = source.parts or (source.pieces,)
            finish = source.finish if source.parts else None
            for index_in_tensor, draw in enumerate(draws):
                self._parts.append(_Part(len(self._parts), draw, finish, index_in_tensor))
            self._part_counts.append(len(draws))
        self._changed = threading.Condition()  # guards everything below
        self._next_part = 0  # the next part a thread takes
        self._head = 0  # the part the writer reads
        self._free_slots = slots
        self._spare_buffers: list[np.ndarray] = []  # of free slots; allocated on first use
        self._stopped = False
        count = min(threads or drawing_threads(), max(len(self._parts), 1))
        # Several threads each running a BLAS routine (an initializer's QR: ELMo's 32 block-
        # orthogonal 4096 x 512 blocks) with BLAS's own thread pool on top oversubscribe the
        # cores and spin: ELMo's weights took 43 s of CPU instead of 9. One BLAS thread per
        # drawing thread while they draw (threadpoolctl); restored by `close`.
        self._blas_limit = None
        if count > 1:
            from threadpoolctl import threadpool_limits

            self._blas_limit = threadpool_limits(limits=1, user_api="blas")
        self._threads = [
            threading.Thread(target=self._work, name=f"dlc-draw-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> ParallelDraw:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def drawing(self, sources: Sequence[StreamedTensor]) -> ParallelDraw:
        """This draw if it draws exactly `sources` in that order and has not been read
        from; else, after closing it, a new one that does."""
        unread = self._head == 0 and not self._stopped and len(self._part_counts) == len(self.sources)
        if unread and len(sources) == len(self.sources) and all(map(operator.is_, sources, self.sources)):
            return self
        self.close()
        return ParallelDraw(sources)

    # -- the writer's side ------------------------------------------------------------------

    def pieces(self) -> Iterator[np.ndarray]:
        """The next streamed tensor's pieces, in order. A piece stays valid until the next
        one is asked for; its buffer may then be drawn into again."""
        for _ in range(self._part_counts.popleft()):
            part = self._parts[self._head]
            while (handed := self._next_piece(part)) is not None:
                piece, buffer = handed
                try:
                    yield piece if part.finish is None else part.finish(part.index_in_tensor, piece)
                finally:
                    self._release_slot(buffer)
            with self._changed:
                self._head += 1
                self._changed.notify_all()

    def _next_piece(self, part: _Part) -> tuple[np.ndarray, np.ndarray] | None:
        with self._changed:
            self._changed.wait_for(lambda: part.pieces or part.finished or self._stopped)
            if part.pieces:
                return part.pieces.popleft()
            if part.error is not None:
                raise part.error
            if self._stopped:  # a part cut short: never a shorter tensor
                raise RuntimeError("the weights' drawing was stopped")
            return None

    def close(self) -> None:
        """Stop drawing and wait for the threads (each finishes the piece it is drawing)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    # -- the drawing threads' side -----------------------------------------------------------

    def _work(self) -> None:
        while (part := self._take_part()) is not None:
            self._draw(part)

    def _take_part(self) -> _Part | None:
        with self._changed:
            if self._stopped or self._next_part >= len(self._parts):
                return None
            self._next_part += 1
            return self._parts[self._next_part - 1]

    def _draw(self, part: _Part) -> None:
        slot_buffer: list[np.ndarray | None] = [None]

        def buffers() -> np.ndarray | None:  # the piece's slot buffer, once
            buffer, slot_buffer[0] = slot_buffer[0], None
            return buffer

        error = None
        try:
            pieces = part.draw(buffers)
            while (buffer := self._acquire_slot(part.index)) is not None:
                slot_buffer[0] = buffer
                try:
                    piece = next(pieces, None)
                except BaseException:
                    self._release_slot(buffer)
                    raise
                if piece is None:
                    self._release_slot(buffer)
                    break
                with self._changed:
                    part.pieces.append((piece, buffer))
                    self._changed.notify_all()
        except BaseException as raised:  # re-raised in the writer's thread
            error = raised
        with self._changed:
            part.error, part.finished = error, True
            if error is not None:  # the writer stops there: draw no further parts
                self._next_part = len(self._parts)
            self._changed.notify_all()

    def _acquire_slot(self, index: int) -> np.ndarray | None:
        """A free slot's buffer for a piece of part `index`, once one may be taken; None
        when drawing stopped."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopped or self._free_slots > self._reserved_for(index))
            if self._stopped:
                return None
            self._free_slots -= 1
            return self._spare_buffers.pop() if self._spare_buffers else np.empty(CHUNK, np.float32)

    def _reserved_for(self, index: int) -> int:
        """Slots that part `index` must leave free: none once the writer reads it."""
        return 0 if index == self._head else RESERVED_SLOTS

    def _release_slot(self, buffer: np.ndarray) -> None:
        with self._changed:
            self._free_slots += 1
            self._spare_buffers.append(buffer)
            self._changed.notify_all()
