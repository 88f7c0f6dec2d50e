"""Fold inference batch norm, and per-channel `mul` / `add` by weight tensors, into the
conv, transposed conv or linear layer whose output they read.

At inference batch norm is a per-channel affine map ``y = s * x + t`` with

    s = gamma / sqrt(var + eps),   t = beta - mean * s

and a layer is linear in its weights, so for every output channel c

    W'[c] = W[c] * s[c],   b'[c] = (b[c] - mean[c]) * s[c] + beta[c]   (b = 0 without bias)

A `mul` by a per-channel tensor is the same map with t = 0 (``b' = b * s``), an `add` the
one with s = 1 (``b' = b + t``). Output channel c is row c of a conv weight
``[C_out, C_in / g, *K]`` or of a linear weight ``[F_out, F_in]``; a transposed conv's weight
is ``[C_in, C_out / g, *K]``, where column j of the rows of group k is output channel
``k * C_out / g + j``.

The folded tensors keep the layer's parameter names (``conv1.weight``; a layer without a
bias gains ``conv1.bias``), so the -O2 weights still load by name. A fold is declined when
the layer's output has other users (they need the values before the norm), when its
weights are shared or computed, when the norm's statistics are not weights, or when the
affine is not one value per output channel.
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, PassContext, format_shape, init

from .conv_rewriting import LAYER_OPS, LayerWeights, bias_of, describe, erase_if_unused, has_other_users


def channel_axis(layer: Node) -> int:
    """The output axis that holds a layer's output channels (features for linear)."""
    return layer.output.type.rank - 1 if layer.op == "linear" else 1


def scale_output_channels(
    layer: Node, weight: np.ndarray, scale: np.ndarray, dtype: np.dtype | None = None
) -> np.ndarray:
    """`weight` with every output channel c multiplied by ``scale[c]``: each product in
    float64, rounded once to `dtype` (default float64). The product goes straight into the
    result, so a float32 weight is never copied to float64 first (the same values as
    ``(weight.astype(float64) * s).astype(dtype)``, at a third of the memory traffic)."""
    if layer.op != "conv_transpose":
        factors = scale.reshape(-1, *(1,) * (weight.ndim - 1))
    else:
        groups = layer.attrs.groups
        in_channels, group_out = weight.shape[:2]
        per_row = np.repeat(scale.reshape(groups, group_out), in_channels // groups, axis=0)
        factors = per_row.reshape(in_channels, group_out, *(1,) * (weight.ndim - 2))
    result = np.empty(weight.shape, dtype=dtype or np.float64)
    return np.multiply(weight, factors, out=result, dtype=np.float64, casting="unsafe")


def batch_norm_affine(weights: LayerWeights, graph: Graph, norm: Node) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as per-channel (s, t) of ``s * x + t``."""
    gamma, beta, mean, var = (
        None if v is None else weights.array(graph, v).astype(np.float64) for v in norm.inputs[1:5]
    )
    scale = 1.0 / np.sqrt(var + norm.attrs.eps) * (1.0 if gamma is None else gamma)
    return scale, (0.0 if beta is None else beta) - mean * scale


def fold_affine(
    weights: LayerWeights, graph: Graph, layer: Node, scale: np.ndarray, shift: np.ndarray
) -> None:
    """Make `layer` compute ``scale * layer(x) + shift`` per output channel.

    The folded weight is computed when it is first read, normally by the file writer, whose
    threads draw and scale many weights at once while the model is written (ResNet-50's 53
    folds drew and scaled 23M values here, one weight after another); a parameter's data is
    read as it is now, so later rewrites do not change what is folded."""
    weight_value = layer.inputs[1]
    bias_value = bias_of(layer)
    bias = np.zeros_like(scale) if bias_value is None else weights.array(graph, bias_value).astype(np.float64)
    dtype = weight_value.type.dtype.numpy
    drawn = weights.array_later(graph, weight_value)  # as drawn: scaled without a float64 copy
    shape = [int(d) for d in weight_value.type.shape]
    folded: np.ndarray | init.Init = init.deferred_data(
        lambda: scale_output_channels(layer, drawn(), scale, dtype), dtype, shape
    )
    if graph.producer(weight_value).op != "parameter":  # a constant weight: its data is at hand
        folded = scale_output_channels(layer, drawn(), scale, dtype)
    weights.write(graph, layer, folded, bias * scale + shift)


class FoldBatchNorm:
    """batch_norm(layer(x)) -> layer'(x)."""

    name = "fold-batch-norm"

    def __init__(self, weights: LayerWeights) -> None:
        self.weights = weights

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "batch_norm":
            return None
        layer = graph.producer(node.inputs[0])
        return Match({"layer": layer, "norm": node}) if layer.op in LAYER_OPS else None

    def check(self, graph: Graph, match: Match) -> str | None:
        layer, norm = match["layer"], match["norm"]
        if has_other_users(graph, layer.output, norm):
            return f"the output of {describe(layer)} has other users"
        if layer.op == "linear" and layer.output.type.rank != 2:
            return (
                f"batch norm normalizes dim 1 of {format_shape(layer.output.type.shape)}, "
                "not the linear layer's features"
            )
        if not self.weights.known(graph, norm.inputs[1:5]):
            return "the batch norm's statistics are computed, not weights"
        return self.weights.unfoldable(graph, layer)

    def rewrite(self, graph: Graph, match: Match) -> None:
        layer, norm = match["layer"], match["norm"]
        fold_affine(self.weights, graph, layer, *batch_norm_affine(self.weights, graph, norm))
        graph.replace_all_uses(norm.output, layer.output)
        graph.erase(norm)
        erase_if_unused(graph, norm.inputs[1:])


class FoldChannelAffine:
    """mul(layer(x), s) -> layer'(x), and add(layer(x), t) -> layer'(x), for weight tensors
    s and t holding one value per output channel (or one value in all)."""

    def __init__(self, op: str, weights: LayerWeights) -> None:
        self.op = op
        self.name = f"fold-channel-{op}"
        self.weights = weights

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != self.op or len(node.inputs) != 2:
            return None
        for position in (0, 1):
            layer = graph.producer(node.inputs[position])
            operand = node.inputs[1 - position]
            if layer.op in LAYER_OPS and self.weights.known(graph, [operand]):
                return Match({"layer": layer, "affine": node}, {"operand": operand})
        return None

    def check(self, graph: Graph, match: Match) -> str | None:
        layer, affine = match["layer"], match["affine"]
        operand = match.data["operand"]
        if has_other_users(graph, layer.output, affine):
            return f"the output of {describe(layer)} has other users"
        if self._per_channel(layer, operand.type.shape) is None or affine.output.type != layer.output.type:
            return (
                f"the {self.op} operand {format_shape(operand.type.shape)} is not one value per "
                f"output channel of {format_shape(layer.output.type.shape)}"
            )
        return self.weights.unfoldable(graph, layer)

    def rewrite(self, graph: Graph, match: Match) -> None:
        layer, affine = match["layer"], match["affine"]
        operand = match.data["operand"]
        channels = int(layer.output.type.shape[channel_axis(layer)])
        values = self.weights.array(graph, operand).astype(np.float64).reshape(-1)
        values = np.broadcast_to(values, (channels,))
        ones, zeros = np.ones(channels), np.zeros(channels)
        if self.op == "mul":
            fold_affine(self.weights, graph, layer, values, zeros)
        else:
            fold_affine(self.weights, graph, layer, ones, values)
        graph.replace_all_uses(affine.output, layer.output)
        graph.erase(affine)
        erase_if_unused(graph, [operand])

    @staticmethod
    def _per_channel(layer: Node, shape: tuple) -> int | None:
        """The operand's length along the channel axis (1: one value in all), or None when
        it varies along any other axis of the layer's output."""
        rank = layer.output.type.rank
        if len(shape) > rank:
            return None
        aligned = (1,) * (rank - len(shape)) + tuple(shape)
        axis = channel_axis(layer)
        if any(size != 1 for index, size in enumerate(aligned) if index != axis):
            return None
        return aligned[axis] if aligned[axis] in (1, layer.output.type.shape[axis]) else None


def fold_batch_norm_pass(context: PassContext) -> RewritePass:
    weights = LayerWeights(context)
    rewrites = [FoldBatchNorm(weights), FoldChannelAffine("mul", weights), FoldChannelAffine("add", weights)]
    return RewritePass("fold-batch-norm", context, rewrites)
