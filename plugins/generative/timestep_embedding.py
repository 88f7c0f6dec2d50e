"""The sinusoidal timestep embedding of diffusion U-Nets (Ho et al. 2020, as diffusers'
``get_timestep_embedding``): ``[sin(t f), cos(t f)]`` with ``f_i = exp(-log(max_period) i /
(half - freq_shift))``, or ``[cos, sin]`` with `flip_sin_to_cos`.

The frequencies are a constant input equal, bit for bit, to the ones diffusers computes in
float32, so a diffusers checkpoint sees the same embedding; timesteps may be fractional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

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


class TimestepEmbeddingAttrs(OpAttrs):
    flip_sin_to_cos: bool = False  # cos first (diffusers' flag)


def timestep_frequencies(dim: int, freq_shift: float, max_period: float = 10000.0) -> np.ndarray:
    """float32[dim // 2]: diffusers' frequencies, bit for bit. The exponents are float32 as
    torch computes them; the exponential is taken in float64 and rounded to float32, which is
    what torch's float32 exp gives for DDPM's sizes. numpy's float32 exp is not correctly
    rounded: one ulp off for 5 of the 8 frequencies at dim 16 and 22 of 64 at dim 128. At
    t = 900 one ulp of a frequency moves the angle by up to 3e-5; with numpy's exp, a
    compiled 10-step DDIM sampler differed from diffusers' loop by 1.7e-4 instead of 7.6e-5
    (tests/plugins/generative/test_samplers.py)."""
    half = dim // 2
    exponent = np.float32(-math.log(max_period)) * np.arange(half, dtype=np.float32)
    return np.exp((exponent / np.float32(half - freq_shift)).astype(np.float64)).astype(np.float32)


def _infer(attrs: TimestepEmbeddingAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    timesteps, frequencies = inputs[0], inputs[1]
    require(
        timesteps is not None and frequencies is not None,
        "timestep_embedding needs timesteps and frequencies",
    )
    assert timesteps is not None and frequencies is not None
    require(timesteps.rank == 1, f"timestep_embedding: timesteps must be [N], got {timesteps}")
    require(
        frequencies.rank == 1 and frequencies.dtype is DType.float32,
        f"timestep_embedding: frequencies must be float32[dim / 2], got {frequencies}",
    )
    return TensorType(DType.float32, (timesteps.shape[0], 2 * frequencies.shape[0]))


def _onnx(b: OnnxBuilder, node: Node) -> None:
    timesteps, frequencies = node.inputs
    assert timesteps is not None and frequencies is not None
    steps = b.name(timesteps)
    if timesteps.type.dtype is not DType.float32:
        steps = b.op("Cast", [steps], to=DType.float32.onnx)[0]
    column = b.op("Unsqueeze", [steps, b.int64s([1], "axes")])[0]
    angles = b.op("Mul", [column, b.name(frequencies)])[0]  # [N, dim / 2]
    sines, cosines = b.op("Sin", [angles])[0], b.op("Cos", [angles])[0]
    halves = [cosines, sines] if node.attrs.flip_sin_to_cos else [sines, cosines]
    b.op("Concat", halves, b.outputs(node), axis=-1)


TIMESTEP_HELPER = '''
def timestep_embedding(timesteps: torch.Tensor, frequencies: torch.Tensor, flip_sin_to_cos: bool):
    """[N, dim] sinusoidal embedding of diffusion timesteps [N] (diffusers' Timesteps)."""
    angles = timesteps[:, None].float() * frequencies[None, :]  # [N, dim / 2]
    halves = [angles.cos(), angles.sin()] if flip_sin_to_cos else [angles.sin(), angles.cos()]
    return torch.cat(halves, dim=-1)
'''


def _torch(t: TorchWriter, node: Node) -> str:
    helper = t.helper("timestep_embedding", TIMESTEP_HELPER)
    timesteps, frequencies = node.inputs
    return f"{helper}({t.var(timesteps)}, {t.var(frequencies)}, {node.attrs.flip_sin_to_cos})"


def _samples() -> list[OpSample]:
    steps = np.array([0.0, 1.0, 17.0, 999.0], np.float32)
    frequencies = timestep_frequencies(16, 1.0)
    return [
        OpSample((steps, frequencies), name="sin-cos", tolerance=1e-4),
        OpSample((steps, frequencies), {"flip_sin_to_cos": True}, name="cos-sin", tolerance=1e-4),
    ]


OPS = [
    OpDef(
        "timestep_embedding",
        _infer,
        _onnx,
        _torch,
        _samples,
        TimestepEmbeddingAttrs,
        OpGroup.OTHER,
        doc="[N, dim] sinusoidal embedding of diffusion timesteps [N] (diffusers' Timesteps).",
    )
]


class TimestepEmbeddingConfig(BlockConfig):
    dim: int = Field(
        ge=2, le=65536, description="Embedding size (even): the U-Net's first width, 128 for DDPM."
    )
    flip_sin_to_cos: bool = Field(False, description="Put the cosines first (diffusers' flag).")
    freq_shift: float = Field(
        1.0, ge=0, description="Frequencies fall as i / (dim / 2 - freq_shift); DDPM: 1."
    )
    max_period: float = Field(10000.0, gt=1, description="The longest wavelength.")


def _block(ctx: BlockContext, config: TimestepEmbeddingConfig, inputs: list[Value]) -> Value:
    if config.dim % 2:
        raise ctx.error(f"needs an even `dim` for sin/cos pairs, got {config.dim}")
    if config.dim // 2 <= config.freq_shift:
        raise ctx.error(f"`freq_shift` {config.freq_shift:g} must be below dim / 2 = {config.dim // 2}")
    frequencies = timestep_frequencies(config.dim, config.freq_shift, config.max_period)
    return ctx.op(
        "timestep_embedding",
        inputs[0],
        ctx.constant(frequencies, "frequencies"),
        flip_sin_to_cos=config.flip_sin_to_cos,
    )


BLOCKS = [
    BlockType(
        "timestep_embedding",
        TimestepEmbeddingConfig,
        _block,
        "Sinusoidal embedding of diffusion timesteps [N] -> [N, dim], as diffusers' Timesteps; "
        "no parameters.",
        shorthand="dim",
    )
]
