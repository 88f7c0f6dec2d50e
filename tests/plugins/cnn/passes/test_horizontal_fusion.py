"""fuse-sibling-convs: sibling convs of one input become one conv and a split, where the cost
model predicts a gain (many small convs). Outputs before and after agree within 1e-6
relative to the output scale (float32: the same products, stacked), in ONNX Runtime and in
the ejected model.py."""

from __future__ import annotations

from .helpers import check_golden, compare, compile_spec, computed, rewire, run_pass

TOLERANCE = 1e-6


def siblings(count: int, channels: int, follow: str = "relu") -> str:
    """A template `mixer`: `count` 1x1 convs of its input, each followed by `follow` (the
    first by relu) and a 3x3 conv, concatenated."""
    body = ""
    for index in range(count):
        bias = ", bias: false" if index == 1 else ""
        body += (
            f"    - conv2d: {{out: {channels}, kernel: 1{bias}}}\n      in: input\n      id: reduce{index}\n"
        )
        body += f"    - {follow if index else 'relu'}\n"
        body += f"    - conv2d: {{out: 2, kernel: 3, padding: 1}}\n      id: next{index}\n"
    inputs = ", ".join(f"next{i}" for i in range(count))
    return f"mixer:\n  body:\n{body}    - concat:\n      in: [{inputs}]\n"


LAYERS = "- mixer:\n  id: mix\n"


def test_many_small_siblings_fuse_with_their_shared_activation() -> None:
    before = compile_spec(LAYERS, "{x: {shape: [N, 16, 4, 4]}}", blocks=siblings(6, 4))
    after, fuse = run_pass(before, "fuse-sibling-convs")
    assert fuse.fired["fuse-sibling-convs"] == 1
    assert not fuse.declined
    ops = [n.op for n in after.graph.toposort() if n.op not in ("input", "parameter")]
    assert ops[:3] == ["conv", "relu", "split"]  # one activation, before the split
    shapes = {name: array.shape for name, array in after.weights().items()}
    assert shapes["mix.fused_conv.weight"] == (24, 16, 1, 1) and shapes["mix.fused_conv.bias"] == (24,)
    assert not any(name.startswith("mix.reduce") for name in shapes)
    assert "torch.split(" in after.torch_source()
    assert compare(before, after) <= TOLERANCE
    check_golden("pass-fuse-sibling-convs", str(after.graph))


def test_siblings_with_different_activations_fuse_and_keep_them() -> None:
    before = compile_spec(LAYERS, "{x: {shape: [N, 16, 4, 4]}}", blocks=siblings(6, 4, follow="tanh"))
    after, fuse = run_pass(before, "fuse-sibling-convs")
    assert fuse.fired["fuse-sibling-convs"] == 1
    ops = [n.op for n in after.graph.toposort() if n.op not in ("input", "parameter")]
    assert ops[:2] == ["conv", "split"] and ops.count("tanh") == 5
    assert compare(before, after) <= TOLERANCE


def test_inception_sized_siblings_are_declined_by_the_cost_model() -> None:
    before = compile_spec(LAYERS, "{x: {shape: [N, 192, 28, 28]}}", blocks=siblings(3, 64))
    after, fuse = run_pass(before, "fuse-sibling-convs")
    assert not fuse.fired
    (reason,) = fuse.declined.values()
    assert reason.startswith(
        "fuse-sibling-convs: fusing 3 sibling convs does not pay: the cost model predicts no gain"
    )
    assert compare(before, after, torch_too=False) == 0.0


def test_computed_weights_are_declined() -> None:
    model = compile_spec(LAYERS, "{x: {shape: [N, 16, 4, 4]}}", blocks=siblings(6, 4))
    rewire(model, "mix.reduce2", 1, computed(model, "neg", "mix.reduce2.weight"))
    _, fuse = run_pass(model, "fuse-sibling-convs")
    assert fuse.declined == {
        "mix.reduce0": "fuse-sibling-convs: the weights of conv 'mix.reduce2' are computed, not parameters"
    }
