"""Horizontal fusion: sibling convs that read the same tensor with the same kernel size,
stride, padding and dilation (Inception's 1x1 reductions) become one conv with their output
channels stacked, and a split:

    conv(x, W_i, b_i) = split(conv(x, concat_i W_i, concat_i b_i), [C_1, ..., C_n])[i]

(a missing bias is zeros). An element-wise activation that follows every sibling the same
way (the same op and attributes, the conv's only user) runs once on the fused output, before
the split, since ``f(concat_i y_i) = concat_i f(y_i)``.

It pays only sometimes: one larger GEMM (better efficiency, one call's overhead instead of
n) against a split, which costs ONNX Runtime three copies of the fused output (its blocked
conv layout is undone and redone around the Split; torch.split makes views). Forced on
GoogLeNet's inception reductions at 224x224, it made ONNX Runtime 3-6% slower
(benchmarks/sibling_convs.py). The rewrite fires only where the shared cost model predicts a
gain (in practice: many small convs, where per-call overhead dominates), and says why it
declined otherwise. Grouped convs are left alone (stacking them
would break the group-major channel order). The fused parameters are named after the
siblings' common module (``inception3a.fused_conv.weight``).
"""

from __future__ import annotations

from dlc.lazy_imports import numpy as np
from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, OpGroup, PassContext, TensorType, Value

from .conv_rewriting import LayerWeights, add_op, describe, erase_if_unused, kernel_of, too_large_to_fold
from .cost_estimates import conv_shape, elementwise_seconds, more_costly, node_shape


def signature(conv: Node) -> tuple:
    """What siblings must share to be one conv."""
    attrs = conv.attrs
    return (
        kernel_of(conv),
        attrs.stride,
        attrs.padding,
        attrs.dilation,
        conv.output.type.dtype,
        attrs.groups,
    )


def common_module(modules: list[str]) -> str:
    """The longest dotted prefix shared by all module paths ("" when none)."""
    parts = [m.split(".") for m in modules]
    shared = []
    for names in zip(*parts, strict=False):
        if len(set(names)) != 1:
            break
        shared.append(names[0])
    return ".".join(shared)


class FuseSiblingConvs:
    """[conv_1(x), ..., conv_n(x)] -> split(conv(x)), anchored at the first sibling."""

    name = "fuse-sibling-convs"

    def __init__(self, weights: LayerWeights, context: PassContext) -> None:
        self.weights = weights
        self.context = context

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "conv" or node.attrs.groups != 1:
            return None
        x = node.inputs[0]
        siblings = [
            u
            for u in graph.users(x)
            if u.op == "conv" and u.inputs[0] == x and signature(u) == signature(node)
        ]
        if len(siblings) < 2 or siblings[0].name != node.name:
            return None
        return Match(
            {"first": node}, {"siblings": siblings, "activations": self._shared_activation(graph, siblings)}
        )

    def _shared_activation(self, graph: Graph, siblings: list[Node]) -> list[Node] | None:
        """The one-input element-wise op that follows every sibling identically (and is its
        only user), one node per sibling; None when there is none."""
        followers = []
        for conv in siblings:
            users = graph.users(conv.output)
            if len(users) != 1 or graph.is_output(conv.output):
                return None
            followers.append(users[0])
        first = followers[0]
        if self.context.registry.op(first.op).group is not OpGroup.ELEMENTWISE:
            return None
        same = all(f.op == first.op and f.attrs == first.attrs and len(f.inputs) == 1 for f in followers)
        return followers if same else None

    def check(self, graph: Graph, match: Match) -> str | None:
        siblings: list[Node] = match.data["siblings"]
        for conv in siblings:
            if not self.weights.known(graph, conv.inputs[1:]):
                return f"the weights of {describe(conv)} are computed, not parameters"
            if (reason := too_large_to_fold(conv)) is not None:
                return reason
        fused_type = self._fused_type(siblings)
        fused = conv_shape(siblings[0].inputs[0].type, fused_type, kernel_of(siblings[0]), 1)
        # ONNX Runtime runs convs in its blocked NCHWc layout; a Split sends the fused output
        # back to NCHW, copies it, and reorders each piece again (ReorderOutput, Split,
        # ReorderInput in its optimized graph): three copies. Activations are no gain: it
        # fuses them into the convs either way.
        split = elementwise_seconds(fused_type, ops=3)
        reason = more_costly([fused], [node_shape(c) for c in siblings], merged_extra=split)
        return None if reason is None else f"fusing {len(siblings)} sibling convs does not pay: {reason}"

    @staticmethod
    def _fused_type(siblings: list[Node]) -> TensorType:
        out = siblings[0].output.type
        channels = sum(int(c.output.type.shape[1]) for c in siblings)
        return out.with_shape((out.shape[0], channels, *out.shape[2:]))

    def rewrite(self, graph: Graph, match: Match) -> None:
        siblings: list[Node] = match.data["siblings"]
        activations: list[Node] | None = match.data["activations"]
        first = siblings[0]
        module = graph.fresh_name(
            ".".join(filter(None, [common_module([c.module for c in siblings]), "fused_conv"]))
        )
        like = first.replace(module=module)
        inputs = [first.inputs[0], *self._stacked_weights(graph, siblings, module, like)]
        fused = add_op(graph, self.context, "conv", inputs, first.attrs.model_dump(), name=module, like=like)
        source = fused.output
        if activations is not None:
            op, attrs = activations[0].op, activations[0].attrs.model_dump()
            source = add_op(graph, self.context, op, [source], attrs, name=f"{module}/{op}", like=like).output
        sizes = {"axis": 1, "sizes": tuple(int(c.output.type.shape[1]) for c in siblings)}
        split = add_op(graph, self.context, "split", [source], sizes, name=f"{module}/split", like=like)
        for old, piece in zip(activations or siblings, split.outputs, strict=True):
            graph.replace_all_uses(old.output, piece)
        for node in [*(activations or []), *siblings]:
            graph.erase(node)
        for conv in siblings:
            erase_if_unused(graph, conv.inputs[1:])

    def _stacked_weights(self, graph: Graph, siblings: list[Node], module: str, like: Node) -> list[Value]:
        """New parameters `<module>.weight` (and `.bias`: zeros for a sibling without one)."""
        arrays = [self.weights.arrays(graph, c) for c in siblings]
        dtype = siblings[0].inputs[1].type.dtype.numpy
        stacked = [np.concatenate([w for w, _ in arrays])]
        if any(b is not None for _, b in arrays):
            stacked.append(np.concatenate([np.zeros(w.shape[0]) if b is None else b for w, b in arrays]))
        tensors = self.weights.tensors
        return [
            tensors.new_parameter(graph, f"{module}.{role}", array.astype(dtype), like, before=siblings[0])
            for role, array in zip(("weight", "bias"), stacked, strict=False)
        ]


def horizontal_fusion_pass(context: PassContext) -> RewritePass:
    return RewritePass("fuse-sibling-convs", context, [FuseSiblingConvs(LayerWeights(context), context)])
