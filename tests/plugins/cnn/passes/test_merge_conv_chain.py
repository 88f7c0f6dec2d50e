"""merge-conv-chain: a 1x1 conv merged with the kxk conv before or after it. Outputs before
and after agree within 1e-5 relative to the output scale (float32, random weights; the
merged kernel sums products in another order), in ONNX Runtime and the ejected model.py."""

from __future__ import annotations

from .helpers import check_golden, compare, compile_spec, computed, rewire, run_pass

TOLERANCE = 1e-5

MERGEABLE = """
- conv2d: {out: 16, kernel: 3, stride: 2, padding: [1, 0], dilation: 2}
  in: x
  id: wide
- conv2d: {out: 4, kernel: 1}
  id: reduce
- conv2d: {out: 32, kernel: 1, bias: false}
  in: x
  id: expand
- conv2d: {out: 4, kernel: 3, padding: 1}
  id: spatial
- conv2d: {out: 8, kernel: 3, groups: 2}
  in: x
  id: grouped
- conv2d: {out: 4, kernel: 1, stride: 2, groups: 2}
  id: grouped_reduce
- conv1d: {out: 12, kernel: 5, padding: causal}
  in: seq
  id: temporal
- conv1d: {out: 3, kernel: 1}
  id: mix
"""
INPUTS = "{x: {shape: [N, 4, 9, 9]}, seq: {shape: [N, 2, T]}}"


def test_chains_with_a_1x1_conv_merge_into_one_conv() -> None:
    before = compile_spec(MERGEABLE, INPUTS, "[reduce, spatial, grouped_reduce, mix]")
    after, merge = run_pass(before, "merge-conv-chain")
    assert merge.fired["merge-conv-chain"] == 4
    assert not merge.declined
    convs = {n.name: n for n in after.graph if n.op == "conv"}
    assert set(convs) == {"reduce", "spatial", "grouped_reduce", "mix"}  # the second conv's names
    assert convs["reduce"].attrs.stride == (2, 2) and convs["reduce"].attrs.dilation == (2, 2)
    assert convs["grouped_reduce"].attrs.groups == 2 and convs["grouped_reduce"].attrs.stride == (2, 2)
    shapes = {name: array.shape for name, array in after.weights().items()}
    assert shapes["reduce.weight"] == (4, 4, 3, 3)
    assert shapes["spatial.weight"] == (4, 4, 3, 3)
    assert shapes["grouped_reduce.weight"] == (4, 2, 3, 3)
    assert shapes["mix.weight"] == (3, 2, 5)
    assert "expand.weight" not in shapes and "spatial.bias" in shapes
    assert compare(before, after, dims={"T": 11}) <= TOLERANCE
    check_golden("pass-merge-conv-chain", str(after.graph))


DECLINED = """
- conv2d: {out: 6, kernel: 3, padding: 1}
  in: x
  id: shared
- conv2d: {out: 2, kernel: 1}
  id: after_shared
- conv2d: {out: 6, kernel: 3}
  in: x
  id: three
- conv2d: {out: 2, kernel: 3}
  id: after_three
- conv2d: {out: 8, kernel: 3, groups: 2}
  in: x
  id: grouped
- conv2d: {out: 2, kernel: 1}
  id: ungrouped
- conv2d: {out: 6, kernel: 3}
  in: x
  id: before_padded
- conv2d: {out: 2, kernel: 1, padding: 1}
  id: padded_pointwise
- conv2d: {out: 8, kernel: 1, stride: 2}
  in: x
  id: strided
- conv2d: {out: 2, kernel: 3}
  id: after_strided
- conv2d: {out: 8, kernel: 1}
  in: x
  id: biased
- conv2d: {out: 2, kernel: 3, padding: 1}
  id: after_biased
- conv2d: {out: 2, kernel: 1, bias: false}
  in: x
  id: reduction
- conv2d: {out: 16, kernel: 3}
  id: after_reduction
- add:
  in: [shared, shared]
  id: other_user
- conv1d: {out: 4, kernel: 3, stride: 2}
  in: seq
  id: strided_seq
- conv1d: {out: 2, kernel: 1, stride: 2}
  id: after_strided_seq
"""
OUTPUTS = (
    "[after_shared, after_three, ungrouped, padded_pointwise, after_strided, after_biased, after_reduction, "
    "other_user, after_strided_seq]"
)


def test_declines_name_their_reason() -> None:
    before = compile_spec(DECLINED, "{x: {shape: [N, 4, 8, 8]}, seq: {shape: [N, 2, T]}}", OUTPUTS)
    after, merge = run_pass(before, "merge-conv-chain")
    # after_strided_seq merges: its output ((T+1)//2)//2 is (T+1)//4, the merged conv's, for
    # every T now that nested floor divisions flatten
    assert merge.fired == {"merge-conv-chain": 1}
    assert "after_strided_seq" not in merge.declined
    reasons = {name: reason.removeprefix("merge-conv-chain: ") for name, reason in merge.declined.items()}
    assert reasons.pop("after_reduction").startswith(
        "merging does not pay: it costs more MACs: 20,736 against 10,880 per sample"
    )
    assert reasons == {
        "after_shared": "the output of conv 'shared' has other users",
        "after_three": "neither conv is 1x1",
        "ungrouped": "the convs have different groups (2 and 1)",
        "padded_pointwise": "the 1x1 conv 'padded_pointwise' pads its input: its border outputs are its bias alone",
        "after_strided": "the 1x1 conv 'strided' has stride [2, 2] before a kxk conv",
        "after_biased": "a 1x1 conv with bias before a zero-padded kxk conv is not exact at the borders",
    }
    assert compare(before, after, torch_too=False, dims={"T": 9}) <= TOLERANCE


def test_a_merge_the_cost_model_rejects_is_declined_even_with_fewer_macs(monkeypatch) -> None:
    from dlc.plugins.cnn.passes import cost_estimates

    monkeypatch.setattr(cost_estimates, "seconds", lambda shapes: float(len(shapes) == 1))
    before = compile_spec(MERGEABLE, INPUTS, "[reduce, spatial, grouped_reduce, mix]")
    _, merge = run_pass(before, "merge-conv-chain")
    assert merge.declined["reduce"] == (
        "merge-conv-chain: merging does not pay: the cost model predicts no gain: 1000000.0 us against 0.0 us"
    )


def test_computed_weights_of_the_first_conv_are_declined() -> None:
    model = compile_spec(
        "- conv2d: {out: 3, kernel: 3}\n  in: x\n  id: a\n- conv2d: {out: 2, kernel: 1}\n  id: b\n", INPUTS
    )
    rewire(model, "a", 1, computed(model, "neg", "a.weight"))
    _, merge = run_pass(model, "merge-conv-chain")
    assert merge.declined == {"b": "merge-conv-chain: the weights of conv 'a' are computed, not parameters"}
