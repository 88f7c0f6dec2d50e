"""`add_identity`: x + I for square matrices [..., K, K] (op and block).

PointNet's T-Net (Qi et al. 2017) regresses a K x K transform whose last layer is offset by
the identity, so that an untrained T-Net leaves the points as they are: the authors add
``np.eye(K)`` to the biases in the graph, the PyTorch port adds ``torch.eye(K)`` in forward.
Here the identity is written in the graph (an ONNX constant, ``torch.eye`` in the ejected
module), never stored with the weights, so the reference's state_dict loads as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    format_shape,
    require,
)


def _square_problem(x: TensorType) -> str | None:
    """Why `x` is not a stack of static square matrices, or None."""
    if x.rank < 2 or x.shape[-1] != x.shape[-2] or not isinstance(x.shape[-1], int):
        return f"expects square matrices [..., K, K] with a static K, got {format_shape(x.shape)}"
    if not x.dtype.is_float:
        return f"expects floating-point matrices, got {x}"
    return None


def _add_identity_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "add_identity needs an input")
    assert x is not None
    problem = _square_problem(x)
    require(problem is None, f"add_identity {problem}")
    return x


def _add_identity_onnx(b: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    size = int(x.type.shape[-1])
    identity = b.constant(np.eye(size, dtype=x.type.dtype.numpy), f"eye{size}")
    b.op("Add", [b.name(x), identity], b.outputs(node))


def _add_identity_torch(t: TorchWriter, node: Node) -> str:
    x = node.inputs[0]
    size = int(x.type.shape[-1])
    variable = t.var(x)
    return f"{variable} + torch.eye({size}, dtype={variable}.dtype, device={variable}.device)"


def _add_identity_samples() -> list[OpSample]:
    rng = np.random.default_rng(1402)
    return [
        OpSample((rng.standard_normal((2, 3, 3)).astype(np.float32),), name="batched-3x3"),
        OpSample((rng.standard_normal((4, 4)).astype(np.float32),), symbolic_batch=False, name="one-4x4"),
    ]


OPS = [
    OpDef(
        "add_identity",
        _add_identity_infer,
        _add_identity_onnx,
        _add_identity_torch,
        _add_identity_samples,
        group=OpGroup.ELEMENTWISE,
        doc="x + I for square matrices [..., K, K].",
    ),
]


class AddIdentityConfig(BlockConfig):
    pass


def _add_identity_block(ctx: BlockContext, config: AddIdentityConfig, inputs: list[Value]) -> Value:
    problem = _square_problem(inputs[0].type)
    if problem is not None:
        raise ctx.error(problem)
    return ctx.op("add_identity", inputs[0])


BLOCKS = [
    BlockType(
        "add_identity",
        AddIdentityConfig,
        _add_identity_block,
        "x + I for square matrices [..., K, K] (PointNet's T-Net starts as the identity transform)",
    ),
]
