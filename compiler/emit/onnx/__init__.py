"""ONNX emission: IR graph -> ModelProto -> file."""

from dlc.emit.onnx.emitter import ONNX_IR_VERSION, ONNX_OPSET, build_onnx_model
from dlc.emit.onnx.writer import save_onnx

__all__ = ["ONNX_IR_VERSION", "ONNX_OPSET", "build_onnx_model", "save_onnx"]
