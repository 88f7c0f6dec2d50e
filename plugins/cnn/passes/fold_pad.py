"""Fold an explicit zero `pad` into the conv that reads it.

A conv pads its input with zeros, so for a constant pad of value 0 with spatial pads
``(p_begin, p_end)`` in front of a conv with pads ``(c_begin, c_end)``

    conv(pad(x, p), pads=c) = conv(x, pads=c + p)

per spatial dim, asymmetric pads included; the output shape is unchanged. Declined for
reflect, replicate and circular pads, for a constant other than 0, and for pads on the
batch or channel dim. A pad that other ops also read stays for them.
"""

from __future__ import annotations

from dlc.passes.rewrite import Match, RewritePass
from dlc.plugin_api import Graph, Node, PassContext

from .conv_rewriting import spatial_rank


def full_rank_pads(pad: Node, rank: int) -> tuple[list[int], list[int]]:
    """(begins, ends) of `pad` for every one of the `rank` dims of its input."""
    count = len(pad.attrs.pads) // 2
    begins = [0] * (rank - count) + list(pad.attrs.pads[:count])
    ends = [0] * (rank - count) + list(pad.attrs.pads[count:])
    return begins, ends


class FoldPadIntoConv:
    """conv(pad(x)) -> conv'(x)."""

    name = "fold-pad-into-conv"

    def match(self, graph: Graph, node: Node) -> Match | None:
        if node.op != "conv":
            return None
        pad = graph.producer(node.inputs[0])
        return Match({"conv": node, "pad": pad}) if pad.op == "pad" else None

    def check(self, graph: Graph, match: Match) -> str | None:
        pad = match["pad"]
        if pad.attrs.mode != "constant":
            return f"the pad is {pad.attrs.mode} padding; a conv pads with zeros"
        if pad.attrs.value != 0.0:
            return f"the pad fills with {pad.attrs.value:g}; a conv pads with zeros"
        begins, ends = full_rank_pads(pad, pad.output.type.rank)
        if any(begins[:2]) or any(ends[:2]):
            return "the pad pads the batch or channel dim"
        return None

    def rewrite(self, graph: Graph, match: Match) -> None:
        conv, pad = match["conv"], match["pad"]
        rank = spatial_rank(conv)
        begins, ends = full_rank_pads(pad, rank + 2)
        padding = conv.attrs.padding
        merged = tuple(padding[i] + begins[2 + i] for i in range(rank)) + tuple(
            padding[rank + i] + ends[2 + i] for i in range(rank)
        )
        attrs = conv.attrs.model_copy(update={"padding": merged})
        graph.replace_node(conv, conv.replace(inputs=(pad.inputs[0], *conv.inputs[1:]), attrs=attrs))
        if not graph.users(pad.output) and not graph.is_output(pad.output):
            graph.erase(pad)


def fold_pad_pass(context: PassContext) -> RewritePass:
    return RewritePass("fold-pad-into-conv", context, [FoldPadIntoConv()])
