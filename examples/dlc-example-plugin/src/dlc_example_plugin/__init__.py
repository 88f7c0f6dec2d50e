"""An example dlc plugin: the swish activation and a template that uses it.

swish(x) = x * sigmoid(beta * x)   (Ramachandran et al. 2017; beta = 1 is SiLU)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    InferenceError,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TemplateLibrary,
    TensorType,
    TorchWriter,
    Value,
    hookimpl,
    init,
)


class SwishAttrs(OpAttrs):
    beta: float = 1.0  # used when no learnable beta is given as a second input


def _infer(attrs: SwishAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    if x is None or not x.dtype.is_float:
        raise InferenceError(f"swish expects a floating-point input, got {x}")
    if len(inputs) > 1 and inputs[1] is not None and inputs[1].shape != ():
        raise InferenceError(f"swish's learnable beta must be a scalar, got {inputs[1]}")
    return x


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *rest = b.inputs(node)
    beta = rest[0] if rest else b.constant(np.array(node.attrs.beta, dtype=np.float32), "beta")
    scaled = b.op("Mul", [x, beta])[0]
    gate = b.op("Sigmoid", [scaled])[0]
    b.op("Mul", [x, gate], b.outputs(node))


def _to_torch(t: TorchWriter, node: Node) -> str:
    x = t.var(node.inputs[0])
    beta = t.var(node.inputs[1]) if len(node.inputs) > 1 else repr(node.attrs.beta)
    return f"{x} * torch.sigmoid({beta} * {x})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    return [
        OpSample((x,), {"beta": 1.5}, name="fixed"),
        OpSample((x, np.array(0.7, dtype=np.float32)), params=frozenset({1}), name="learnable"),
    ]


class SwishConfig(BlockConfig):
    beta: float = Field(1.0, description="Slope of the gate; 1 gives SiLU.")
    learnable: bool = Field(False, description="Learn beta (a scalar parameter) instead.")


def _lower(ctx: BlockContext, config: SwishConfig, inputs: list[Value]) -> Value:
    if config.learnable:
        beta = ctx.param("beta", (), init.constant(config.beta))
        return ctx.op("example.swish", inputs[0], beta)
    return ctx.op("example.swish", inputs[0], beta=config.beta)


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [
        OpDef(
            "example.swish",
            _infer,
            _to_onnx,
            _to_torch,
            _samples,
            SwishAttrs,
            OpGroup.ELEMENTWISE,
            doc="x * sigmoid(beta * x)",
        )
    ]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [
        BlockType("swish", SwishConfig, _lower, "Swish activation x * sigmoid(beta x).", shorthand="beta")
    ]


@hookimpl
def dlc_templates() -> list[TemplateLibrary]:
    return [TemplateLibrary(Path(__file__).with_name("templates.yaml"))]
