"""Structural re-parameterization (RepVGG, Ding et al. 2021): parallel branches on the same
input whose outputs are summed become one conv.

Convolution is linear in its kernel, so convs of one input with the same stride, dilation
and groups add up to one conv whose kernel is the sum of theirs, each placed at its own
offset:

    sum_b conv(x, W_b, b_b) = conv(x, sum_b pad(W_b), sum_b b_b)

A branch's taps sit at input offsets ``-pad_begin + dilation * j``; the merged kernel spans
the union of all branches' taps (a 1x1 conv with padding 0 inside a 3x3 with padding 1 is
the centre of a zero 3x3 kernel), which needs every branch's offsets on one grid of the
dilation. The identity branch is the kernel with 1 at offset 0 from input channel c to
output channel c (channels must match, stride 1), and a batch norm of the input, ``s * x + t``
per channel, is that kernel scaled by s with bias t. Run after fold-batch-norm, this turns
RepVGG's training-time block (3x3 conv + BN, 1x1 conv + BN, BN) into one 3x3 conv.

The merged conv keeps the name and parameter names of the branch with the largest kernel.
Declined, with the reason, when a branch's output has other users, the branches differ in
stride, dilation or groups, the taps do not align, the add broadcasts, weights are computed
(or the kept conv's weight is shared), or the merge would cost more (MACs or cost model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlc.lazy_imports import numpy as np
from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, OpAttrs, PassContext, Value

from .conv_rewriting import LayerWeights, bias_of, describe, erase_if_unused, has_other_users, kernel_of
from .cost_estimates import conv_shape, elementwise_seconds, more_costly, node_shape
from .fold_batch_norm import batch_norm_affine


@dataclass(frozen=True)
class Branch:
    """One summand: a conv of the input, a batch norm of it, or the input itself."""

    kind: str  # conv | norm | identity
    node: Node | None  # the conv or batch norm (None for the identity)

    def first_tap(self, axis: int) -> int:
        """Offset of the branch's first tap in the input, along spatial `axis`."""
        return -self.node.attrs.padding[axis] if self.kind == "conv" else 0

    def last_tap(self, axis: int) -> int:
        if self.kind != "conv":
            return 0
        dilation = self.node.attrs.dilation[axis]
        return self.first_tap(axis) + dilation * (kernel_of(self.node)[axis] - 1)


def summands(graph: Graph, values: tuple[Value, ...]) -> tuple[tuple[Branch, ...], Value] | None:
    """The branches that compute `values` from one tensor (and that tensor), with at least
    one conv among them; None when there is no such tensor."""
    producers = [graph.producer(v) for v in values]
    candidates = list(values)
    candidates += [p.inputs[0] for p in producers if p.op in ("conv", "batch_norm")]
    for source in candidates:
        branches = []
        for value, producer in zip(values, producers, strict=True):
            if value.name == source.name:
                branches.append(Branch("identity", None))
            elif producer.op in ("conv", "batch_norm") and producer.inputs[0].name == source.name:
                branches.append(Branch("conv" if producer.op == "conv" else "norm", producer))
            else:
                break
        else:
            if any(b.kind == "conv" for b in branches):
                return tuple(branches), source
    return None


class MergeParallelConvs:
    """add(conv_1(x), conv_2(x), ..., [x], [batch_norm(x)]) -> conv(x)."""

    name = "reparameterize-branches"

    def __init__(self, weights: LayerWeights) -> None:
        self.weights = weights

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "add" or len(node.inputs) < 2:
            return None
        found = summands(graph, node.inputs)
        if found is None:
            return None
        branches, source = found
        convs = [b.node for b in branches if b.kind == "conv"]
        kept = max(convs, key=lambda c: math.prod(kernel_of(c)))  # the first of the largest
        return Match({"add": node, "kept": kept}, {"branches": branches, "source": source})

    def check(self, graph: Graph, match: Match) -> str | None:
        add, kept = match["add"], match["kept"]
        branches: tuple[Branch, ...] = match.data["branches"]
        convs = [b.node for b in branches if b.kind == "conv"]
        for branch in branches:
            if branch.node is not None and has_other_users(graph, branch.node.output, add):
                return f"the output of {describe(branch.node)} has other users"
        if any(v.type != add.output.type for v in add.inputs):
            return "the add broadcasts its inputs"
        for attribute in ("stride", "dilation", "groups"):
            if len({getattr(c.attrs, attribute) for c in convs}) > 1:
                return f"the convs have different {attribute}"
        if any(b.kind != "conv" for b in branches) and set(kept.attrs.stride) != {1}:
            return f"an identity branch needs stride 1, the convs have stride {list(kept.attrs.stride)}"
        if self._grid(branches, kept) is None:
            return "the branches' kernel taps do not align on one grid"
        for branch in branches:
            if branch.kind == "conv" and not self.weights.known(graph, branch.node.inputs[1:]):
                return f"the weights of {describe(branch.node)} are computed, not parameters"
            if branch.kind == "norm" and not self.weights.known(graph, branch.node.inputs[1:5]):
                return f"the statistics of {describe(branch.node)} are computed, not weights"
        reason = self.weights.unfoldable(graph, kept)
        if reason is not None:
            return reason
        _, kernel = self._merged(branches, kept)
        merged = conv_shape(kept.inputs[0].type, add.output.type, kernel, kept.attrs.groups)
        additions = elementwise_seconds(add.output.type, len(add.inputs) - 1)
        reason = more_costly([merged], [node_shape(c) for c in convs], separate_extra=additions)
        return None if reason is None else f"merging does not pay: {reason}"

    @staticmethod
    def _grid(branches: tuple[Branch, ...], kept: Node) -> list[tuple[int, int]] | None:
        """Per spatial axis (first tap, last tap) of the merged kernel, or None when some
        branch's taps fall between the dilation's grid points."""
        rank = len(kept.attrs.stride)
        extents = []
        for axis in range(rank):
            dilation = kept.attrs.dilation[axis]
            first = min(b.first_tap(axis) for b in branches)
            last = max(b.last_tap(axis) for b in branches)
            if any((b.first_tap(axis) - first) % dilation for b in branches):
                return None
            extents.append((first, last))
        return extents

    def _merged(self, branches: tuple[Branch, ...], kept: Node) -> tuple[OpAttrs, tuple[int, ...]]:
        """The merged conv's attributes and kernel: it starts at the first tap of all branches
        and keeps the kept conv's output length (its end padding grows with the kernel)."""
        grid = self._grid(branches, kept)
        assert grid is not None
        rank = len(grid)
        attrs = kept.attrs
        kernel = tuple((last - first) // attrs.dilation[axis] + 1 for axis, (first, last) in enumerate(grid))
        begins = tuple(-first for first, _ in grid)
        ends = tuple(
            attrs.padding[rank + axis] - Branch("conv", kept).last_tap(axis) + last
            for axis, (_, last) in enumerate(grid)
        )
        return attrs.model_copy(update={"padding": begins + ends}), kernel

    def rewrite(self, graph: Graph, match: Match) -> None:
        add, kept = match["add"], match["kept"]
        branches: tuple[Branch, ...] = match.data["branches"]
        grid = self._grid(branches, kept)
        assert grid is not None
        attrs, kernel = self._merged(branches, kept)
        out_channels, group_in = (int(d) for d in kept.inputs[1].type.shape[:2])
        weight = np.zeros((out_channels, group_in, *kernel))
        bias = np.zeros(out_channels)
        dilation = attrs.dilation
        for branch in branches:
            if branch.kind == "conv":
                w, b = self.weights.arrays(graph, branch.node)
                start = [(branch.first_tap(a) - grid[a][0]) // dilation[a] for a in range(len(grid))]
                window = tuple(slice(s, s + k) for s, k in zip(start, w.shape[2:], strict=True))
                weight[(slice(None), slice(None), *window)] += w
                bias += 0.0 if b is None else b
                continue
            scale, shift = np.ones(out_channels), np.zeros(out_channels)
            if branch.kind == "norm":
                scale, shift = batch_norm_affine(self.weights, graph, branch.node)
            centre = tuple(-first // dilation[a] for a, (first, _) in enumerate(grid))
            channels = np.arange(out_channels)
            weight[(channels, channels % group_in, *centre)] += scale
            bias += shift
        has_bias = any(
            b.kind == "norm" or (b.kind == "conv" and bias_of(b.node) is not None) for b in branches
        )
        self.weights.write(graph, kept, weight, bias if has_bias else None, attrs=attrs)
        graph.replace_all_uses(add.output, kept.output)
        graph.erase(add)
        for node in {
            b.node.name: b.node for b in branches if b.node is not None and b.node.name != kept.name
        }.values():
            graph.erase(node)
            erase_if_unused(graph, node.inputs[1:])


def reparameterize_pass(context: PassContext) -> RewritePass:
    return RewritePass("reparameterize-branches", context, [MergeParallelConvs(LayerWeights(context))])
