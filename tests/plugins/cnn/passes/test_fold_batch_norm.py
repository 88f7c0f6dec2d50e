"""fold-batch-norm: batch norm and per-channel mul/add folded into conv, transposed conv
and linear layers. Outputs before and after agree within 1e-5 relative to the output scale
(float32; random weights and statistics), in ONNX Runtime and in the ejected model.py."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.passes.rewrite import PassTensors
from dlc.plugin_api import PassContext

from .helpers import check_golden, compare, compile_spec, computed, rewire, run_pass

TOLERANCE = 1e-5

FOLDABLE = """
- conv2d: {out: 8, kernel: 3, padding: 1, bias: false}
  id: conv
- batch_norm: {eps: 0.001}
  id: bn
- relu
- conv_transpose2d: {out: 6, kernel: 2, stride: 2, groups: 2}
  id: up
- batch_norm:
  id: up_bn
- constant: [[[0.5]], [[-1.0]], [[2.0]], [[1.5]], [[0.25]], [[3.0]]]
  id: gain
- mul:
  in: [up_bn, gain]
  id: scaled
- constant: [[[1.0]], [[2.0]], [[3.0]], [[4.0]], [[5.0]], [[6.0]]]
  id: offset
- add:
  in: [offset, scaled]
  id: shifted
- global_avg_pool: {keepdims: false}
- linear: 5
  id: fc
- batch_norm:
  id: fc_bn
"""
IMAGE = "{x: {shape: [N, 4, 9, 9]}}"


def test_batch_norm_and_affines_fold_into_conv_transposed_conv_and_linear() -> None:
    before = compile_spec(FOLDABLE, IMAGE)
    after, fold = run_pass(before, "fold-batch-norm")
    assert fold.fired == {"fold-batch-norm": 3, "fold-channel-mul": 1, "fold-channel-add": 1}
    assert not fold.declined
    assert {n.op for n in after.graph} & {"batch_norm", "mul", "add"} == set()
    assert compare(before, after) <= TOLERANCE
    check_golden("pass-fold-batch-norm", str(after.graph))


def test_folded_weights_keep_the_layer_names_and_a_bias_free_conv_gains_one() -> None:
    after, _ = run_pass(compile_spec(FOLDABLE, IMAGE), "fold-batch-norm")
    names = set(after.weights())
    assert {"conv.weight", "conv.bias", "up.weight", "up.bias", "fc.weight", "fc.bias"} == names
    source = after.torch_source()
    assert "nn.Conv2d(4, 8, 3, padding=1)" in source  # a real module, now with its bias
    assert "BatchNorm" not in source


def test_a_causal_conv1d_with_bias_folds() -> None:
    before = compile_spec(
        "- conv1d: {out: 5, kernel: 3, dilation: 2, padding: causal}\n- batch_norm\n",
        "{x: {shape: [N, 3, 16]}}",
    )
    after, fold = run_pass(before, "fold-batch-norm")
    assert fold.fired["fold-batch-norm"] == 1
    assert compare(before, after) <= TOLERANCE


def test_a_parameter_scale_folds_like_a_constant() -> None:
    model = compile_spec(
        """
        - conv2d: {out: 2, kernel: 1}
        - constant: [[[2.0]], [[-3.0]]]
          id: gain
        - mul:
          in: [conv2d_0, gain]
        """,
        "{x: {shape: [N, 3, 5, 5]}}",
    )
    graph, gain = model.graph, model.graph.node("gain")
    weight = PassTensors(PassContext(model.registry)).new_parameter(
        graph, "gain.weight", gain.attrs.value, gain
    )
    graph.replace_all_uses(gain.output, weight)
    graph.erase(gain)
    after, fold = run_pass(model, "fold-batch-norm")
    assert fold.fired["fold-channel-mul"] == 1
    assert "gain.weight" not in after.weights()
    assert compare(model, after) <= TOLERANCE


DECLINED = """
- conv2d: {out: 4, kernel: 3, padding: 1}
  in: x
  id: shared_out
- batch_norm:
  id: bn
- add:
  in: [bn, shared_out]
  id: both
- conv2d: {out: 4, kernel: 1}
  id: spatial
- constant: [[[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]]]
  id: ramp
- mul:
  in: [spatial, ramp]
  id: not_per_channel
- linear: 5
  in: seq
  id: seq_fc
- batch_norm:
  id: seq_bn
"""


def test_declines_name_their_reason_and_leave_the_graph_exact() -> None:
    inputs = "{x: {shape: [N, 4, 6, 6]}, seq: {shape: [N, 3, 6]}}"
    before = compile_spec(DECLINED, inputs, "[not_per_channel, seq_bn]")
    after, fold = run_pass(before, "fold-batch-norm")
    assert not fold.fired
    assert fold.declined == {
        "bn": "fold-batch-norm: the output of conv 'shared_out' has other users",
        "not_per_channel": "fold-channel-mul: the mul operand [1, 1, 1, 6] is not one value per output "
        "channel of [N, 4, 6, 6]",
        "seq_bn": "fold-batch-norm: batch norm normalizes dim 1 of [N, 3, 5], not the linear layer's features",
    }
    assert "seq_bn: not rewritten (fold-batch-norm: batch norm normalizes" in "\n".join(fold.notes())
    assert compare(before, after, torch_too=False) == 0.0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("shared-weight", "the weight of conv 'b' is shared with other ops"),
        ("computed-weight", "the weight of conv 'b' is computed, not a parameter"),
        ("computed-statistics", "the batch norm's statistics are computed, not weights"),
    ],
)
def test_declines_shared_or_computed_weights(edit: str, reason: str) -> None:
    layers = "- conv2d: {out: 3, kernel: 1}\n  id: a\n- conv2d: {out: 3, kernel: 1}\n  id: b\n- batch_norm:\n  id: bn\n"
    model = compile_spec(layers, "{x: {shape: [N, 3, 5, 5]}}")
    if edit == "shared-weight":
        rewire(model, "b", 1, model.graph.value("a.weight"))
    elif edit == "computed-weight":
        rewire(model, "b", 1, computed(model, "neg", "b.weight"))
    else:
        rewire(model, "bn", 3, computed(model, "abs", "bn.running_mean"))
    after, fold = run_pass(model, "fold-batch-norm")
    assert fold.declined == {"bn": f"fold-batch-norm: {reason}"}
    assert np.isfinite(compare(model, after, torch_too=False))


def test_a_folded_weight_is_computed_when_read_and_equals_the_eager_fold() -> None:
    """The pass leaves each folded weight to be drawn and scaled when first read (by the
    writer's threads): nothing is computed during the pass, and the values are those of the
    fold computed at once, (W as drawn, in float64) * s rounded to float32, bit for bit."""
    from dlc.weights import parameter_data

    before = compile_spec(FOLDABLE, IMAGE)
    after, _ = run_pass(before, "fold-batch-norm")
    conv = next(n for n in after.graph.parameters() if n.attrs.name == "conv.weight")
    deferred = conv.attrs.init
    assert deferred.deferred is not None and not deferred._computed
    drawn = parameter_data(next(n for n in before.graph.parameters() if n.attrs.name == "conv.weight"), 0)
    tensors = PassTensors(PassContext(before.registry, 0, {}, False))
    norm = next(n for n in before.graph if n.op == "batch_norm" and n.name == "bn")
    gamma, var = (tensors.array(before.graph, norm.inputs[i]).astype(np.float64) for i in (1, 4))
    scale = 1.0 / np.sqrt(var + 0.001) * gamma  # as batch_norm_affine computes it
    expected = (drawn.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
    assert np.array_equal(after.weights()["conv.weight"], expected)
    assert len(deferred._computed) == 1
