"""Property: mutating the options of a small CNN spec never crashes dlc. Kernel sizes,
strides, paddings (ints, lists, pairs, modes), groups and pooling options are replaced
with valid, invalid and absurd values; every mutant either compiles to ONNX or fails
with a located dlc error (never an internal plugin error or a Python exception)."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.errors import DlcError
from dlc.registry import default_registry
from dlc.spec.lower import InternalPluginError

SEED = yaml.safe_load(
    """
dlc: 1
name: small_cnn
inputs:
  image: {shape: [N, 4, 12, 10]}
  sequence: {shape: [N, 6, T]}
layers:
  - conv2d: {out: 8, kernel: 3, stride: 1, padding: same, dilation: 1, groups: 2}
    in: image
  - max_pool2d: {kernel: 2, stride: 2, padding: 0, ceil_mode: true}
  - softmax_pool2d: {kernel: 2, stride: 1, padding: 1}
  - conv_transpose2d: {out: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1}
  - residual:
      - conv2d: {out: 8, kernel: 3, stride: 2, padding: [[1, 1], [0, 2]], padding_mode: reflect}
  - upsample: {scale: 2, mode: bilinear}
  - adaptive_avg_pool2d: [3, 2]
    id: pooled
  - locally_connected2d: {out: 2, kernel: 2}
    in: pooled
  - center_crop:
    in: [pooled, pooled]
  - global_avg_pool: {keepdims: false}
    id: image_out
  - conv1d: {out: 6, kernel: 3, dilation: 2, padding: causal}
    in: sequence
  - avg_pool1d: {kernel: 3, stride: 2, padding: 1, count_include_pad: false}
  - local_response_norm: {size: 3}
  - global_max_pool:
    id: sequence_out
outputs: [image_out, sequence_out]
"""
)

VALUES = st.one_of(
    st.integers(-2, 14),
    st.lists(st.integers(-1, 5), min_size=0, max_size=4),
    st.lists(st.lists(st.integers(-1, 4), min_size=1, max_size=3), min_size=1, max_size=3),
    st.sampled_from(["same", "valid", "causal", "depthwise", "reflect", "circular", "x", None, True, 2.5]),
)


@st.composite
def mutants(draw: st.DrawFn) -> str:
    spec = copy.deepcopy(SEED)
    layers = spec["layers"]
    for _ in range(draw(st.integers(1, 3))):
        layer = layers[draw(st.integers(0, len(layers) - 1))]
        head = next(k for k in layer if k not in ("id", "in"))
        if head == "residual":
            layer, head = layer["residual"][0], "conv2d"
        options = layer[head] if isinstance(layer[head], dict) else {}
        fields = sorted(default_registry().block(head).config.model_fields)  # the block's own options
        options[draw(st.sampled_from(fields))] = copy.deepcopy(draw(VALUES))
        layer[head] = options
    return yaml.safe_dump(spec, sort_keys=False)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_mutated_cnn_options_compile_or_fail_with_located_errors(text: str) -> None:
    try:
        model = dlc.compile(dlc.load_spec("mutant.yaml", text=text))
        model.onnx_model()
    except InternalPluginError as error:  # a bug, not bad input
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics and all(d.message for d in error.diagnostics)
        assert error.location is not None and error.location.file == "mutant.yaml", error.render()
