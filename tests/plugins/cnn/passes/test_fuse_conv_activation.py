"""fuse-conv-activation (opt-in): conv + bias + activation (+ residual add) as ONNX Runtime's
FusedConv. Outputs before and after agree within 1e-6 relative to the output scale (float32:
the same arithmetic in one kernel), in ONNX Runtime and the ejected model.py; --portable
output never holds it."""

from __future__ import annotations

import dlc
from dlc.passes.manager import build_pipeline
from dlc.registry import default_registry
from tests.conftest import SPECS, run_cli

from .helpers import check_golden, compare, compile_spec, run_pass

TOLERANCE = 1e-6

FUSABLE = """
- conv2d: {out: 4, kernel: 3, padding: 1}
  in: x
  id: stem
- relu
- conv2d: {out: 4, kernel: 3, padding: 1, bias: false}
  id: body
- add:
  in: [body, relu_0]
- relu:
  id: block
- conv2d: {out: 6, kernel: 1}
  id: leaky
- leaky_relu: 0.2
- conv2d: {out: 6, kernel: 1}
  id: gate
- sigmoid
- conv1d: {out: 3, kernel: 3}
  in: seq
  id: temporal
- tanh:
  id: squashed
"""
INPUTS = "{x: {shape: [N, 3, 6, 6]}, seq: {shape: [N, 2, T]}}"


def ops(model) -> list[str]:
    return [n.op for n in model.graph.toposort() if n.op not in ("input", "parameter")]


def test_conv_activation_and_residual_become_fused_conv() -> None:
    before = compile_spec(FUSABLE, INPUTS, "[sigmoid_0, squashed]")
    after, fuse = run_pass(before, "fuse-conv-activation")
    assert fuse.fired["fuse-conv-activation"] == 5
    assert not fuse.declined
    assert ops(after) == ["fused_conv"] * 5
    body = after.graph.node("body")  # the fused node keeps the conv's name
    assert body.attrs.activation == "relu"
    assert body.inputs[2] is None and body.inputs[3].name == "stem"
    assert after.graph.node("leaky").attrs.alpha == 0.2
    model = after.onnx_model()
    assert sum(n.op_type == "FusedConv" and n.domain == "com.microsoft" for n in model.graph.node) == 5
    assert "x = torch.relu(self.body(x) + x)" in after.torch_source()
    assert compare(before, after, dims={"T": 8}) <= TOLERANCE
    check_golden("pass-fuse-conv-activation", str(after.graph))


def test_declines_name_their_reason() -> None:
    layers = """
    - conv2d: {out: 4, kernel: 3, padding: 1}
      in: x
      id: watched
    - relu:
      id: watched_relu
    - add:
      in: [watched_relu, watched]
      id: both
    - conv2d: {out: 4, kernel: 1}
      id: summed
    - add:
      in: [summed, both]
      id: kept_sum
    - relu:
      id: after_kept_sum
    - add:
      in: [after_kept_sum, kept_sum]
      id: final
    - conv2d: {out: 1, kernel: 1}
      id: single_channel
    - add:
      in: [single_channel, final]
      id: broadcast
    - relu:
      id: after_broadcast
    """
    before = compile_spec(layers, "{x: {shape: [N, 3, 6, 6]}}")
    after, fuse = run_pass(before, "fuse-conv-activation")
    assert not fuse.fired
    assert fuse.declined == {
        "watched_relu": "fuse-conv-activation: the output of conv 'watched' has other users",
        "after_kept_sum": "fuse-conv-activation: the output of add 'kept_sum' has other users",
        "after_broadcast": "fuse-conv-activation: add 'broadcast' broadcasts its inputs",
    }
    assert compare(before, after, torch_too=False) == 0.0


def test_portable_output_never_holds_fused_conv() -> None:
    model = compile_spec(FUSABLE, INPUTS, "[sigmoid_0, squashed]")
    after, fuse = run_pass(model, "fuse-conv-activation", portable=True)
    assert not fuse.fired
    assert set(fuse.declined.values()) == {
        "fuse-conv-activation: --portable output keeps to standard ONNX ops"
    }
    onnx_model = after.onnx_model()
    assert not any(n.domain == "com.microsoft" for n in onnx_model.graph.node)
    assert all(opset.domain in ("", "ai.onnx") for opset in onnx_model.opset_import)


def test_it_is_opt_in_and_named_by_passes() -> None:
    registry = default_registry()
    assert "fuse-conv-activation" not in [p.name for p in build_pipeline(registry, 2)]
    listed = run_cli("passes")
    assert ["opt-in", "fuse-conv-activation"] in [line.split()[:2] for line in listed.stdout.splitlines()]
    spec = SPECS / "cnn" / "resnet18.yaml"
    overrides = {"image": 32, "width": 8}
    default = dlc.compile(spec, overrides=overrides).onnx_model()
    assert not any(n.op_type == "FusedConv" for n in default.graph.node)
    names = [p.name for p in build_pipeline(registry, 2)] + ["fuse-conv-activation"]
    fused = dlc.compile(spec, overrides=overrides, passes=names)
    assert sum(n.op_type == "FusedConv" for n in fused.onnx_model().graph.node) == 17
    portable = dlc.compile(spec, overrides=overrides, passes=names, portable=True).onnx_model()
    assert not any(n.op_type == "FusedConv" for n in portable.graph.node)
