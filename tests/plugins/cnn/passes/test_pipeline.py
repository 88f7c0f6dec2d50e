"""The CNN passes together, in -O2 order: each one exposes work for the next (a pad folded
into a conv, then a batch norm folded into it, then the 1x1 conv before it merged into it; a
RepVGG block's norms folded, then its branches merged). Outputs agree with -O0 within 1e-5
relative to the output scale, in ONNX Runtime and the ejected model.py."""

from __future__ import annotations

from .helpers import compare, compile_spec, run_pipeline

LAYERS = """
- conv2d: {out: 16, kernel: 1, bias: false}
  in: x
  id: expand
- pad: {padding: 1}
- conv2d: {out: 8, kernel: 3, bias: false}
  id: spatial
- batch_norm:
  id: spatial_bn
- relu:
  id: features
- conv2d: {out: 8, kernel: 3, padding: 1, bias: false}
  id: dense
- batch_norm:
  id: dense_bn
- conv2d: {out: 8, kernel: 1, bias: false}
  in: features
  id: pointwise
- batch_norm:
  id: pointwise_bn
- batch_norm:
  in: features
  id: identity_bn
- add:
  in: [dense_bn, pointwise_bn, identity_bn]
- relu
"""


def test_the_passes_compose_in_pipeline_order() -> None:
    before = compile_spec(LAYERS, "{x: {shape: [N, 8, 6, 6]}}")
    after = run_pipeline(before)
    assert [n.op for n in after.graph.toposort() if n.op not in ("input", "parameter")] == [
        "conv",
        "relu",
        "conv",
        "relu",
    ]
    fired = {record.name: record.notes for record in after.pass_records if record.modified}
    assert fired == {
        "fold-pad-into-conv": ("fold-pad-into-conv: fired 1x",),
        "fold-batch-norm": ("fold-batch-norm: fired 3x",),
        "merge-conv-chain": ("merge-conv-chain: fired 1x",),
        "reparameterize-branches": ("reparameterize-branches: fired 1x",),
    }  # and the rewrites leave nothing for dead-code elimination
    assert set(after.weights()) == {"spatial.weight", "spatial.bias", "dense.weight", "dense.bias"}
    assert compare(before, after) <= 1e-5
