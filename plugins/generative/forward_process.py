"""The forward (noising) process of denoising diffusion as an op and a block:

    q_sample(x_0, t, eps) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps

with abar_t from the schedule (`dlc.diffusion.schedules`; the same numbers as the compiled
samplers and diffusers' schedulers). Training code in Python uses
`dlc.diffusion.q_sample_torch` (or `q_sample` on numpy arrays) directly.

    - q_sample: {schedule: linear, beta_start: 1.0e-4, beta_end: 0.02, train_steps: 1000}
      in: [x0, t, eps]                 # t: integer steps [N]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from dlc.diffusion.schedules import alphas_cumprod
from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    DType,
    Node,
    OnnxBuilder,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    require,
)


def _infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 4 and all(t is not None for t in inputs), "q_sample needs x_0, t, eps and abar")
    x0, t, eps, abar = inputs
    assert x0 is not None and t is not None and eps is not None and abar is not None
    require(x0.shape == eps.shape, f"q_sample: x_0 is {x0} but eps is {eps}; they must match")
    require(t.rank == 1, f"q_sample: t must be one step per sample, [N], got {t}")
    require(abar.rank == 1 and abar.dtype is DType.float32, f"q_sample: abar must be float32[T], got {abar}")
    return x0


def _onnx(b: OnnxBuilder, node: Node) -> None:
    x0, t, eps, abar = (b.name(v) for v in node.inputs)  # type: ignore[union-attr]
    steps = b.op("Cast", [t], to=DType.int64.onnx)[0]
    scale = b.op("Gather", [abar, steps], axis=0)[0]  # [N]
    rank = node.inputs[0].type.rank  # type: ignore[union-attr]
    scale = b.op("Unsqueeze", [scale, b.int64s(list(range(1, rank)), "axes")])[0]
    one = b.constant(np.array(1.0, np.float32), "one")
    signal = b.op("Mul", [b.op("Sqrt", [scale])[0], x0])[0]
    noise = b.op("Mul", [b.op("Sqrt", [b.op("Sub", [one, scale])[0]])[0], eps])[0]
    b.op("Add", [signal, noise], b.outputs(node))


Q_SAMPLE_HELPER = '''
def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: the forward (noising) process."""
    scale = abar[t.long()].reshape(-1, *([1] * (x0.dim() - 1)))  # [N, 1, ...]
    return scale.sqrt() * x0 + (1 - scale).sqrt() * eps
'''


def _torch(w: TorchWriter, node: Node) -> str:
    helper = w.helper("q_sample", Q_SAMPLE_HELPER)
    return f"{helper}({', '.join(w.var(v) for v in node.inputs)})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(15)
    x0 = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    eps = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    t = np.array([0, 499, 999], np.int64)
    abar = alphas_cumprod("linear", 1e-4, 0.02, 1000)
    return [OpSample((x0, t, eps, abar), symbolic_batch=False, name="linear-1000")]


OPS = [
    OpDef(
        "q_sample",
        _infer,
        _onnx,
        _torch,
        _samples,
        OpAttrs,
        OpGroup.ELEMENTWISE,
        doc="Diffusion's forward process: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t [N].",
    )
]


class QSampleConfig(BlockConfig):
    schedule: Literal["linear", "cosine"] = Field("linear", description="How beta_t grows over training.")
    beta_start: float = Field(1e-4, gt=0, lt=1, description="beta at the first step (linear).")
    beta_end: float = Field(0.02, gt=0, lt=1, description="beta at the last step (linear).")
    train_steps: int = Field(1000, ge=2, le=100_000, description="Training steps T; t lies in [0, T).")


def _block(ctx: BlockContext, config: QSampleConfig, inputs: list[Value]) -> Value:
    x0, t, eps = inputs
    abar = alphas_cumprod(config.schedule, config.beta_start, config.beta_end, config.train_steps)
    ctx.note_input_range(t, 0, config.train_steps)
    return ctx.op("q_sample", x0, t, eps, ctx.constant(abar, "alphas_cumprod"))


BLOCKS = [
    BlockType(
        "q_sample",
        QSampleConfig,
        _block,
        "Noise x_0 to step t: sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (`in: [x0, t, eps]`, t [N]).",
        inputs=(3, 3),
    )
]
