"""Rotary position embedding (Su et al. 2021, RoFormer): the `rotary_embedding` op and block.

Each head of ``x [N, T, heads * head_dim]`` has its first `dim` features rotated in pairs
by angles that grow with the position ``p``; the other ``head_dim - dim`` features pass
through (partial rotary, GPT-J and GPT-NeoX)::

    theta_i = p / base^(2i / dim)                      i < dim / 2
    (a, b) -> (a cos theta_i - b sin theta_i,  b cos theta_i + a sin theta_i)

Two layouts pair the features differently:

- rotate-half (HF Llama's ``rotate_half``, GPT-NeoX): ``a = x[i]``, ``b = x[i + dim/2]``;
- interleaved (GPT-J, the RoFormer paper): ``a = x[2i]``, ``b = x[2i + 1]``.

Positions are ``offset, offset + 1, ...`` along T, or an int64 input ``[T]`` or ``[N, T]``
(a KV cache's next positions, packed sequences). The inverse frequencies are a constant
input computed as HF computes them (float32), so nothing is stored as a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

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
    interleaved: bool = False  # GPT-J's pairs (2i, 2i+1); default rotate-half (i, i + dim/2)
    offset: int = Field(0, ge=0)  # the first position, when no positions input is given


def rotary_inverse_frequencies(dim: int, base: float) -> np.ndarray:
    """1 / base^(2i / dim), i < dim / 2, in float32 arithmetic as HF's default RoPE init."""
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    return (np.float32(1.0) / np.power(np.float32(base), exponents)).astype(np.float32)


def _infer(attrs: RotaryAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) in (2, 3), "rotary_embedding takes x, inverse frequencies and optional positions")
    x, frequencies = inputs[0], inputs[1]
    require(x is not None and frequencies is not None, "rotary_embedding needs x and inverse frequencies")
    assert x is not None and frequencies is not None
    require(
        x.rank == 3 and x.dtype.is_float,
        f"rotary_embedding: x must be float [N, T, heads * head_dim], got {x}",
    )
    features = x.shape[2]
    require(
        isinstance(features, int) and features % attrs.head_dim == 0,
        f"rotary_embedding: {features} features do not split into heads of {attrs.head_dim}",
    )
    require(
        frequencies.rank == 1
        and frequencies.dtype is DType.float32
        and isinstance(frequencies.shape[0], int),
        f"rotary_embedding: inverse frequencies must be float32[dim / 2], got {frequencies}",
    )
    dim = 2 * int(frequencies.shape[0])
    require(
        0 < dim <= attrs.head_dim,
        f"rotary_embedding: the rotary dim {dim} must be between 2 and the head dim {attrs.head_dim}",
    )
    positions = inputs[2] if len(inputs) > 2 else None
    if positions is not None:
        require(
            positions.dtype in (DType.int64, DType.int32)
            and (positions.shape == x.shape[1:2] or positions.shape == x.shape[:2]),
            f"rotary_embedding: positions must be int64 [T] or [N, T] ({format_shape(x.shape[:2])}), "
            f"got {positions}",
        )
    return x


def _to_onnx(b: OnnxBuilder, node: Node) -> None:
    x, frequencies = b.name(node.inputs[0]), b.name(node.inputs[1])
    head_dim = node.attrs.head_dim
    half = int(node.inputs[1].type.shape[0])
    dim = 2 * half
    features = int(node.inputs[0].type.shape[2])
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        positions = b.name(node.inputs[2])  # [T] or [N, T]
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
    inverse_frequencies: torch.Tensor,
    head_dim: int,
    interleaved: bool = False,
    positions: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """Rotary position embedding of x [N, T, heads * head_dim]: the first
    2 * len(inverse_frequencies) features of each head are rotated in pairs, (i, i + dim / 2)
    as HF's rotate_half or (2i, 2i + 1) with `interleaved` (GPT-J); the rest pass through."""
    dim = 2 * inverse_frequencies.numel()
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
    args = [t.var(node.inputs[0]), t.var(node.inputs[1]), f"head_dim={node.attrs.head_dim}"]
    if node.attrs.interleaved:
        args.append("interleaved=True")
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        args.append(f"positions={t.var(node.inputs[2])}")
    elif node.attrs.offset:
        args.append(f"offset={node.attrs.offset}")
    return f"{helper}({', '.join(args)})"


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(64)
    x = rng.standard_normal((2, 5, 12)).astype(np.float32)
    positions = rng.integers(0, 50, (2, 5)).astype(np.int64)
    lengths = {0: {0: "N", 1: "T"}}
    return [
        OpSample(
            (x, rotary_inverse_frequencies(6, 10000.0)), {"head_dim": 6}, symbols=lengths, name="rotate-half"
        ),
        OpSample(
            (x, rotary_inverse_frequencies(4, 500.0)),
            {"head_dim": 6, "interleaved": True, "offset": 7},
            symbols=lengths,
            name="interleaved-partial-offset",
        ),
        OpSample(
            (x, rotary_inverse_frequencies(2, 10000.0), positions),
            {"head_dim": 4},
            symbols={**lengths, 2: {0: "N", 1: "T"}},
            name="partial-batch-positions",
        ),
        OpSample(
            (x, rotary_inverse_frequencies(12, 10000.0), positions[0]),
            {"head_dim": 12, "interleaved": True},
            symbols={**lengths, 2: {0: "T"}},
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
    frequencies = ctx.constant(rotary_inverse_frequencies(dim, config.base), "inverse_frequencies")
    attrs = {"head_dim": config.head_dim, "interleaved": config.interleaved, "offset": config.offset}
    return ctx.op("rotary_embedding", x, frequencies, *inputs[1:], **attrs)


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
