"""Rotary position embedding (Su et al. 2021, RoFormer): the `rotary_embedding` op and block.

Each head of ``x [N, T, heads * head_dim]`` has its first `dim` features rotated in pairs
by angles that grow with the position ``p``; the other ``head_dim - dim`` features pass
through (partial rotary, GPT-J and GPT-NeoX)::

    theta_i = p / base^(2i / dim)                      i < dim / 2
    (a, b) -> (a cos theta_i - b sin theta_i,  b cos theta_i + a sin theta_i)

Two layouts pair the features differently:

- rotate-half (HF Llama's ``rotate_half``, GPT-NeoX): ``a = x[i]``, ``b = x[i + dim/2]``;
- interleaved (GPT-J, the RoFormer paper): ``a = x[2i]``, ``b = x[2i + 1]``.

`llama3_scaling` stretches the low frequencies for long contexts as Llama 3.1 does (HF's
``rope_type: llama3``): wavelengths ``2 pi / theta_i`` longer than ``original / low`` are
divided by `factor`, those shorter than ``original / high`` kept, and those between blended
smoothly.

Positions are ``offset, offset + 1, ...`` along T, or an int64 input ``[T]`` or ``[N, T]``
(a KV cache's next positions, packed sequences). The inverse frequencies are computed as
HF's default RoPE computes them (float32): an ONNX constant, and in torch a few ops in the
helper, so neither the parameters nor the ejected module's state_dict hold anything
(HF keeps them in a non-persistent buffer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

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
    format_shape,
    require,
)


class RotaryAttrs(OpAttrs):
    head_dim: int = Field(ge=2)
    dim: int | None = Field(None, ge=2)  # rotated features per head; None: head_dim
    base: float = Field(10000.0, gt=0)
    interleaved: bool = False  # GPT-J's pairs (2i, 2i+1); default rotate-half (i, i + dim/2)
    offset: int = Field(0, ge=0)  # the first position, when no positions input is given
    # Llama 3.1's (factor, low_freq_factor, high_freq_factor, original_max_position)
    llama3_scaling: tuple[float, float, float, int] | None = None


class Llama3Scaling(BaseModel):
    """HF's ``rope_parameters`` of ``rope_type: llama3`` (Llama 3.1, 3.2: factor 32 or 8)."""

    model_config = ConfigDict(extra="forbid")
    factor: float = Field(gt=0, description="Divides the low frequencies (Llama 3.2: 32).")
    low_freq_factor: float = Field(1.0, gt=0)
    high_freq_factor: float = Field(4.0, gt=0)
    original_max_position: int = Field(8192, ge=1, description="HF: original_max_position_embeddings.")

    def as_tuple(self) -> tuple[float, float, float, int]:
        return (self.factor, self.low_freq_factor, self.high_freq_factor, self.original_max_position)


def llama3_rescaled(frequencies: np.ndarray, scaling: tuple[float, float, float, int]) -> np.ndarray:
    """HF's `_compute_llama3_parameters` on float32 frequencies, in float32."""
    factor, low, high, context = scaling
    wavelength = np.float32(2 * math.pi) / frequencies
    scaled = np.where(wavelength > context / low, frequencies / np.float32(factor), frequencies)
    smooth = (np.float32(context) / wavelength - np.float32(low)) / np.float32(high - low)
    smoothed = (1 - smooth) * scaled / np.float32(factor) + smooth * scaled
    medium = (wavelength >= context / high) & (wavelength <= context / low)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rotary_inverse_frequencies(dim: int, base: float) -> np.ndarray:
    """1 / base^(2i / dim), i < dim / 2, as HF's default RoPE computes it in torch (float32).

    The power is taken in float64 and rounded to float32, then inverted in float32: this
    matches torch's float32 `base ** x` bit for bit in all but a handful of cases (numpy's
    float32 power differs in the last bit for ~1 in 10 entries). The last bit matters: at
    position p an angle is off by p times it, 5e-4 on Llama logits at 2048 tokens.
    """
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    powers = np.power(np.float64(base), exponents.astype(np.float64)).astype(np.float32)
    return (np.float32(1.0) / powers).astype(np.float32)


def rotary_dim(attrs: RotaryAttrs) -> int:
    return attrs.dim if attrs.dim is not None else attrs.head_dim


def _infer(attrs: RotaryAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) in (1, 2), "rotary_embedding takes x and optional positions")
    x = inputs[0]
    require(x is not None, "rotary_embedding needs x")
    assert x is not None
    require(
        x.rank == 3 and x.dtype.is_float,
        f"rotary_embedding: x must be float [N, T, heads * head_dim], got {x}",
    )
    features = x.shape[2]
    require(
        isinstance(features, int) and features % attrs.head_dim == 0,
        f"rotary_embedding: {features} features do not split into heads of {attrs.head_dim}",
    )
    dim = rotary_dim(attrs)
    require(
        dim % 2 == 0 and dim <= attrs.head_dim,
        f"rotary_embedding: the rotary dim {dim} must be even and at most the head dim {attrs.head_dim}",
    )
    positions = inputs[1] if len(inputs) > 1 else None
    if positions is not None:
        require(
            positions.dtype in (DType.int64, DType.int32)
            and (positions.shape == x.shape[1:2] or positions.shape == x.shape[:2]),
            f"rotary_embedding: positions must be int64 [T] or [N, T] ({format_shape(x.shape[:2])}), "
            f"got {positions}",
        )
    return x


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    x = b.name(node.inputs[0])
    head_dim, dim = node.attrs.head_dim, rotary_dim(node.attrs)
    half = dim // 2
    inverse = rotary_inverse_frequencies(dim, node.attrs.base)
    if node.attrs.llama3_scaling is not None:
        inverse = llama3_rescaled(inverse, node.attrs.llama3_scaling)
    frequencies = b.constant(inverse, "inverse_frequencies")
    features = int(node.inputs[0].type.shape[2])
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        positions = b.name(node.inputs[1])  # [T] or [N, T]
    else:
        length = b.op("Shape", [x], start=1, end=2)[0]
        start = b.constant(np.array([node.attrs.offset], np.int64), "offset")
        end = b.op("Add", [start, length])[0]
        squeeze = [b.op("Squeeze", [v, b.int64s([0], "axes")])[0] for v in (start, end)]
        one = b.constant(np.array(1, np.int64), "one")
        positions = b.op("Range", [*squeeze, one])[0]  # [T]
    positions = b.op("Cast", [positions], to=DType.float32.onnx)[0]
    angles = b.op("Mul", [b.op("Unsqueeze", [positions, b.int64s([-1], "axes")])[0], frequencies])[0]
    # [(N,) T, dim/2] -> [(N,) T, 1, dim/2] (broadcast over heads), [(N,) T, 1, dim/2, 1] for
    # interleaved pairs (negative axes count in the output's rank)
    broadcast_axes = b.int64s([-3, -1] if node.attrs.interleaved else [-2], "axes")
    cos = b.op("Unsqueeze", [b.op("Cos", [angles])[0], broadcast_axes])[0]
    sin = b.op("Unsqueeze", [b.op("Sin", [angles])[0], broadcast_axes])[0]

    def features_slice(value: str, start: int, end: int) -> str:
        return b.op(
            "Slice", [value, b.int64s([start], "starts"), b.int64s([end], "ends"), b.int64s([-1], "axes")]
        )[0]

    heads = b.op("Reshape", [x, b.int64s([0, 0, -1, head_dim])])[0]  # [N, T, heads, head_dim]
    rotated = heads if dim == head_dim else features_slice(heads, 0, dim)
    if node.attrs.interleaved:
        rotated = b.op("Reshape", [rotated, b.int64s([0, 0, 0, half, 2])])[0]
        a, second = features_slice(rotated, 0, 1), features_slice(rotated, 1, 2)
    else:
        a, second = features_slice(rotated, 0, half), features_slice(rotated, half, dim)
    new_a = b.op("Sub", [b.op("Mul", [a, cos])[0], b.op("Mul", [second, sin])[0]])[0]
    new_b = b.op("Add", [b.op("Mul", [second, cos])[0], b.op("Mul", [a, sin])[0]])[0]
    result = b.op("Concat", [new_a, new_b], axis=-1)[0]
    if node.attrs.interleaved:
        result = b.op("Reshape", [result, b.int64s([0, 0, 0, dim])])[0]
    if dim < head_dim:
        result = b.op("Concat", [result, features_slice(heads, dim, head_dim)], axis=-1)[0]
    b.op("Reshape", [result, b.int64s([0, 0, features])], b.outputs(node))


ROTARY_HELPER = '''
def rotary_embedding(
    x: torch.Tensor,
    head_dim: int,
    dim: int | None = None,
    base: float = 10000.0,
    interleaved: bool = False,
    positions: torch.Tensor | None = None,
    offset: int = 0,
    llama3_scaling: tuple[float, float, float, int] | None = None,
) -> torch.Tensor:
    """Rotary position embedding of x [N, T, heads * head_dim]: the first `dim` features of
    each head are rotated in pairs, (i, i + dim / 2) as HF's rotate_half or (2i, 2i + 1)
    with `interleaved` (GPT-J), by position / base^(2i / dim); the rest pass through."""
    dim = dim or head_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=x.device).float() / dim
    inverse_frequencies = 1.0 / (base**exponents)  # as HF's default RoPE
    if llama3_scaling is not None:  # Llama 3.1's long-context rescaling (HF's rope_type llama3)
        factor, low, high, context = llama3_scaling
        wavelength = 2 * torch.pi / inverse_frequencies
        scaled = torch.where(wavelength > context / low, inverse_frequencies / factor, inverse_frequencies)
        smooth = (context / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelength >= context / high) & (wavelength <= context / low)
        inverse_frequencies = torch.where(medium, smoothed, scaled)
    if positions is None:
        positions = torch.arange(offset, offset + x.size(1), device=x.device)
    angles = positions.float()[..., None] * inverse_frequencies  # [(N,) T, dim / 2]
    cos, sin = angles.cos()[..., None, :], angles.sin()[..., None, :]  # one angle for every head
    heads = x.unflatten(-1, (-1, head_dim))  # [N, T, heads, head_dim]
    rotated, passed = heads[..., :dim], heads[..., dim:]
    if interleaved:
        a, b = rotated[..., 0::2], rotated[..., 1::2]
        rotated = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)
    else:
        a, b = rotated.chunk(2, dim=-1)
        rotated = torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
    return torch.cat([rotated, passed], dim=-1).flatten(-2)


torch.fx.wrap("rotary_embedding")  # one call in torch.fx graphs
'''


def _to_torch(t: TorchWriter, node: Node) -> str:
    helper = t.helper("rotary_embedding", ROTARY_HELPER)
    a = node.attrs
    args = [t.var(node.inputs[0]), f"head_dim={a.head_dim}"]
    if a.dim is not None and a.dim != a.head_dim:
        args.append(f"dim={a.dim}")
    if a.base != 10000.0:
        args.append(f"base={a.base!r}")
    if a.interleaved:
        args.append("interleaved=True")
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        args.append(f"positions={t.var(node.inputs[1])}")
    elif node.attrs.offset:
        args.append(f"offset={node.attrs.offset}")
    if a.llama3_scaling is not None:
        args.append(f"llama3_scaling={a.llama3_scaling!r}")
    return f"{helper}({', '.join(args)})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(64)
    x = rng.standard_normal((2, 5, 12)).astype(np.float32)
    positions = rng.integers(0, 50, (2, 5)).astype(np.int64)
    lengths = {0: {0: "N", 1: "T"}}
    return [
        OpSample((x,), {"head_dim": 6}, symbols=lengths, name="rotate-half"),
        OpSample(
            (x,),
            {"head_dim": 6, "dim": 4, "base": 500.0, "interleaved": True, "offset": 7},
            symbols=lengths,
            name="interleaved-partial-offset",
        ),
        OpSample(
            (x, positions),
            {"head_dim": 4, "dim": 2},
            symbols={**lengths, 1: {0: "N", 1: "T"}},
            name="partial-batch-positions",
        ),
        OpSample(
            (x, positions * 300),
            {"head_dim": 12, "base": 500000.0, "llama3_scaling": (32.0, 1.0, 4.0, 8192)},
            symbols={**lengths, 1: {0: "N", 1: "T"}},
            name="llama3-scaling",
        ),
        OpSample(
            (x, positions[0]),
            {"head_dim": 12, "interleaved": True, "base": 1e6},
            symbols={**lengths, 1: {0: "T"}},
            name="interleaved-positions",
        ),
    ]


OPS = [
    OpDef(
        "rotary_embedding",
        _infer,
        _to_onnx,
        _to_torch,
        _samples,
        RotaryAttrs,
        OpGroup.OTHER,  # pairs of features mix: not one output per input element
        doc="Rotary position embedding (RoPE) of [N, T, heads * head_dim], rotate-half or interleaved.",
    )
]


class RotaryConfig(BlockConfig):
    head_dim: int = Field(ge=2, description="Features per head; the input's features divide into heads.")
    dim: int | None = Field(
        None, ge=2, description="Rotated features per head (partial rotary: fewer); even; default head_dim."
    )
    base: float = Field(10000.0, gt=0, description="theta_i = position / base^(2i / dim) (HF: rope_theta).")
    interleaved: bool = Field(
        False, description="GPT-J's pairs (2i, 2i+1); default HF Llama's rotate-half (i, i + dim/2)."
    )
    offset: int = Field(0, ge=0, description="The first position when no positions input is given.")
    llama3_scaling: Llama3Scaling | None = Field(
        None, description="Llama 3.1's long-context frequency rescaling (HF's rope_type llama3)."
    )


def _rotary_block(ctx: BlockContext, config: RotaryConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    dim = config.dim if config.dim is not None else config.head_dim
    if dim % 2:
        raise ctx.error(f"the rotary dim {dim} must be even (features rotate in pairs)")
    if dim > config.head_dim:
        raise ctx.error(f"the rotary dim {dim} is larger than the head dim {config.head_dim}")
    features = x.type.shape[-1] if x.type.rank == 3 else None
    if not isinstance(features, int) or features % config.head_dim:
        raise ctx.error(
            f"takes [N, T, heads * head_dim] with head_dim {config.head_dim}, "
            f"got {format_shape(x.type.shape)}"
        )
    attrs = config.model_dump(exclude={"llama3_scaling"})
    scaling = config.llama3_scaling.as_tuple() if config.llama3_scaling is not None else None
    return ctx.op("rotary_embedding", x, *inputs[1:], **attrs, llama3_scaling=scaling)


BLOCKS = [
    BlockType(
        "rotary_embedding",
        RotaryConfig,
        _rotary_block,
        "Rotary position embedding (RoPE) of [N, T, heads * head_dim]; `in: [x]` or `[x, positions]`.",
        inputs=(1, 2),
        shorthand="head_dim",
    )
]
