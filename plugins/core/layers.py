"""Layers with weights: linear, embedding, layer norm and batch norm (ops and blocks).

Initialization follows torch's defaults: Linear ``U(-1/sqrt(in), 1/sqrt(in))`` for weight
and bias; Embedding ``N(0, 1)``; norms start at weight 1, bias 0, running var 1.
"""

from __future__ import annotations

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
    init,
    product,
    require,
)

# -- linear ------------------------------------------------------------------------------


def _linear_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    require(x is not None and weight is not None, "linear needs an input and a weight")
    assert x is not None and weight is not None
    require(x.dtype.is_float, f"linear expects a floating-point input, got {x}")
    require(x.rank >= 1, f"linear expects an input with at least one dim, got {x}")
    require(weight.rank == 2, f"linear weight must be 2-D, got {weight}")
    require(
        x.shape[-1] == weight.shape[1],
        f"linear: input features {x.shape[-1]} do not match the weight's {weight.shape[1]} "
        f"(input {x}, weight {weight})",
    )
    if bias is not None:
        require(bias.shape == (weight.shape[0],), f"linear bias must be [{weight.shape[0]}], got {bias}")
    return TensorType(x.dtype, (*x.shape[:-1], weight.shape[0]))


def _linear_macs(node: Node) -> object:
    return product(node.outputs[0].type.shape) * node.inputs[1].type.shape[1]


def _linear_onnx(b: OnnxBuilder, node: Node) -> None:
    x, weight, *rest = b.inputs(node)
    if node.inputs[0].type.rank == 2:
        b.op("Gemm", [x, weight, *rest], b.outputs(node), transB=1)
        return
    # N-D input: x @ W^T (+ b). ONNX Runtime folds the transpose of an initializer at load.
    transposed = b.op("Transpose", [weight], perm=[1, 0])[0]
    if rest and rest[0]:
        product_ = b.op("MatMul", [x, transposed])[0]
        b.op("Add", [product_, rest[0]], b.outputs(node))
    else:
        b.op("MatMul", [x, transposed], b.outputs(node))


def _linear_torch(t: TorchWriter, node: Node) -> str:
    x, weight = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out_features, in_features = weight.type.shape
    module = t.module(
        node,
        f"nn.Linear({in_features}, {out_features}{'' if bias is not None else ', bias=False'})",
        {"weight": weight, "bias": bias},
    )
    if module:
        return f"{module}({t.var(x)})"
    bias_arg = f", {t.var(bias)}" if bias is not None else ""
    return f"F.linear({t.var(x)}, {t.var(weight)}{bias_arg})"


def _linear_samples() -> list[OpSample]:
    rng = np.random.default_rng(1)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return [
        OpSample((arr(4, 6), arr(5, 6), arr(5)), params={1: "weight", 2: "bias"}, name="2d-module"),
        OpSample((arr(2, 3, 6), arr(5, 6), arr(5)), params={1: "weight", 2: "bias"}, name="3d-module"),
        OpSample((arr(4, 6), arr(5, 6)), name="2d-functional-no-bias"),
        OpSample((arr(2, 3, 6), arr(5, 6)), params={1: "weight"}, name="3d-no-bias"),
    ]


# -- embedding ---------------------------------------------------------------------------


class EmbeddingAttrs(OpAttrs):
    padding_idx: int | None = None


def _embedding_infer(attrs: EmbeddingAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    ids, weight = inputs[0], inputs[1]
    require(ids is not None and weight is not None, "embedding needs ids and a weight")
    assert ids is not None and weight is not None
    require(ids.dtype in (DType.int64, DType.int32), f"embedding expects integer ids, got {ids}")
    require(weight.rank == 2, f"embedding weight must be 2-D, got {weight}")
    return TensorType(weight.dtype, (*ids.shape, weight.shape[1]))


def _embedding_onnx(b: OnnxBuilder, node: Node) -> None:
    ids, weight = b.inputs(node)
    b.op("Gather", [weight, ids], b.outputs(node), axis=0)


def _embedding_torch(t: TorchWriter, node: Node) -> str:
    ids, weight = node.inputs
    count, dim = weight.type.shape
    padding = f", padding_idx={node.attrs.padding_idx}" if node.attrs.padding_idx is not None else ""
    module = t.module(node, f"nn.Embedding({count}, {dim}{padding})", {"weight": weight})
    if module:
        return f"{module}({t.var(ids)})"
    return f"F.embedding({t.var(ids)}, {t.var(weight)}{padding})"


def _embedding_samples() -> list[OpSample]:
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 11, size=(3, 5)).astype(np.int64)
    weight = rng.standard_normal((11, 4)).astype(np.float32)
    return [
        OpSample((ids, weight), params={1: "weight"}, name="module"),
        OpSample((ids, weight), name="functional"),
    ]


# -- layer norm --------------------------------------------------------------------------


class LayerNormAttrs(OpAttrs):
    dims: int = Field(1, ge=1, description="How many trailing dims are normalized.")
    eps: float = 1e-5


def _layer_norm_infer(attrs: LayerNormAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None, "layer_norm needs an input")
    assert x is not None
    require(x.dtype.is_float, f"layer_norm expects a floating-point input, got {x}")
    require(
        x.rank >= attrs.dims,
        f"layer_norm over {attrs.dims} dims needs rank >= {attrs.dims}, got {x}",
    )
    normalized = x.shape[-attrs.dims :]
    for param in inputs[1:]:
        if param is not None:
            require(
                param.shape == normalized,
                f"layer_norm weight/bias must be {list(normalized)}, got {param}",
            )
    return x


def _layer_norm_onnx(b: OnnxBuilder, node: Node) -> None:
    x, *params = b.inputs(node)
    scale = params[0] if params and params[0] else ""
    bias = params[1] if len(params) > 1 and params[1] else ""
    if not scale:  # ONNX requires a scale input
        shape = node.inputs[0].type.shape[-node.attrs.dims :]
        scale = b.constant(np.ones([int(d) for d in shape], dtype=np.float32), "ones")
    inputs = [x, scale, bias] if bias else [x, scale]
    b.op("LayerNormalization", inputs, b.outputs(node), axis=-node.attrs.dims, epsilon=node.attrs.eps)


def _layer_norm_torch(t: TorchWriter, node: Node) -> str:
    x = node.inputs[0]
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    shape = tuple(x.type.shape[-node.attrs.dims :])
    shape_text = str(shape[0]) if len(shape) == 1 else repr(tuple(int(d) for d in shape))
    affine = weight is not None
    ctor = f"nn.LayerNorm({shape_text}, eps={node.attrs.eps!r}"
    ctor += "" if affine else ", elementwise_affine=False"
    ctor += ", bias=False)" if affine and bias is None else ")"
    module = t.module(node, ctor, {"weight": weight, "bias": bias})
    if module:
        return f"{module}({t.var(x)})"
    args = [
        t.var(x),
        repr(tuple(int(d) for d in shape)),
        t.var(weight) if weight else "None",
        t.var(bias) if bias else "None",
        repr(node.attrs.eps),
    ]
    return f"F.layer_norm({', '.join(args)})"


def _layer_norm_samples() -> list[OpSample]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 6)).astype(np.float32)
    w = rng.standard_normal((6,)).astype(np.float32)
    b = rng.standard_normal((6,)).astype(np.float32)
    w2 = rng.standard_normal((4, 6)).astype(np.float32)
    return [
        OpSample((x, w, b), params={1: "weight", 2: "bias"}, name="affine-module"),
        OpSample((x, w, b), name="affine-functional"),
        OpSample((x,), name="no-affine"),
        OpSample((x, w2), {"dims": 2}, params={1: "weight"}, name="two-dims-no-bias"),
    ]


# -- batch norm --------------------------------------------------------------------------


class BatchNormAttrs(OpAttrs):
    eps: float = 1e-5
    momentum: float = 0.1


def _batch_norm_infer(attrs: BatchNormAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    require(x is not None and len(inputs) >= 5, "batch_norm needs input, weight, bias, mean and var")
    assert x is not None
    require(x.dtype.is_float, f"batch_norm expects a floating-point input, got {x}")
    require(x.rank >= 2, f"batch_norm normalizes over dim 1 and needs rank >= 2, got {x}")
    for param in inputs[1:5]:
        if param is not None:
            require(
                param.shape == (x.shape[1],),
                f"batch_norm statistics must be [{x.shape[1]}], got {param}",
            )
    return x


def _batch_norm_onnx(b: OnnxBuilder, node: Node) -> None:
    x, weight, bias, mean, var = b.inputs(node)[:5]
    channels = int(node.inputs[0].type.shape[1])
    weight = weight or b.constant(np.ones(channels, np.float32), "ones")
    bias = bias or b.constant(np.zeros(channels, np.float32), "zeros")
    b.op("BatchNormalization", [x, weight, bias, mean, var], b.outputs(node), epsilon=node.attrs.eps)


def _batch_norm_torch(t: TorchWriter, node: Node) -> str:
    x, weight, bias, mean, var = node.inputs[:5]
    tracked = node.inputs[5] if len(node.inputs) > 5 else None
    rank = x.type.rank
    kind = "1d" if rank <= 3 else f"{rank - 2}d"
    channels = x.type.shape[1]
    options = f"eps={node.attrs.eps!r}, momentum={node.attrs.momentum!r}"
    if weight is None:
        options += ", affine=False"
    params = {"weight": weight, "bias": bias, "running_mean": mean, "running_var": var}
    if tracked is not None:
        params["num_batches_tracked"] = tracked
    module = t.module(node, f"nn.BatchNorm{kind}({channels}, {options})", params)
    if module:
        return f"{module}({t.var(x)})"
    w = t.var(weight) if weight is not None else "None"
    b = t.var(bias) if bias is not None else "None"
    return f"F.batch_norm({t.var(x)}, {t.var(mean)}, {t.var(var)}, {w}, {b}, False, 0.0, {node.attrs.eps!r})"


def _batch_norm_samples() -> list[OpSample]:
    rng = np.random.default_rng(4)

    def stats(c: int) -> tuple[np.ndarray, ...]:
        return (
            rng.standard_normal(c).astype(np.float32),
            rng.standard_normal(c).astype(np.float32),
            rng.standard_normal(c).astype(np.float32),
            rng.uniform(0.5, 2.0, c).astype(np.float32),
        )

    x2 = rng.standard_normal((5, 3)).astype(np.float32)
    x4 = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tracked = np.array(0, dtype=np.int64)
    return [
        OpSample(
            (x2, *stats(3), tracked),
            params={1: "weight", 2: "bias", 3: "running_mean", 4: "running_var", 5: "num_batches_tracked"},
            name="features-module",
        ),
        OpSample(
            (x4, *stats(3), tracked),
            params={1: "weight", 2: "bias", 3: "running_mean", 4: "running_var", 5: "num_batches_tracked"},
            name="channels-module",
        ),
        OpSample((x4, *stats(3)), name="functional"),
    ]


OPS = [
    OpDef(
        "linear",
        _linear_infer,
        _linear_onnx,
        _linear_torch,
        _linear_samples,
        group=OpGroup.CONTRACTION,
        macs=_linear_macs,
        doc="x @ W^T + b",
    ),
    OpDef(
        "embedding",
        _embedding_infer,
        _embedding_onnx,
        _embedding_torch,
        _embedding_samples,
        EmbeddingAttrs,
        OpGroup.MOVEMENT,
        doc="Rows of the weight table indexed by integer ids.",
    ),
    OpDef(
        "layer_norm",
        _layer_norm_infer,
        _layer_norm_onnx,
        _layer_norm_torch,
        _layer_norm_samples,
        LayerNormAttrs,
        OpGroup.NORMALIZATION,
        doc="Normalize over the trailing dims, then scale and shift.",
    ),
    OpDef(
        "batch_norm",
        _batch_norm_infer,
        _batch_norm_onnx,
        _batch_norm_torch,
        _batch_norm_samples,
        BatchNormAttrs,
        OpGroup.NORMALIZATION,
        doc="Inference batch norm over dim 1: (x - mean) / sqrt(var + eps) * weight + bias.",
    ),
]


# -- blocks ------------------------------------------------------------------------------


TIE_DESCRIPTION = (
    "Use the weight of an earlier layer instead of a new one (weight tying): a layer id such "
    "as `wte`, or a parameter name such as `wte.weight`. One tensor, shared."
)


class LinearConfig(BlockConfig):
    out: int = Field(ge=1, description="Output features; input features are inferred.")
    bias: bool = Field(True, description="Add a learned bias.")
    tie: str | None = Field(None, description=TIE_DESCRIPTION)


def _linear_block(ctx: BlockContext, config: LinearConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < 1:
        raise ctx.error(f"needs an input with a feature dim, got {x.type}")
    features = x.type.shape[-1]
    if not isinstance(features, int):
        raise ctx.error(f"the input's feature dim must be static, got {x.type}")
    weight = ctx.param("weight", (config.out, features), init.fan_in_uniform(features), tie=config.tie)
    bias = ctx.param("bias", (config.out,), init.fan_in_uniform(features)) if config.bias else None
    return ctx.op("linear", x, weight, *([bias] if bias is not None else []))


class EmbeddingConfig(BlockConfig):
    vocab: int = Field(ge=1, description="Number of rows (distinct ids).")
    dim: int = Field(ge=1, description="Size of each embedding vector.")
    padding_idx: int | None = Field(None, description="An id whose row starts at zero.")
    std: float = Field(
        1.0,
        gt=0,
        description="Initial rows are N(0, std): 1 as torch's nn.Embedding; GPT-2 and BERT use 0.02, "
        "Transformers that scale by sqrt(dim) use dim ** -0.5.",
    )
    tie: str | None = Field(None, description=TIE_DESCRIPTION)


def _embedding_block(ctx: BlockContext, config: EmbeddingConfig, inputs: list[Value]) -> Value:
    ids = inputs[0]
    if ids.type.dtype not in (DType.int64, DType.int32):
        raise ctx.error(f"expects integer ids (dtype int64), got {ids.type}")
    if config.padding_idx is not None and not 0 <= config.padding_idx < config.vocab:
        raise ctx.error(f"padding_idx {config.padding_idx} is outside [0, {config.vocab})")
    weight_init = init.normal(config.std, zero_row=config.padding_idx)  # torch zeroes the padding row
    weight = ctx.param("weight", (config.vocab, config.dim), weight_init, tie=config.tie)
    ctx.note_input_range(ids, 0, config.vocab)
    return ctx.op("embedding", ids, weight, padding_idx=config.padding_idx)


class LayerNormConfig(BlockConfig):
    dims: int = Field(1, ge=1, description="How many trailing dims to normalize over.")
    eps: float = Field(1e-5, gt=0, description="Added to the variance before the square root.")
    affine: bool = Field(True, description="Learn a per-element weight (and bias).")
    bias: bool = Field(True, description="With affine: also learn a bias.")


def _layer_norm_block(ctx: BlockContext, config: LayerNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < config.dims:
        raise ctx.error(f"normalizing {config.dims} trailing dims needs rank >= {config.dims}, got {x.type}")
    shape = x.type.shape[-config.dims :]
    if not all(isinstance(d, int) for d in shape):
        raise ctx.error(f"the normalized dims must be static, got {x.type}")
    params: list[Value] = []
    if config.affine:
        params.append(ctx.param("weight", shape, init.ones()))
        if config.bias:
            params.append(ctx.param("bias", shape, init.zeros()))
    return ctx.op("layer_norm", x, *params, dims=config.dims, eps=config.eps)


class BatchNormConfig(BlockConfig):
    eps: float = Field(1e-5, gt=0, description="Added to the variance before the square root.")
    momentum: float = Field(0.1, ge=0, le=1, description="Running-statistics momentum (training only).")
    affine: bool = Field(True, description="Learn a per-channel weight and bias.")


def _batch_norm_block(ctx: BlockContext, config: BatchNormConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    if x.type.rank < 2:
        raise ctx.error(f"normalizes over dim 1 (features or channels) and needs rank >= 2, got {x.type}")
    channels = x.type.shape[1]
    if not isinstance(channels, int):
        raise ctx.error(f"dim 1 (features or channels) must be static, got {x.type}")
    weight = ctx.param("weight", (channels,), init.ones()) if config.affine else None
    bias = ctx.param("bias", (channels,), init.zeros()) if config.affine else None
    mean = ctx.param("running_mean", (channels,), init.zeros(), trainable=False)
    var = ctx.param("running_var", (channels,), init.ones(), trainable=False)
    tracked = ctx.param("num_batches_tracked", (), init.zeros(), dtype=DType.int64, trainable=False)
    return ctx.op("batch_norm", x, weight, bias, mean, var, tracked, eps=config.eps, momentum=config.momentum)


BLOCKS = [
    BlockType(
        "linear",
        LinearConfig,
        _linear_block,
        "Fully connected layer: x @ W^T + b.",
        shorthand="out",
    ),
    BlockType("embedding", EmbeddingConfig, _embedding_block, "Lookup table from integer ids to vectors."),
    BlockType("layer_norm", LayerNormConfig, _layer_norm_block, "Layer normalization over trailing dims."),
    BlockType(
        "batch_norm",
        BatchNormConfig,
        _batch_norm_block,
        "Batch normalization over dim 1 (features of [N, F] or channels of [N, C, ...]).",
    ),
]
