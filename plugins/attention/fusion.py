"""Fused attention for ONNX Runtime: rewrite `scaled_dot_product_attention` into its contrib
kernels (`fused.py`). Skipped for portable output (`--portable`): standard ONNX only.

fuse-self-attention: the projections and the attention of self-attention become one
``Attention``, whose single [E, 3E] matmul replaces the three query/key/value matmuls::

    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv        (three linears, BERT)
    q, k, v = split(x W^T + b)                              (one packed linear, GPT-2, ViT)
    sdpa(q, k, v, mask)  ->  ort.attention(x, [Wq; Wk; Wv], [bq; bk; bv], mask)

The stacked weight is a `concat` of the three parameters (ONNX Runtime folds it when the
session starts), so initializer names stay the state_dict keys.

use-multi-head-attention: any other attention (cross-attention, ...) becomes
``MultiHeadAttention`` on the projected queries, keys and values.

use-group-query-attention: causal grouped-query self-attention (fewer key/value heads than
query heads, as many keys as queries, no mask or bias) becomes ``GroupQueryAttention``,
which runs a whole prompt as a decoder's first step. Measured (benchmarks/
grouped_query_attention.py, 16 query and 4 key/value heads of 64, one thread): 0.96x the
standard lowering's time at 128 tokens, 0.77-0.89x at 512, 0.61-0.65x at 1024.

The first two take a 4-D additive bias as ONNX Runtime's ``attention_bias`` when it is
``[N|1, heads|1, S, L]``: the kernels broadcast over batch and heads, not over queries or
keys. Neither applies to grouped-query attention (their key/value heads equal the query
heads), to a padding mask together with `causal` (ONNX Runtime masks future keys with the
padding value, not -inf), or to `causal` where the query and key lengths may differ (ONNX
Runtime aligns the causal mask to the last key, dlc and torch to the first); `check` says
which.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlc.ir.builder import GraphBuilder
from dlc.plugin_api import DType, Graph, Node, PassContext, PassResult, Value


def _unfused_reason(node: Node) -> str | None:
    """Why no fused kernel can take this attention, if none can."""
    query, key = node.inputs[0].type, node.inputs[1].type
    if query.dtype is not DType.float32:
        return f"the fused kernels are used for float32 only, not {query.dtype}"
    if node.attrs.kv_heads not in (None, node.attrs.heads):
        return (
            f"grouped-query attention ({node.attrs.heads} query heads, {node.attrs.kv_heads} key/value "
            "heads): ONNX Runtime's Attention and MultiHeadAttention need as many key/value heads"
        )
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    if mask is not None and mask.type.rank == 4 and mask.type.shape[2:] != (query.shape[1], key.shape[1]):
        return (
            f"the bias {mask.type} broadcasts over queries or keys; ONNX Runtime's attention_bias "
            f"must be [N|1, heads|1, {query.shape[1]}, {key.shape[1]}]"
        )
    if mask is not None and mask.type.rank == 2 and node.attrs.causal:
        return "ONNX Runtime would mask future keys with the padding value, not -inf"
    if node.attrs.causal and query.shape[1] != key.shape[1]:
        return (
            f"causal attention of {query.shape[1]} queries over {key.shape[1]} keys: ONNX Runtime aligns "
            "the causal mask to the last key, dlc (as torch's is_causal) to the first"
        )
    return None


def _mask_and_bias(node: Node) -> list[Value | None]:
    """The fused ops' optional last inputs: a key padding mask [N, L], an additive bias."""
    extra = node.inputs[3] if len(node.inputs) > 3 else None
    return [extra] if extra is None or extra.type.rank == 2 else [None, extra]


def _sole_user(graph: Graph, value: Value, user: Node) -> bool:
    return not graph.is_output(value) and [n.name for n in graph.users(value)] == [user.name]


@dataclass(frozen=True)
class _Projections:
    """Where q, k and v come from: `x` and, per output, a weight and an optional bias."""

    x: Value
    weights: list[Value]
    biases: list[Value | None]
    replaced: list[Node]  # the linears (and split) the fused op makes unused


class FuseSelfAttention:
    name = "fuse-self-attention"

    def __init__(self, context: PassContext) -> None:
        self.context = context

    def check(self, graph: Graph, node: Node) -> _Projections | str:
        """The projections to fuse, or the reason this attention does not fuse."""
        reason = _unfused_reason(node)
        if reason:
            return reason
        q, k, v = node.inputs[:3]
        if not q.type.shape[-1] == k.type.shape[-1] == v.type.shape[-1]:
            return "queries, keys and values have different widths"
        producers = [graph.producer(value) for value in (q, k, v)]
        if all(p.op == "linear" for p in producers) and len({p.name for p in producers}) == 3:
            inputs = {p.inputs[0].name for p in producers}
            if len(inputs) != 1:
                return "queries, keys and values are projected from different inputs (not self-attention)"
            if not all(_sole_user(graph, value, node) for value in (q, k, v)):
                return "a projection has other users"
            biases = [p.inputs[2] if len(p.inputs) > 2 else None for p in producers]
            if len({b is None for b in biases}) != 1:
                return "some projections have a bias and some do not"
            return _Projections(producers[0].inputs[0], [p.inputs[1] for p in producers], biases, producers)
        split = producers[0]
        if (
            split.op != "split"
            or any(p.name != split.name for p in producers)
            or list(split.outputs) != [q, k, v]
        ):
            return (
                "queries, keys and values are not three linears of one input, nor one linear split in three"
            )
        linear = graph.producer(split.inputs[0])
        if linear.op != "linear" or not _sole_user(graph, split.inputs[0], split):
            return "the split input is not a linear used only by the split"
        if split.attrs.axis not in (-1, 2) or len(set(split.attrs.sizes)) != 1:
            return "the split is not into three equal parts of the features"
        if not all(_sole_user(graph, value, node) for value in (q, k, v)):
            return "a split output has other users"
        bias = linear.inputs[2] if len(linear.inputs) > 2 else None
        return _Projections(linear.inputs[0], [linear.inputs[1]], [bias], [split, linear])

    def run(self, graph: Graph) -> PassResult:
        if self.context.portable:
            return PassResult(graph, False)
        builder = GraphBuilder(graph, self.context.registry)
        modified = False
        for node in graph.toposort():
            if node.op != "scaled_dot_product_attention":
                continue
            found = self.check(graph, node)
            if not isinstance(found, str):
                self.rewrite(graph, builder, node, found)
                modified = True
        return PassResult(graph, modified)

    def rewrite(self, graph: Graph, builder: GraphBuilder, node: Node, found: _Projections) -> None:
        place = {"module": node.module, "layer": node.layer, "location": node.location}

        def stacked(values: list[Value], name: str) -> Value:
            if len(values) == 1:
                return values[0]
            return builder.add_op("concat", values, {"axis": 0}, name=f"{node.name}/{name}", **place).output

        weight = stacked(found.weights, "qkv_weight")
        bias = stacked(found.biases, "qkv_bias") if found.biases[0] is not None else None
        attrs = {"heads": node.attrs.heads, "causal": node.attrs.causal, "scale": node.attrs.scale}
        fused = builder.add_op(
            "ort.attention",
            [found.x, weight, bias, *_mask_and_bias(node)],
            attrs,
            name=f"{node.name}/fused",
            **place,
        )
        graph.replace_all_uses(node.output, fused.output)
        graph.erase(node)
        for replaced in found.replaced:
            graph.erase(replaced)


class UseMultiHeadAttention:
    name = "use-multi-head-attention"

    def __init__(self, context: PassContext) -> None:
        self.context = context

    def run(self, graph: Graph) -> PassResult:
        if self.context.portable:
            return PassResult(graph, False)
        builder = GraphBuilder(graph, self.context.registry)
        modified = False
        for node in graph.toposort():
            if node.op != "scaled_dot_product_attention" or _unfused_reason(node):
                continue
            attrs = {"heads": node.attrs.heads, "causal": node.attrs.causal, "scale": node.attrs.scale}
            fused = builder.add_op(
                "ort.multi_head_attention",
                [*node.inputs[:3], *_mask_and_bias(node)],
                attrs,
                name=f"{node.name}/fused",
                module=node.module,
                layer=node.layer,
                location=node.location,
            )
            graph.replace_all_uses(node.output, fused.output)
            graph.erase(node)
            modified = True
        return PassResult(graph, modified)


def _group_query_reason(node: Node) -> str | None:
    """Why ONNX Runtime's GroupQueryAttention cannot take this attention, if it cannot."""
    query, key, value = (v.type for v in node.inputs[:3])
    heads, kv_heads = node.attrs.heads, node.attrs.kv_heads
    if kv_heads in (None, heads):
        return "not grouped-query attention (as many key/value heads as query heads)"
    if query.dtype is not DType.float32:
        return f"the fused kernels are used for float32 only, not {query.dtype}"
    if not node.attrs.causal:
        return "GroupQueryAttention is causal only"
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        return "GroupQueryAttention takes no key padding mask or additive bias here"
    if query.shape[1] != key.shape[1]:
        return (
            f"{query.shape[1]} queries over {key.shape[1]} keys: GroupQueryAttention here is self-attention"
        )
    if key.shape[2] != value.shape[2]:
        return "values are not as wide as keys"
    if int(query.shape[2]) // heads % 8:
        return f"head size {int(query.shape[2]) // heads}: ONNX Runtime's kernel needs a multiple of 8"
    return None


class UseGroupQueryAttention:
    name = "use-group-query-attention"

    def __init__(self, context: PassContext) -> None:
        self.context = context

    def check(self, graph: Graph, node: Node) -> str | None:
        return _group_query_reason(node)

    def run(self, graph: Graph) -> PassResult:
        if self.context.portable:
            return PassResult(graph, False)
        builder = GraphBuilder(graph, self.context.registry)
        modified = False
        for node in graph.toposort():
            if node.op != "scaled_dot_product_attention" or self.check(graph, node):
                continue
            attrs = {"heads": node.attrs.heads, "kv_heads": node.attrs.kv_heads, "scale": node.attrs.scale}
            fused = builder.add_op(
                "ort.group_query_attention",
                list(node.inputs[:3]),
                attrs,
                name=f"{node.name}/fused",
                module=node.module,
                layer=node.layer,
                location=node.location,
            )
            graph.replace_all_uses(node.output, fused.output)
            graph.erase(node)
            modified = True
        return PassResult(graph, modified)
