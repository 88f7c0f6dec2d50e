"""Expressions of issue 10 item 7: natural `log` and `exp`, `pi` and `e`; a computed
`in:` list; `range` bounds as expressions; options that read the input's inferred shape
(`${input.shape[1]}`); limits large enough for a 64 x 49 x 49 window mask, and a located
error past them. Tolerance for numeric parity: 1e-5 relative to the output scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlc.runtime import Session, random_inputs
from dlc.spec.expressions import MAX_COMPREHENSION_ELEMENTS, ExpressionError, evaluate_text
from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import assert_parity, compile_text, write_spec


def test_natural_log_exp_pi_and_e() -> None:
    assert evaluate_text("${log(e)}", {}) == pytest.approx(1.0)
    assert evaluate_text("${exp(log(5))}", {}) == pytest.approx(5.0)
    assert evaluate_text("${log(8, 2)}", {}) == pytest.approx(3.0)
    assert evaluate_text("${pi}", {}) == math.pi
    assert evaluate_text("${e}", {"e": 3}) == 3  # a spec's own names win over the constants


def test_braces_nest_inside_expressions() -> None:
    assert evaluate_text("${[f'branch{i}' for i in range(3)]}", {}) == ["branch0", "branch1", "branch2"]
    assert evaluate_text("${ {'a': 1}['a'] }", {}) == 1
    assert evaluate_text("stage_${i}_${ {0: 'x'}[i] }", {"i": 0}) == "stage_0_x"
    with pytest.raises(ExpressionError, match="unterminated"):
        evaluate_text("${[f'b{i' for i in range(2)]", {})


def test_a_window_mask_fits_the_limits_and_a_larger_table_is_an_error() -> None:
    mask = evaluate_text(
        "${[[[0.0 if (w + i // 7) % 2 == (w + j // 7) % 2 else -100.0 for j in range(49)]"
        " for i in range(49)] for w in range(64)]}",
        {},
    )
    assert np.array(mask).shape == (64, 49, 49)
    assert np.array([0.0] * 160_000).size == len(evaluate_text("${[0.0] * 160000}", {}))
    with pytest.raises(ExpressionError, match=f"more than {MAX_COMPREHENSION_ELEMENTS:,} elements"):
        evaluate_text("${[[0 for j in range(1001)] for i in range(1000)]}", {})


BRANCHES = """
dlc: 1
name: branches
inputs:
  ids: {shape: [N, T], dtype: int64, range: [0, "${vocab}"]}
params:
  vocab: 37
  k: 3
  temperature: "${exp(log(2.0))}"
layers:
  - embedding: {vocab: "${vocab}", dim: 8}
    id: emb
  - linear: 8
    in: emb
    id: branch0
  - linear: 8
    in: emb
    id: branch1
  - linear: 8
    in: emb
    id: branch2
  - concat: {axis: -1}
    in: "${[f'branch{i}' for i in range(k)]}"
    id: joined
  - scale: "${1 / temperature}"
  - transpose: [0, 2, 1]
  - conv1d: {out: "${input.shape[1]}", kernel: 3, padding: 1, groups: "${input.shape[1]}"}
    id: depthwise
"""


def test_computed_inputs_range_and_input_shapes_in_a_spec(tmp_path) -> None:
    model = compile_text(BRANCHES)
    depthwise = model.graph.node("depthwise")
    assert depthwise.attrs.groups == 24 and depthwise.outputs[0].type.shape[1] == 24
    assert model.summary().params == 37 * 8 + 3 * 72 + 24 * 3 + 24
    session = Session(model.onnx_model(), "cpu")
    ids = random_inputs(session, {"N": 64, "T": 16}, seed=0)["ids"]
    assert ids.min() >= 0 and ids.max() < 37 and ids.max() > 30  # drawn from [0, vocab)
    assert_parity(model, tmp_path, dims={"N": 2, "T": 5})
    with_joined = compile_text(BRANCHES + "outputs: [joined, depthwise]\n")
    small = ids[:2, :5]
    weights = with_joined.weights()
    x = weights["emb.weight"][small]
    expected = np.concatenate(
        [x @ weights[f"branch{i}.weight"].T + weights[f"branch{i}.bias"] for i in range(3)], -1
    )
    actual = with_joined.run({"ids": small}, provider="cpu")["joined"]
    assert max_relative_error(expected, actual) <= 1e-5  # branch0, branch1, branch2 in order


def test_depthwise_conv_reads_channels_from_its_input_through_the_cli(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: depthwise
        inputs:
          x: {shape: [N, 12, 9, 9]}
        layers:
          - conv2d: {out: "${input.shape[1]}", kernel: 3, groups: "${input.shape[1]}", bias: false}
          - conv2d: {out: "${2 * inputs[0].shape[1]}", kernel: 1}
        """,
    )
    result = run_cli("summary", str(path))
    assert result.code == 0, result.output
    assert "108" in result.stdout  # 12 * 1 * 3 * 3 depthwise weights
    assert "[N, 24, 7, 7]" in result.stdout


def test_misused_expressions_are_located_errors(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: bad
        inputs:
          x: {shape: [N, 4], range: [0, "${width}"]}
        params:
          width: "w"
        layers:
          - linear: "${input.shape[7]}"
          - concat:
            in: "${[f'branch{i}' for i in range(2)]}"
          - linear: "${lg(2)}"
            in: x
        """,
    )
    result = run_cli("validate", str(path))
    assert result.code == 1 and "Traceback" not in result.output
    out = result.output
    assert f"{path}:5:33: error: `range` bounds are numbers, got 'w'" in out
    assert f"{path}:9:13: error: cannot evaluate 'input.shape[7]': tuple index out of range" in out
    assert f"{path}:11:9: error: unknown layer 'branch0' in `in`" in out
    assert f"{path}:12:13: error: unknown function 'lg'" in out and "did you mean 'log'" in out
