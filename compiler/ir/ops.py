"""The op vocabulary: one `OpDef` per IR op, registered by plugins.

An `OpDef` bundles everything dlc needs to know about an op: its typed attributes,
shape/dtype inference, ONNX lowering, torch lowering, MAC count and sample inputs. An op
cannot be registered without samples: the test suite is parametrized over the registry
and checks every op's torch lowering against its ONNX lowering in ONNX Runtime.

Ops belong to one named group, and passes ask ``op.group is OpGroup.ELEMENTWISE`` rather
than keeping lists of op names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dlc.ir.node import Node, OpAttrs
from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    from dlc.emit.onnx.builder import OnnxBuilder
    from dlc.emit.torch.writer import TorchExpr, TorchWriter


class OpGroup(StrEnum):
    """Named groups of ops that passes reason about."""

    SOURCE = "source"  # input, parameter, constant: no computation
    ELEMENTWISE = "elementwise"  # one output element per input element (with broadcasting)
    MOVEMENT = "movement"  # reshapes, concatenations, transposes: data moves, no arithmetic
    CONTRACTION = "contraction"  # matmul-like: linear, conv, attention products (counted as MACs)
    NORMALIZATION = "normalization"  # batch norm, layer norm, softmax
    REDUCTION = "reduction"  # pooling, reductions
    OTHER = "other"


class InferenceError(ValueError):
    """Shape or dtype inference failed; the lowering context locates it at the spec layer."""


@dataclass(frozen=True)
class OpSample:
    """One sample for the registry-wide parity test: attributes and input arrays.

    Inputs listed in `params` become parameters; give them the op's own parameter names
    (``{1: "weight", 2: "bias"}``) so a torch lowering that builds a submodule (nn.Linear)
    claims them and the module form is exercised, not only the functional one. With
    `symbolic_batch`, dim 0 of the batched data inputs is the symbol `N`; `symbols` names
    symbolic dims explicitly instead.
    """

    inputs: tuple[np.ndarray | None, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: frozenset[int] | Mapping[int, str] = frozenset()
    symbolic_batch: bool = True
    symbols: Mapping[int, Mapping[int, str]] | None = None  # explicit {input: {axis: symbol}}
    tolerance: float = 1e-5
    name: str = ""


InferFn = Callable[[Any, Sequence[TensorType | None]], TensorType | Sequence[TensorType]]
OnnxFn = Callable[["OnnxBuilder", Node], None]
TorchFn = Callable[["TorchWriter", Node], "str | TorchExpr"]
MacsFn = Callable[[Node], Dim]


@dataclass(frozen=True)
class OpDef:
    """Everything about one IR op. `infer` returns the output type(s) or raises
    `InferenceError`; `to_onnx` emits ONNX nodes; `to_torch` returns a Python expression
    (or `TorchExpr`); `macs` counts multiply-accumulates (contractions only)."""

    name: str
    infer: InferFn
    to_onnx: OnnxFn
    to_torch: TorchFn
    samples: Callable[[], Sequence[OpSample]]
    attrs: type[OpAttrs] = OpAttrs
    group: OpGroup = OpGroup.OTHER
    outputs: tuple[str, ...] = ("out",)
    macs: MacsFn | None = None
    # Multiply-accumulates of sparse message passing (graph aggregation over edges): not in
    # the reference MAC counts, which take dense contractions only; `dlc summary` reports
    # them apart, as a formula in the graph's dims (E, V).
    message_macs: MacsFn | None = None
    inference_identity: bool = False  # output == input 0 at inference (dropout, identity)
    doc: str = ""
    plugin: str = ""

    def make_attrs(self, values: Mapping[str, Any]) -> OpAttrs:
        return self.attrs.model_validate(dict(values))

    def infer_types(self, attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> tuple[TensorType, ...]:
        result = self.infer(attrs, inputs)
        return (result,) if isinstance(result, TensorType) else tuple(result)

    def port_names(self, count: int) -> tuple[str, ...]:
        if count == len(self.outputs):
            return self.outputs
        return tuple(str(i) for i in range(count))
