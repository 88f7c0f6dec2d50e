"""Spectral graph convolution (Bruna et al. 2014), in the course's form: the convolution
theorem with the graph Fourier transform, ``x * g = U((U^T x) ⊙ θ)``, U the eigenvectors of
the graph Laplacian and θ a learned filter over the frequencies (op and block).

U [V, K] is a model input (K eigenvectors, usually the K lowest frequencies), computed
once per graph with ``dlc.geometric.laplacian_eigenbasis``; V stays symbolic, K is fixed
by the filter's shape. The filter acts on each feature channel separately: θ [K, F],
``y[:, f] = U diag(θ[:, f]) U^T x[:, f]``. The block adds an optional feature transform
first (``lin``: a bias-free linear to `out` features, as GCN's X W) and a bias after:

    X' = U((U^T X W) ⊙ θ) + b

θ starts at 1: the filter then projects onto the kept frequencies (with all V of them,
the identity). The two products are counted as MACs (2 V K F); they grow with V.
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
    init,
    product,
    require,
)


def spectral_shape_problem(x: TensorType, eigenbasis: TensorType) -> str | None:
    """Why node features `x` [V, F] and an `eigenbasis` [V, K] do not fit together (or,
    batched, [N, V, F] and [N, V, K]), or None."""
    if x.rank not in (2, 3):
        return f"expects node features [V, F] (or [N, V, F]), got {format_shape(x.shape)}"
    if eigenbasis.rank != x.rank:
        return (
            f"the eigenbasis {format_shape(eigenbasis.shape)} must be [V, K] with x {format_shape(x.shape)} "
            f"(rank {x.rank}, one column per kept eigenvector)"
        )
    if eigenbasis.shape[:-1] != x.shape[:-1]:
        return (
            f"the eigenbasis {format_shape(eigenbasis.shape)} must have one row per node of x "
            f"{format_shape(x.shape)}: expected {format_shape((*x.shape[:-1], 'K'))}"
        )
    if not isinstance(eigenbasis.shape[-1], int):
        shape = format_shape(eigenbasis.shape)
        return f"the eigenbasis {shape} needs a static K (its last dim): the filter has K rows"
    if not (x.dtype.is_float and eigenbasis.dtype == x.dtype):
        return f"expects floating-point x and eigenbasis of one dtype, got {x} and {eigenbasis}"
    return None


def _spectral_infer(attrs: OpAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 3 and all(t is not None for t in inputs), "spectral_conv needs x, U and θ")
    x, eigenbasis, theta = inputs
    assert x is not None and eigenbasis is not None and theta is not None
    problem = spectral_shape_problem(x, eigenbasis)
    require(problem is None, f"spectral_conv {problem}")
    expected = (eigenbasis.shape[-1], x.shape[-1])
    require(theta.shape == expected, f"spectral_conv filter must be {format_shape(expected)}, got {theta}")
    return x


def _spectral_macs(node: Node) -> Dim:
    x, eigenbasis = node.inputs[0].type, node.inputs[1].type
    return 2 * product(x.shape) * eigenbasis.shape[-1]  # U^T x, then U times the filtered spectrum


def _spectral_onnx(b: OnnxBuilder, node: Node) -> None:
    x, eigenbasis, theta = b.inputs(node)
    rank = node.inputs[0].type.rank
    perm = [0, 2, 1] if rank == 3 else [1, 0]
    spectrum = b.op("MatMul", [b.op("Transpose", [eigenbasis], perm=perm)[0], x])[0]  # U^T x: [K, F]
    filtered = b.op("Mul", [spectrum, theta])[0]
    b.op("MatMul", [eigenbasis, filtered], b.outputs(node))


def _spectral_torch(t: TorchWriter, node: Node) -> str:
    x, eigenbasis, theta = (t.var(v) for v in node.inputs)
    return f"{eigenbasis} @ (({eigenbasis}.transpose(-2, -1) @ {x}) * {theta})"


def _spectral_samples() -> list[OpSample]:
    rng = np.random.default_rng(1403)
    nodes, k, features = 7, 4, 3
    eigenbasis = np.linalg.qr(rng.standard_normal((nodes, nodes)))[0][:, :k].astype(np.float32)
    x = rng.standard_normal((nodes, features)).astype(np.float32)
    theta = rng.standard_normal((k, features)).astype(np.float32)
    batched_basis = np.stack([eigenbasis, eigenbasis[::-1]])
    batched_x = rng.standard_normal((2, nodes, features)).astype(np.float32)
    return [
        OpSample(
            (x, eigenbasis, theta), params={2: "theta"}, symbols={0: {0: "V"}, 1: {0: "V"}}, name="graph"
        ),
        OpSample(
            (batched_x, batched_basis, theta),
            params={2: "theta"},
            symbols={0: {0: "N", 1: "V"}, 1: {0: "N", 1: "V"}},
            name="batched",
        ),
    ]


OPS = [
    OpDef(
        "spectral_conv",
        _spectral_infer,
        _spectral_onnx,
        _spectral_torch,
        _spectral_samples,
        group=OpGroup.CONTRACTION,
        macs=_spectral_macs,
        doc="U((U^T x) ⊙ θ): a learned filter θ [K, F] on the graph Fourier transform of x [V, F].",
    ),
]


# -- block -------------------------------------------------------------------------------


class SpectralConvConfig(BlockConfig):
    out: int | None = Field(
        None,
        ge=1,
        description="Output features: a bias-free linear `lin` to `out` runs first (X W); "
        "omitted: the input's features are filtered as they are.",
    )
    bias: bool = Field(True, description="Add a learned bias [out] after the filter.")


def _spectral_block(ctx: BlockContext, config: SpectralConvConfig, inputs: list[Value]) -> Value:
    x, eigenbasis = inputs
    problem = spectral_shape_problem(x.type, eigenbasis.type)
    if problem is not None:
        raise ctx.error(problem)
    features = x.type.shape[-1]
    if not isinstance(features, int):
        raise ctx.error(f"the node features' last dim must be static, got {ctx.describe(x)}")
    if config.out is not None:
        with ctx.sub_scope("lin"):
            weight = ctx.param("weight", (config.out, features), init.fan_in_uniform(features))
            x = ctx.op("linear", x, weight)
        features = config.out
    k = int(eigenbasis.type.shape[-1])
    theta = ctx.param("theta", (k, features), init.ones())
    y = ctx.op("spectral_conv", x, eigenbasis, theta)
    if not config.bias:
        return y
    return ctx.op("add", y, ctx.param("bias", (features,), init.zeros()))


BLOCKS = [
    BlockType(
        "spectral_conv",
        SpectralConvConfig,
        _spectral_block,
        "Spectral graph convolution U((U^T X W) ⊙ θ) + b: `in: [x, eigenbasis]`, node features [V, F] and "
        "Laplacian eigenvectors [V, K] (dlc.geometric.laplacian_eigenbasis); θ [K, out] is learned",
        inputs=(2, 2),
        shorthand="out",
    ),
]
