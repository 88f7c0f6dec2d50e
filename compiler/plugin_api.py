"""Everything a plugin author needs, in one import: ``from dlc.plugin_api import ...``.

A plugin module implements hooks from `dlc.hookspecs` with `hookimpl` and returns records:
`BlockType` (spec blocks), `OpDef` (IR ops), `PassInfo` (passes), `EmitTarget`,
`ShortcutProjection` and `TemplateLibrary`. See `examples/dlc-example-plugin` for a
complete third-party plugin.
"""

from __future__ import annotations

from dlc.emit.onnx.builder import OnnxBuilder
from dlc.emit.targets import EmitTarget
from dlc.emit.torch.writer import TorchExpr, TorchWriter
from dlc.errors import DlcError, ShapeError, SpecError
from dlc.hookspecs import hookimpl
from dlc.ir import init
from dlc.ir.graph import Graph
from dlc.ir.node import Node, OpAttrs, Value
from dlc.ir.ops import InferenceError, OpDef, OpGroup, OpSample
from dlc.ir.shapes import (
    axis_in_range,
    broadcast,
    concat,
    divide_exact,
    present,
    require,
    reshape,
    same_dtype,
)
from dlc.ir.symbolic import Dim, Sym, is_static, product
from dlc.ir.types import FLOAT32_LOWEST, DType, TensorType, format_shape
from dlc.passes.manager import (
    LEVEL_OPT_IN,
    PHASE_CLEANUP,
    PHASE_FINAL,
    PHASE_FUSION,
    PHASE_SELECTION,
    Pass,
    PassContext,
    PassInfo,
    PassResult,
)
from dlc.spec.blocks import BlockConfig, BlockType, ShortcutProjection, TemplateLibrary
from dlc.spec.context import BlockContext
from dlc.training.datasets import DatasetArrays, DatasetInfo

__all__ = [
    "FLOAT32_LOWEST",
    "LEVEL_OPT_IN",
    "PHASE_CLEANUP",
    "PHASE_FINAL",
    "PHASE_FUSION",
    "PHASE_SELECTION",
    "BlockConfig",
    "BlockContext",
    "BlockType",
    "DType",
    "DatasetArrays",
    "DatasetInfo",
    "Dim",
    "DlcError",
    "EmitTarget",
    "Graph",
    "InferenceError",
    "Node",
    "OnnxBuilder",
    "OpAttrs",
    "OpDef",
    "OpGroup",
    "OpSample",
    "Pass",
    "PassContext",
    "PassInfo",
    "PassResult",
    "ShapeError",
    "ShortcutProjection",
    "SpecError",
    "Sym",
    "TemplateLibrary",
    "TensorType",
    "TorchExpr",
    "TorchWriter",
    "Value",
    "axis_in_range",
    "broadcast",
    "concat",
    "divide_exact",
    "format_shape",
    "hookimpl",
    "init",
    "is_static",
    "present",
    "product",
    "require",
    "reshape",
    "same_dtype",
]
