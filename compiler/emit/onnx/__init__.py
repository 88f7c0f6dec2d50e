"""ONNX emission: IR graph -> ModelProto -> file (imported on first use: onnx is slow to
import, and most commands never emit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlc.emit.onnx.emitter import ONNX_IR_VERSION, ONNX_OPSET, build_onnx_model
    from dlc.emit.onnx.writer import save_onnx

__all__ = ["ONNX_IR_VERSION", "ONNX_OPSET", "build_onnx_model", "save_onnx"]


def __getattr__(name: str) -> Any:
    if name in ("ONNX_IR_VERSION", "ONNX_OPSET", "build_onnx_model"):
        from dlc.emit.onnx import emitter

        return getattr(emitter, name)
    if name == "save_onnx":
        from dlc.emit.onnx import writer

        return writer.save_onnx
    raise AttributeError(f"module 'dlc.emit.onnx' has no attribute {name!r}")
