"""The `onnx` emit target (the writer, and onnx with it, is imported when writing, so
that the commands which never write stay quick)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from dlc.emit.targets import EmitTarget

if TYPE_CHECKING:
    from dlc.api import CompiledModel


def _write(model: CompiledModel, path: Path) -> list[Path]:
    # Weights stream from their initializers to the file: never one message in memory. They
    # start drawing now, in the graph's order of parameters (the file's), while this thread
    # imports onnx, builds the model and checks it. A sampler's file holds its loop body's
    # weights first (`dlc.emit.onnx.loop_weights`): the writer draws them once the model is
    # built and that order is known.
    from dlc.emit.onnx.parallel_draw import ParallelDraw

    streamed = model.streamed_weights()
    early = ParallelDraw(list(streamed.values())) if model.sampler is None else contextlib.nullcontext()
    with early as drawing:
        from dlc.emit.onnx.writer import save_onnx

        return save_onnx(model.onnx_model(streamed=True), path, streamed=streamed, drawing=drawing)


ONNX_TARGET = EmitTarget(
    name="onnx",
    description="An ONNX model (opset 21) for ONNX Runtime and other runtimes.",
    write=_write,
    default_output=lambda stem: f"{stem}.onnx",
)
