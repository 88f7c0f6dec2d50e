"""Positions and inputs of Transformers: sinusoidal encodings, learned position tables,
BERT's token + segment + position embeddings, ViT's patch embedding and class token.

Sequence lengths stay symbolic: encodings are computed from the input's length at run
time (sinusoidal) or sliced from a table of `max_len` rows (learned), so one ONNX file
serves every length up to `max_len`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
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
    axis_in_range,
    init,
    product,
    require,
)

# -- sinusoidal_positions ------------------------------------------------------------------


class PositionsAttrs(OpAttrs):
    axis: int = 1  # the input's position (sequence) axis


def inverse_frequencies(dim: int, base: float) -> np.ndarray:
    """1 / base^(2i/dim) for i < dim/2 (Vaswani et al. 2017, section 3.5)."""
    exponents = np.arange(0, dim, 2, dtype=np.float64) / dim
    return np.reciprocal(np.power(base, exponents, out=exponents), out=exponents).astype(np.float32)


def _sinusoidal_infer(attrs: PositionsAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, frequencies = inputs[0], inputs[1]
    require(x is not None and frequencies is not None, "sinusoidal_positions needs an input and frequencies")
    assert x is not None and frequencies is not None
    axis = axis_in_range(attrs.axis, x.rank, "sinusoidal_positions")
    require(
        frequencies.rank == 1 and frequencies.dtype is DType.float32,
        f"sinusoidal_positions: frequencies must be float32[dim / 2], got {frequencies}",
    )
    return TensorType(DType.float32, (x.shape[axis], 2 * frequencies.shape[0]))


def _length(b: OnnxBuilder, node: Node) -> str:
    """The input's length along the position axis, as an int64 [1] tensor."""
    axis = axis_in_range(node.attrs.axis, node.inputs[0].type.rank, "positions")
    return b.op("Shape", [b.name(node.inputs[0])], start=axis, end=axis + 1)[0]


def _sinusoidal_onnx(b: OnnxBuilder, node: Node) -> None:
    length = b.op("Squeeze", [_length(b, node)])[0]
    zero, one = b.constant(np.array(0, np.int64), "zero"), b.constant(np.array(1, np.int64), "one")
    positions = b.op("Cast", [b.op("Range", [zero, length, one])[0]], to=DType.float32.onnx)[0]
    column = b.op("Unsqueeze", [positions, b.int64s([1], "axes")])[0]
    angles = b.op("Mul", [column, b.name(node.inputs[1])])[0]  # [T, dim / 2]
    axes = b.int64s([-1], "axes")
    sines = b.op("Unsqueeze", [b.op("Sin", [angles])[0], axes])[0]
    cosines = b.op("Unsqueeze", [b.op("Cos", [angles])[0], axes])[0]
    pairs = b.op("Concat", [sines, cosines], axis=-1)[0]  # [T, dim / 2, 2]
    dim = int(node.outputs[0].type.shape[1])
    b.op("Reshape", [pairs, b.int64s([-1, dim])], b.outputs(node))


SINUSOIDAL_HELPER = '''
def sinusoidal_positions(length: int, inverse_frequencies: torch.Tensor) -> torch.Tensor:
    """[length, dim] position encodings (Vaswani et al.): sin at even features, cos at odd."""
    positions = torch.arange(length, dtype=torch.float32, device=inverse_frequencies.device)
    angles = positions[:, None] * inverse_frequencies  # [length, dim / 2]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)
'''


def _sinusoidal_torch(t: TorchWriter, node: Node) -> str:
    helper = t.helper("sinusoidal_positions", SINUSOIDAL_HELPER)
    x, frequencies = node.inputs
    return f"{helper}({t.var(x)}.size({node.attrs.axis}), {t.var(frequencies)})"


def _sinusoidal_samples() -> list[OpSample]:
    x = np.zeros((2, 7, 3), np.float32)
    return [
        OpSample((x, inverse_frequencies(8, 10000.0)), symbols={0: {0: "N", 1: "T"}}, name="symbolic-length"),
        OpSample((x.transpose(1, 0, 2), inverse_frequencies(6, 100.0)), {"axis": 0}, name="axis0-base100"),
    ]


# -- position_embedding: the first T rows of a learned table ----------------------------------


def _rows_infer(attrs: PositionsAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, table = inputs[0], inputs[1]
    require(x is not None and table is not None, "position_embedding needs an input and a table")
    assert x is not None and table is not None
    axis = axis_in_range(attrs.axis, x.rank, "position_embedding")
    require(table.rank == 2, f"position_embedding: the table must be [max_len, dim], got {table}")
    length, rows = x.shape[axis], table.shape[0]
    require(
        not isinstance(length, int) or length <= rows,
        f"position_embedding: the input has {length} positions, the table only {rows}",
    )
    return TensorType(table.dtype, (length, table.shape[1]))


def _rows_onnx(b: OnnxBuilder, node: Node) -> None:
    start, axes = b.int64s([0], "starts"), b.int64s([0], "axes")
    b.op("Slice", [b.name(node.inputs[1]), start, _length(b, node), axes], b.outputs(node))


def _rows_torch(t: TorchWriter, node: Node) -> str:
    x, table = node.inputs
    rows, dim = table.type.shape
    length = f"{t.var(x)}.size({node.attrs.axis})"
    module = t.module(node, f"nn.Embedding({rows}, {dim})", {"weight": table})
    if module:
        return f"{module}(torch.arange({length}, device={t.var(x)}.device))"
    return f"{t.var(table)}[:{length}]"


def _rows_samples() -> list[OpSample]:
    rng = np.random.default_rng(61)
    x = rng.integers(0, 5, size=(2, 6)).astype(np.int64)
    table = rng.standard_normal((10, 4)).astype(np.float32)
    return [
        OpSample((x, table), params=frozenset({1}), symbols={0: {0: "N", 1: "T"}}, name="table-parameter"),
        OpSample((x, table), name="functional"),
    ]


# -- patch_embedding ------------------------------------------------------------------------


class PatchAttrs(OpAttrs):
    patch: int = Field(ge=1)


def _patch_infer(attrs: PatchAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight = inputs[0], inputs[1]
    require(x is not None and weight is not None, "patch_embedding needs an image and a weight")
    assert x is not None and weight is not None
    p = attrs.patch
    require(x.rank == 4 and x.dtype.is_float, f"patch_embedding expects images [N, C, H, W], got {x}")
    channels, height, width = x.shape[1:]
    require(
        all(isinstance(d, int) and d % p == 0 for d in (height, width)),
        f"patch_embedding: image size {height}x{width} must be static and divide into {p}x{p} patches",
    )
    require(
        weight.shape[1:] == (channels, p, p),
        f"patch_embedding weight must be [dim, {channels}, {p}, {p}], got {weight}",
    )
    bias = inputs[2] if len(inputs) > 2 else None
    if bias is not None:
        require(
            bias.shape == (weight.shape[0],), f"patch_embedding bias must be [{weight.shape[0]}], got {bias}"
        )
    patches = (int(height) // p) * (int(width) // p)
    return TensorType(x.dtype, (x.shape[0], patches, weight.shape[0]))


def _patch_macs(node: Node) -> Dim:
    return product(node.outputs[0].type.shape) * product(node.inputs[1].type.shape[1:])


def _patch_onnx(b: OnnxBuilder, node: Node) -> None:
    """Patches as rows, then one matmul: x[N, C, H/p, p, W/p, p] -> [N, H/p, W/p, C, p, p]
    -> [N, patches, C*p*p] @ W[dim, C*p*p]^T. The same sums as a p x p convolution of
    stride p, in the same (C, kh, kw) order."""
    p = node.attrs.patch
    x, weight, *rest = b.inputs(node)
    _, channels, height, width = (int(d) if isinstance(d, int) else 0 for d in node.inputs[0].type.shape)
    grid = b.op("Reshape", [x, b.int64s([0, channels, height // p, p, width // p, p])])[0]
    grid = b.op("Transpose", [grid], perm=[0, 2, 4, 1, 3, 5])[0]
    rows = b.op("Reshape", [grid, b.int64s([0, (height // p) * (width // p), channels * p * p])])[0]
    flat = b.op("Reshape", [weight, b.int64s([0, -1])])[0]
    projection = b.op("Transpose", [flat], perm=[1, 0])[0]  # folded by ONNX Runtime at load
    if rest and rest[0]:
        b.op("Add", [b.op("MatMul", [rows, projection])[0], rest[0]], b.outputs(node))
    else:
        b.op("MatMul", [rows, projection], b.outputs(node))


def _patch_torch(t: TorchWriter, node: Node) -> str:
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    p = node.attrs.patch
    dim, channels = weight.type.shape[:2]
    options = f"kernel_size={p}, stride={p}" + ("" if bias is not None else ", bias=False")
    module = t.module(node, f"nn.Conv2d({channels}, {dim}, {options})", {"weight": weight, "bias": bias})
    if module:
        conv = f"{module}({t.var(x)})"
    else:
        conv = f"F.conv2d({t.var(x)}, {t.var(weight)}, {t.var(bias)}, stride={p})"
    return f"{conv}.flatten(2).transpose(1, 2)"


def _patch_samples() -> list[OpSample]:
    rng = np.random.default_rng(62)
    image = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    weight = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    return [
        OpSample((image, weight, bias), {"patch": 4}, params=frozenset({1, 2}), name="module"),
        OpSample((image, weight), {"patch": 4}, name="functional-no-bias"),
    ]


OPS = [
    OpDef(
        "sinusoidal_positions",
        _sinusoidal_infer,
        _sinusoidal_onnx,
        _sinusoidal_torch,
        _sinusoidal_samples,
        PositionsAttrs,
        OpGroup.OTHER,
        doc="[T, dim] sin/cos position encodings for the input's length T.",
    ),
    OpDef(
        "position_embedding",
        _rows_infer,
        _rows_onnx,
        _rows_torch,
        _rows_samples,
        PositionsAttrs,
        OpGroup.MOVEMENT,
        doc="The first T rows of a learned [max_len, dim] table, T the input's length.",
    ),
    OpDef(
        "patch_embedding",
        _patch_infer,
        _patch_onnx,
        _patch_torch,
        _patch_samples,
        PatchAttrs,
        OpGroup.CONTRACTION,
        macs=_patch_macs,
        doc="Non-overlapping p x p patches projected to dim: [N, C, H, W] -> [N, HW/p^2, dim].",
    ),
]


# -- blocks ---------------------------------------------------------------------------------


def _features(ctx: BlockContext, x: Value) -> int:
    if x.type.rank != 3 or not isinstance(x.type.shape[-1], int):
        raise ctx.error(f"expects a sequence [N, T, dim] with a static dim, got {x.type}")
    return int(x.type.shape[-1])


class SinusoidalConfig(BlockConfig):
    base: float = Field(10000.0, gt=1, description="The wavelength base (10000 in the paper).")


def _sinusoidal_block(ctx: BlockContext, config: SinusoidalConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    dim = _features(ctx, x)
    if dim % 2:
        raise ctx.error(f"needs an even feature dim for sin/cos pairs, got {x.type}")
    frequencies = ctx.constant(inverse_frequencies(dim, config.base), "inverse_frequencies")
    return ctx.op("add", x, ctx.op("sinusoidal_positions", x, frequencies))


STD_DESCRIPTION = "Initial rows are N(0, std): 1 as torch's nn.Embedding; BERT, GPT-2 and ViT use 0.02."


class PositionalEmbeddingConfig(BlockConfig):
    max_len: int = Field(ge=1, description="Rows of the table: the longest sequence.")
    std: float = Field(1.0, gt=0, description=STD_DESCRIPTION)


def _learned_positions(ctx: BlockContext, x: Value, max_len: int, dim: int, std: float) -> Value:
    table = ctx.param("weight", (max_len, dim), init.normal(std))
    length = x.type.shape[1]
    if isinstance(length, int) and length > max_len:
        raise ctx.error(f"the input has {length} positions, more than max_len {max_len}")
    return ctx.op("position_embedding", x, table)


def _positional_block(ctx: BlockContext, config: PositionalEmbeddingConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    return ctx.op("add", x, _learned_positions(ctx, x, config.max_len, _features(ctx, x), config.std))


class BertEmbeddingsConfig(BlockConfig):
    vocab: int = Field(ge=1, description="Token vocabulary size.")
    dim: int = Field(ge=1, description="Hidden size.")
    max_len: int = Field(512, ge=1, description="Rows of the position table.")
    segments: int = Field(2, ge=1, description="Token types (segments).")
    padding_idx: int | None = Field(0, description="The padding token, whose row starts at zero.")
    eps: float = Field(1e-12, gt=0, description="LayerNorm epsilon.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout (training only).")
    std: float = Field(1.0, gt=0, description=STD_DESCRIPTION)


def _bert_embeddings(ctx: BlockContext, config: BertEmbeddingsConfig, inputs: list[Value]) -> Value:
    """HF BertEmbeddings: LayerNorm(word + token_type + position) and dropout, same names."""
    ids = inputs[0]
    if ids.type.rank != 2:
        raise ctx.error(f"expects token ids [N, T], got {ids.type}")
    words = ctx.block_call(
        "embedding",
        {"vocab": config.vocab, "dim": config.dim, "padding_idx": config.padding_idx, "std": config.std},
        [ids],
        name="word_embeddings",
    )
    segment = {"vocab": config.segments, "dim": config.dim, "std": config.std}
    if len(inputs) > 1:
        types = ctx.block_call("embedding", segment, [inputs[1]], name="token_type_embeddings")
    else:  # no token_type_ids: every token is of type 0, as in HF
        with ctx.sub_scope("token_type_embeddings"):
            table = ctx.param("weight", (config.segments, config.dim), init.normal(config.std))
        types = ctx.op("slice", table, axis=0, start=0, end=1)
    with ctx.sub_scope("position_embeddings"):
        positions = _learned_positions(ctx, ids, config.max_len, config.dim, config.std)
    total = ctx.op("add", ctx.op("add", words, types), positions)
    normed = ctx.block_call("layer_norm", {"eps": config.eps}, [total], name="LayerNorm")
    return ctx.block_call("dropout", {"p": config.dropout}, [normed], name="dropout")


class PatchEmbeddingConfig(BlockConfig):
    patch: int = Field(16, ge=1, description="Patch size p: non-overlapping p x p patches.")
    dim: int = Field(ge=1, description="Embedding width.")
    bias: bool = Field(True, description="Add a learned bias to each patch embedding.")


def _patch_block(ctx: BlockContext, config: PatchEmbeddingConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank != 4 or not isinstance(x.type.shape[1], int):
        raise ctx.error(f"expects images [N, C, H, W] with static channels, got {x.type}")
    fan_in = int(x.type.shape[1]) * config.patch * config.patch
    shape = (config.dim, int(x.type.shape[1]), config.patch, config.patch)
    weight = ctx.param("weight", shape, init.fan_in_uniform(fan_in))  # nn.Conv2d's default
    bias = ctx.param("bias", (config.dim,), init.fan_in_uniform(fan_in)) if config.bias else None
    return ctx.op("patch_embedding", x, weight, *([bias] if bias else []), patch=config.patch)


class NoOptions(BlockConfig):
    pass


def _class_token(ctx: BlockContext, config: NoOptions, inputs: list[Value]) -> Value:
    """Prepend a learned token (zeros at first, as torchvision's ViT): [N, T, dim] -> [N, T+1, dim].
    The token is named as the layer itself (`class_token`, not `class_token.weight`): a
    bare tensor, as in torchvision's, timm's and HF's state_dicts."""
    x = inputs[0]
    dim = _features(ctx, x)
    token = ctx.param("weight", (1, 1, dim), init.zeros(), key=ctx.name)
    batch = ctx.op("expand", token, x, shape=(x.type.shape[0], 1, dim))
    return ctx.op("concat", batch, x, axis=1)


BLOCKS = [
    BlockType(
        "sinusoidal_encoding",
        SinusoidalConfig,
        _sinusoidal_block,
        "Add sin/cos position encodings (Vaswani et al.) to [N, T, dim]; no parameters.",
    ),
    BlockType(
        "positional_embedding",
        PositionalEmbeddingConfig,
        _positional_block,
        "Add a learned position table (`weight` [max_len, dim]) to [N, T, dim].",
        shorthand="max_len",
    ),
    BlockType(
        "bert_embeddings",
        BertEmbeddingsConfig,
        _bert_embeddings,
        "LayerNorm(token + segment + position embeddings) as HF BertEmbeddings; "
        "`in: [input_ids]` or `[input_ids, token_type_ids]`.",
        inputs=(1, 2),
    ),
    BlockType(
        "patch_embedding",
        PatchEmbeddingConfig,
        _patch_block,
        "ViT patch embedding: [N, C, H, W] -> [N, patches, dim] (a p x p, stride p projection).",
    ),
    BlockType(
        "class_token",
        NoOptions,
        _class_token,
        "Prepend a learned class token (a tensor named as the layer): [N, T, dim] -> [N, T + 1, dim].",
    ),
]
