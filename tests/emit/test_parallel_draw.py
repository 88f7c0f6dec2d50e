"""Parallel drawing of streamed weights: the bytes of a sequential draw, bounded memory, no
deadlock with tiny limits, errors raised in the writer, and no thread left behind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import dlc
from dlc.emit.onnx import parallel_draw
from dlc.emit.onnx.parallel_draw import ParallelDraw
from dlc.emit.onnx.streamed import StreamedTensor
from dlc.ir import init
from dlc.spec.loader import load_spec

SPEC = """
dlc: 1
name: draws
inputs: {ids: {shape: [N], dtype: int64}}
layers:
  - embedding: {vocab: 300, dim: 48}
  - linear: 200
  - layer_norm
  - linear: 150
  - batch_norm
  - linear: 9
"""


def drawing_threads_left() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dlc-draw-")]


def counting(values: np.ndarray, handed: list[int]) -> Callable[..., Iterator[np.ndarray]]:
    """A part that yields `values` in pieces of 4, drawn into the buffers it is given."""

    def pieces(buffers: Callable[[], np.ndarray | None] | None) -> Iterator[np.ndarray]:
        for start in range(0, values.size, 4):
            buffer = buffers() if buffers is not None else None
            assert buffer is not None
            handed.append(id(buffer))
            piece = buffer[: min(4, values.size - start)]
            piece[:] = values[start : start + 4]
            yield piece

    return pieces


def read_all(drawn: ParallelDraw, sources: list[StreamedTensor]) -> list[np.ndarray]:
    return [np.concatenate([p.copy() for p in drawn.pieces()]) for _ in sources]


def test_a_streamed_write_with_tiny_limits_is_the_inline_model_byte_for_byte(tmp_path, monkeypatch) -> None:
    # Pieces of 64 values, 2 slots and 3 threads: many parts (a uniform weight splits into
    # one per piece), threads always waiting for a slot, and the head part's reserve used.
    monkeypatch.setattr(init, "CHUNK", 64)
    monkeypatch.setattr(parallel_draw, "CHUNK", 64)
    monkeypatch.setattr(parallel_draw, "SLOTS", 2)
    monkeypatch.setattr(parallel_draw, "drawing_threads", lambda: 3)
    model = dlc.compile(load_spec("draws.yaml", text=SPEC), seed=5)
    streamed = model.streamed_weights()
    assert len(streamed["linear_0.weight"].parts) == 200 * 48 // 64
    assert len(streamed["embedding_0.weight"].parts) == 1  # normal: too small to cut
    assert len(streamed["linear_1.weight"].parts) == 1  # batch norm folded in: data
    path = model.save(tmp_path / "streamed.onnx")[0]
    assert path.read_bytes() == model.onnx_model().SerializeToString()
    assert drawing_threads_left() == []


def test_a_normal_draw_in_parts_is_written_byte_for_byte_on_several_threads(tmp_path, monkeypatch) -> None:
    # Pieces of 4096 values: the 3000 x 48 embedding (a zeroed padding row in its middle)
    # is cut into dozens of normal parts, drawn by 3 threads through 3 slots and finished
    # by the writer in order.
    monkeypatch.setattr(init, "CHUNK", 4096)
    monkeypatch.setattr(parallel_draw, "CHUNK", 4096)
    monkeypatch.setattr(parallel_draw, "SLOTS", 3)
    monkeypatch.setattr(parallel_draw, "drawing_threads", lambda: 3)
    spec = SPEC.replace(
        "embedding: {vocab: 300, dim: 48}", "embedding: {vocab: 3000, dim: 48, padding_idx: 1500}"
    )
    model = dlc.compile(load_spec("draws.yaml", text=spec), seed=5)
    embedding = model.streamed_weights()["embedding_0.weight"]
    assert len(embedding.parts) > 30 and embedding.finish is not None
    path = model.save(tmp_path / "streamed.onnx")[0]
    assert path.read_bytes() == model.onnx_model().SerializeToString()
    assert not model.tensors()["embedding_0.weight"][1500].any()
    assert drawing_threads_left() == []


def test_pieces_come_in_file_order_through_the_slots_only() -> None:
    handed: list[int] = []
    long = np.arange(100, dtype=np.float32)  # one sequential part of 25 pieces
    short = [np.full(6, i, np.float32) for i in range(20)]  # split into 2 parts each
    sources = [StreamedTensor(long.nbytes, counting(long, handed))]
    for values in short:
        halves = (counting(values[:4], handed), counting(values[4:], handed))
        sources.append(StreamedTensor(values.nbytes, halves[0], parts=halves))
    with ParallelDraw(sources, threads=4, slots=3) as drawn:
        watchdog = threading.Timer(60, drawn.close)  # a deadlock fails the test, not hangs it
        watchdog.start()
        read = read_all(drawn, sources)
        watchdog.cancel()
    np.testing.assert_array_equal(read[0], long)
    for values, got in zip(short, read[1:], strict=True):
        np.testing.assert_array_equal(got, values)
    assert len(set(handed)) <= 3  # never more buffers than slots
    assert drawing_threads_left() == []


def test_a_draw_started_early_is_kept_for_the_same_order_and_replaced_for_another() -> None:
    values = [np.full(8, i, np.float32) for i in range(5)]
    sources = [StreamedTensor(v.nbytes, counting(v, [])) for v in values]
    early = ParallelDraw(sources, threads=2, slots=3)
    assert early.drawing(list(sources)) is early
    reordered = sources[::-1]
    with early.drawing(reordered) as drawn:
        assert drawn is not early
        read = read_all(drawn, reordered)
    for value, got in zip(values[::-1], read, strict=True):
        np.testing.assert_array_equal(got, value)
    early.close()
    assert drawing_threads_left() == []


def test_saving_starts_drawing_before_the_writer_and_keeps_that_draw(tmp_path, monkeypatch) -> None:
    kept = []
    original = ParallelDraw.drawing
    monkeypatch.setattr(
        ParallelDraw, "drawing", lambda self, sources: kept.append(original(self, sources) is self) or self
    )
    model = dlc.compile(load_spec("draws.yaml", text=SPEC), seed=5)
    path = model.save(tmp_path / "streamed.onnx")[0]
    assert kept == [True]
    assert path.read_bytes() == model.onnx_model().SerializeToString()
    assert drawing_threads_left() == []


def test_an_error_while_drawing_is_raised_in_the_writer_after_the_earlier_tensors() -> None:
    failure = RuntimeError("simulated failure while drawing")

    def broken(buffers: object) -> Iterator[np.ndarray]:
        yield np.zeros(2, np.float32)
        raise failure

    good = np.arange(8, dtype=np.float32)
    sources = [
        StreamedTensor(good.nbytes, counting(good, [])),
        StreamedTensor(16, broken),
        StreamedTensor(good.nbytes, counting(good, [])),
    ]
    with ParallelDraw(sources, threads=2, slots=2) as drawn:
        np.testing.assert_array_equal(np.concatenate([p.copy() for p in drawn.pieces()]), good)
        with pytest.raises(RuntimeError) as raised:
            list(drawn.pieces())
    assert raised.value is failure
    assert drawing_threads_left() == []


class Interrupted(Exception):
    """Stands for Ctrl-C in the writer."""


def test_a_writer_that_stops_early_stops_the_threads() -> None:
    many = [np.arange(40, dtype=np.float32) + i for i in range(50)]
    sources = [StreamedTensor(v.nbytes, counting(v, [])) for v in many]
    with pytest.raises(Interrupted), ParallelDraw(sources, threads=2, slots=4) as drawn:
        next(drawn.pieces())
        raise Interrupted
    assert drawing_threads_left() == []


def test_drawing_threads_run_blas_one_thread_each_and_restore_it() -> None:
    """Several drawing threads each running a multithreaded BLAS routine (ELMo's QRs)
    oversubscribed the cores: while they draw, BLAS gets one thread; after, what it had."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    seen: list[list[int]] = []

    def qr_piece(buffers: object) -> Iterator[np.ndarray]:
        seen.append(blas_threads())
        q, _ = np.linalg.qr(np.eye(8))
        yield q.astype(np.float32).reshape(-1)

    sources = [StreamedTensor(256, qr_piece) for _ in range(4)]
    with ParallelDraw(sources, threads=2) as drawn:
        read_all(drawn, sources)
    assert seen and all(counts and set(counts) == {1} for counts in seen)
    assert blas_threads() == before
