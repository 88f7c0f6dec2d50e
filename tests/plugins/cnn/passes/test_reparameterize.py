"""reparameterize-branches: parallel convs (and the identity, plain or batch-normed) on one
input, summed, become one conv. Outputs before and after agree within 1e-5 relative to the
output scale (float32, random weights), in ONNX Runtime and the ejected model.py."""

from __future__ import annotations

import pytest

from .helpers import check_golden, compare, compile_spec, computed, rewire, run_pass, run_pipeline

TOLERANCE = 1e-5

REPVGG = """
- conv2d: {out: 8, kernel: 3, padding: 1}
  in: x
  id: dense
- conv2d: {out: 8, kernel: 1}
  in: x
  id: pointwise
- batch_norm:
  in: x
  id: identity
- add:
  in: [dense, pointwise, identity]
  id: block
- relu
- conv2d: {out: 8, kernel: 3, stride: 2, padding: 1, groups: 2}
  id: down_dense
- conv2d: {out: 8, kernel: 1, stride: 2, groups: 2}
  in: relu_0
  id: down_pointwise
- add:
  in: [down_pointwise, down_dense]
  id: down
- conv2d: {out: 8, kernel: 3, padding: 2, dilation: 2, groups: 4}
  id: dilated
- add:
  in: [dilated, down]
  id: dilated_block
- conv2d: {out: 8, kernel: [1, 3], padding: [0, 1]}
  id: horizontal
- conv2d: {out: 8, kernel: [3, 1], padding: [1, 0]}
  in: dilated_block
  id: vertical
- conv2d: {out: 8, kernel: 3, padding: 1, bias: false}
  in: dilated_block
  id: square
- add:
  in: [horizontal, vertical, square]
  id: asymmetric
"""


def test_summed_branches_become_one_conv() -> None:
    before = compile_spec(REPVGG, "{x: {shape: [N, 8, 10, 10]}}")
    after, merge = run_pass(before, "reparameterize-branches")
    assert merge.fired["reparameterize-branches"] == 4
    assert not merge.declined
    assert not any(n.op == "add" for n in after.graph)
    convs = {n.name: n for n in after.graph if n.op == "conv"}
    assert set(convs) == {"dense", "down_dense", "dilated", "square"}  # the branch with the largest kernel
    shapes = {name: array.shape for name, array in after.weights().items()}
    assert shapes["dilated.weight"] == (8, 2, 3, 3) and shapes["square.weight"] == (8, 8, 3, 3)
    assert "square.bias" in shapes and "identity.running_mean" not in shapes
    assert compare(before, after) <= TOLERANCE
    check_golden("pass-reparameterize-branches", str(after.graph))


def test_repvgg_blocks_with_batch_norms_collapse_at_o2() -> None:
    layers = """
    - conv2d: {out: 6, kernel: 3, padding: 1, bias: false}
      in: x
      id: dense
    - batch_norm:
      id: dense_bn
    - conv2d: {out: 6, kernel: 1, bias: false}
      in: x
      id: pointwise
    - batch_norm:
      id: pointwise_bn
    - batch_norm:
      in: x
      id: identity_bn
    - add:
      in: [dense_bn, pointwise_bn, identity_bn]
    - relu
    """
    before = compile_spec(layers, "{x: {shape: [N, 6, 7, 7]}}")
    after = run_pipeline(before)
    assert [n.op for n in after.graph.toposort() if n.op not in ("input", "parameter")] == ["conv", "relu"]
    assert compare(before, after) <= TOLERANCE


def test_a_conv_plus_its_own_input_is_a_residual_that_merges() -> None:
    before = compile_spec(
        "- conv2d: {out: 4, kernel: 3, padding: 1}\n  id: stem\n- conv2d: {out: 4, kernel: 3, padding: 1}\n"
        "  id: body\n- add:\n  in: [body, stem]\n",
        "{x: {shape: [N, 3, 6, 6]}}",
    )
    after, merge = run_pass(before, "reparameterize-branches")
    assert merge.fired["reparameterize-branches"] == 1
    assert [n.name for n in after.graph if n.op == "conv"] == ["stem", "body"]
    assert compare(before, after) <= TOLERANCE


DECLINED = """
- conv2d: {out: 4, kernel: 3, padding: 1}
  in: x
  id: shared
- conv2d: {out: 4, kernel: 1}
  in: x
  id: shared_partner
- add:
  in: [shared, shared_partner]
  id: other_user
- conv2d: {out: 4, kernel: 5}
  in: x
  id: stride_one
- conv2d: {out: 4, kernel: 1, stride: 2}
  in: x
  id: stride_two
- add:
  in: [stride_one, stride_two]
  id: strides
- conv2d: {out: 4, kernel: 3, padding: 2, dilation: 2}
  in: x
  id: dilation_two
- conv2d: {out: 4, kernel: 3, padding: 1}
  in: x
  id: dilation_one
- add:
  in: [dilation_two, dilation_one]
  id: dilations
- conv2d: {out: 4, kernel: 3, padding: 1, groups: 2}
  in: x
  id: grouped
- conv2d: {out: 4, kernel: 1}
  in: x
  id: ungrouped
- add:
  in: [grouped, ungrouped]
  id: groups
- conv2d: {out: 4, kernel: 2, dilation: 2, padding: [[0, 2], [0, 2]]}
  in: x
  id: even
- conv2d: {out: 4, kernel: 3, dilation: 2, padding: [[1, 3], [1, 3]]}
  in: x
  id: odd
- add:
  in: [even, odd]
  id: unaligned
- conv2d: {out: 4, kernel: 8}
  in: x
  id: pooled
- conv2d: {out: 4, kernel: 1}
  in: x
  id: full_size
- add:
  in: [pooled, full_size]
  id: broadcast
- conv2d: {out: 4, kernel: [1, 7], padding: [0, 3]}
  in: x
  id: row
- conv2d: {out: 4, kernel: [7, 1], padding: [3, 0]}
  in: x
  id: column
- add:
  in: [row, column]
  id: separable
- conv2d: {out: 4, kernel: 1, stride: 2}
  in: tiny
  id: strided_identity
- add:
  in: [strided_identity, tiny]
  id: identity_stride
"""
OUTPUTS = "[shared, other_user, strides, dilations, groups, unaligned, broadcast, separable, identity_stride]"


def test_declines_name_their_reason() -> None:
    before = compile_spec(DECLINED, "{x: {shape: [N, 4, 8, 8]}, tiny: {shape: [N, 4, 1, 1]}}", OUTPUTS)
    after, merge = run_pass(before, "reparameterize-branches")
    assert not merge.fired
    reasons = {
        name: reason.removeprefix("reparameterize-branches: ") for name, reason in merge.declined.items()
    }
    assert reasons == {
        "other_user": "the output of conv 'shared' has other users",
        "strides": "the convs have different stride",
        "dilations": "the convs have different dilation",
        "groups": "the convs have different groups",
        "unaligned": "the branches' kernel taps do not align on one grid",
        "broadcast": "the add broadcasts its inputs",
        "separable": "merging does not pay: it costs more MACs: 50,176 against 14,336 per sample",
        "identity_stride": "an identity branch needs stride 1, the convs have stride [2, 2]",
    }
    assert compare(before, after, torch_too=False) == 0.0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("computed-weight", "the weights of conv 'pointwise' are computed, not parameters"),
        ("computed-statistics", "the statistics of batch_norm 'identity' are computed, not weights"),
        ("shared-kept-weight", "the weight of conv 'dense' is shared with other ops"),
    ],
)
def test_declines_computed_or_shared_weights(edit: str, reason: str) -> None:
    model = compile_spec(REPVGG, "{x: {shape: [N, 8, 10, 10]}}")
    if edit == "computed-weight":
        rewire(model, "pointwise", 1, computed(model, "neg", "pointwise.weight"))
    elif edit == "computed-statistics":
        rewire(model, "identity", 4, computed(model, "abs", "identity.running_var"))
    else:
        rewire(model, "square", 1, model.graph.value("dense.weight"))
    _, merge = run_pass(model, "reparameterize-branches")
    assert merge.declined["block"] == f"reparameterize-branches: {reason}"
