"""fold-pad-into-conv: zero pads become conv padding. The rewrite is exact: outputs before
and after agree within 1e-6 relative to the output scale (float32, ONNX Runtime and the
ejected model.py)."""

from __future__ import annotations

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.init import ones
from dlc.passes.manager import PassContext, build_pipeline
from dlc.plugin_api import DType, Sym, TensorType
from dlc.registry import default_registry

from .helpers import check_golden, compare, compile_spec, run_pass

TOLERANCE = 1e-6

FOLDABLE = """
- pad: {padding: [[1, 2], [0, 3]]}
  in: x
  id: padded
- conv2d: {out: 4, kernel: 3, padding: 1}
  id: a
- conv2d: {out: 4, kernel: [1, 2], stride: 2}
  in: padded
  id: b
- pad: {padding: [[2, 0]]}
  in: seq
- conv1d: {out: 2, kernel: 3}
  id: c
"""


def test_zero_pads_fold_into_every_conv_that_reads_them() -> None:
    inputs = "{x: {shape: [N, 3, 8, 5]}, seq: {shape: [N, 2, 7]}}"
    before = compile_spec(FOLDABLE, inputs, "[a, b, c]")
    after, fold = run_pass(before, "fold-pad-into-conv")
    assert fold.fired["fold-pad-into-conv"] == 3
    paddings = {name: after.graph.node(name).attrs.padding for name in "abc"}
    assert paddings == {"a": (2, 1, 3, 4), "b": (1, 0, 2, 3), "c": (2, 0)}
    assert not any(n.op == "pad" for n in after.graph)  # the shared pad went with its last reader
    assert compare(before, after) <= TOLERANCE
    check_golden("pass-fold-pad-into-conv", str(after.graph))


def test_other_pads_are_declined_with_their_reason() -> None:
    before = compile_spec(
        """
        - conv2d: {out: 3, kernel: 3, padding: 1, padding_mode: reflect}
          id: reflected
        - pad: {padding: 1, value: 1.5}
        - conv2d: {out: 3, kernel: 3}
          id: filled
        """,
        "{x: {shape: [N, 3, 6, 6]}}",
    )
    after, fold = run_pass(before, "fold-pad-into-conv")
    assert not fold.fired
    assert fold.declined == {
        "reflected": "fold-pad-into-conv: the pad is reflect padding; a conv pads with zeros",
        "filled": "fold-pad-into-conv: the pad fills with 1.5; a conv pads with zeros",
    }
    assert compare(before, after, torch_too=False) == 0.0


def test_a_pad_of_the_channel_dim_is_declined() -> None:
    registry = default_registry()
    graph = Graph("channel_pad")
    builder = GraphBuilder(graph, registry)
    x = builder.add_input("x", TensorType(DType.float32, (Sym.symbol("N"), 3, 4, 4))).output
    padded = builder.add_op("pad", [x], {"pads": (1, 0, 0, 0, 0, 0)}, name="pad").output  # a channel in front
    weight = builder.add_parameter("conv.weight", (2, 4, 1, 1), ones()).output
    conv = {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1)}
    graph.outputs["y"] = builder.add_op("conv", [padded, weight], conv, name="conv").output
    (info,) = build_pipeline(registry, 2, ["fold-pad-into-conv"])
    fold = info.factory(PassContext(registry))
    assert not fold.run(graph).modified
    assert fold.declined == {"conv": "fold-pad-into-conv: the pad pads the batch or channel dim"}
