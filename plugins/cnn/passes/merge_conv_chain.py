"""Merge two convolutions in a row, with nothing between them, into one conv when that
costs less: a 1x1 conv after a kxk conv, or a kxk conv after a 1x1 conv.

Convs are linear, so their composition is a conv. Per group (both convs must have the same
groups g; each sum runs over the intermediate channels m of one group):

    1x1 (W2, b2) after kxk (W1, b1):  W[o, c, k] = sum_m W2[o, m] W1[m, c, k]
                                      b[o]       = b2[o] + sum_m W2[o, m] b1[m]
        with the kxk conv's padding and dilation, and stride s1 * s2 (a strided 1x1 conv
        subsamples the kxk conv's outputs);
    kxk (W2, b2) after 1x1 (W1, b1):  W[o, c, k] = sum_m W2[o, m, k] W1[m, c]
                                      b[o]       = b2[o] + sum_{m, k} W2[o, m, k] b1[m]
        with the kxk conv's stride, padding and dilation.

Exactness limits, each declined with its reason: a 1x1 conv that pads its input (its border
outputs are its bias alone); a 1x1 conv with a non-zero bias before a zero-padded kxk conv
(the kxk conv's padding holds zeros, not that bias: the merged conv is wrong at the
borders); a strided 1x1 conv before a kxk conv; different groups. The merge must also pay:
no more MACs than the two convs, and a lower time in the CNN cost model (merging a 1x1
reduction into the kxk conv after it usually multiplies the MACs). The merged conv keeps the
second conv's name and parameter names.
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, OpAttrs, PassContext, TensorType

from .conv_rewriting import (
    LayerWeights,
    bias_of,
    describe,
    erase_if_unused,
    has_other_users,
    kernel_of,
    too_large_to_fold,
)
from .cost_estimates import conv_shape, more_costly, node_shape


def is_pointwise(conv: Node) -> bool:
    return all(k == 1 for k in kernel_of(conv))


def by_group(array: np.ndarray, groups: int) -> np.ndarray:
    """[C_out, ...] -> [groups, C_out / groups, ...]."""
    return array.reshape(groups, array.shape[0] // groups, *array.shape[1:])


class MergeConvChain:
    """conv2(conv1(x)) -> conv(x), where one of the two is 1x1."""

    name = "merge-conv-chain"

    def __init__(self, weights: LayerWeights) -> None:
        self.weights = weights

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "conv":
            return None
        first = graph.producer(node.inputs[0])
        return Match({"first": first, "second": node}) if first.op == "conv" else None

    def check(self, graph: Graph, match: Match) -> str | None:
        first, second = match["first"], match["second"]
        if has_other_users(graph, first.output, second):
            return f"the output of {describe(first)} has other users"
        if not (is_pointwise(first) or is_pointwise(second)):
            return "neither conv is 1x1"
        if first.attrs.groups != second.attrs.groups:
            return f"the convs have different groups ({first.attrs.groups} and {second.attrs.groups})"
        reason = self._exactness(graph, first, second)
        if reason is not None:
            return reason
        inferred = self.weights.registry.op("conv").infer_types(
            self._attrs(first, second), [first.inputs[0].type, self._weight_type(first, second)]
        )[0]
        if inferred != second.output.type:
            return f"the merged conv's output {inferred} is not provably {second.output.type}"
        if not self.weights.known(graph, [first.inputs[1], bias_of(first)]):
            return f"the weights of {describe(first)} are computed, not parameters"
        reason = self.weights.unfoldable(graph, second) or too_large_to_fold(first)
        if reason is not None:
            return reason
        merged = conv_shape(
            first.inputs[0].type, second.output.type, self._kernel(first, second), first.attrs.groups
        )
        reason = more_costly([merged], [node_shape(first), node_shape(second)])
        return None if reason is None else f"merging does not pay: {reason}"

    def _exactness(self, graph: Graph, first: Node, second: Node) -> str | None:
        if is_pointwise(second):
            if any(second.attrs.padding):
                return f"the 1x1 {describe(second)} pads its input: its border outputs are its bias alone"
            return None
        if any(first.attrs.padding):
            return f"the 1x1 {describe(first)} pads its input: its border outputs are its bias alone"
        if set(first.attrs.stride) != {1}:
            return f"the 1x1 {describe(first)} has stride {list(first.attrs.stride)} before a kxk conv"
        if any(second.attrs.padding) and self._has_bias(graph, first):
            return "a 1x1 conv with bias before a zero-padded kxk conv is not exact at the borders"
        return None

    def _has_bias(self, graph: Graph, conv: Node) -> bool:
        """Whether the conv adds a bias that may be non-zero (a computed one counts)."""
        bias = bias_of(conv)
        if bias is None:
            return False
        return not self.weights.known(graph, [bias]) or bool(np.any(self.weights.array(graph, bias)))

    @staticmethod
    def _kernel(first: Node, second: Node) -> tuple[int, ...]:
        return kernel_of(first) if is_pointwise(second) else kernel_of(second)

    @staticmethod
    def _attrs(first: Node, second: Node) -> OpAttrs:
        if not is_pointwise(second):
            return second.attrs
        stride = tuple(a * b for a, b in zip(first.attrs.stride, second.attrs.stride, strict=True))
        return first.attrs.model_copy(update={"stride": stride})

    def _weight_type(self, first: Node, second: Node) -> TensorType:
        channels = (second.inputs[1].type.shape[0], first.inputs[1].type.shape[1])
        return second.inputs[1].type.with_shape((*channels, *self._kernel(first, second)))

    def rewrite(self, graph: Graph, match: Match) -> None:
        first, second = match["first"], match["second"]
        groups = first.attrs.groups
        w1, b1 = self.weights.arrays(graph, first)
        w2, b2 = self.weights.arrays(graph, second)
        w1g, w2g = by_group(w1, groups), by_group(w2, groups)
        b1g = by_group(np.zeros(w1.shape[0]) if b1 is None else b1, groups)
        bias = np.zeros(w2.shape[0]) if b2 is None else b2
        if is_pointwise(second):
            w2g = w2g.reshape(w2g.shape[:3])  # [g, O/g, M/g]
            weight = np.einsum("gom,gmc...->goc...", w2g, w1g)
            bias = bias + np.einsum("gom,gm->go", w2g, b1g).reshape(-1)
        else:
            w1g = w1g.reshape(w1g.shape[:3])  # [g, M/g, C/g]
            weight = np.einsum("gom...,gmc->goc...", w2g, w1g)
            kernel_sums = w2g.sum(axis=tuple(range(3, w2g.ndim)))  # [g, O/g, M/g]
            bias = bias + np.einsum("gom,gm->go", kernel_sums, b1g).reshape(-1)
        weight = weight.reshape(weight.shape[0] * weight.shape[1], *weight.shape[2:])
        has_bias = b1 is not None or b2 is not None
        self.weights.write(
            graph,
            second,
            weight,
            bias if has_bias else None,
            source=first.inputs[0],
            attrs=self._attrs(first, second),
        )
        graph.erase(first)
        erase_if_unused(graph, first.inputs[1:])


def merge_conv_chain_pass(context: PassContext) -> RewritePass:
    return RewritePass("merge-conv-chain", context, [MergeConvChain(LayerWeights(context))])
