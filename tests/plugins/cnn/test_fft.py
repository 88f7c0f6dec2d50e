"""FFT convolution: algorithm selection, forced algorithms, numerical agreement with the
direct convolution (within 1e-4 relative to the output scale), and `dlc tune`."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest
import torch

import dlc
from dlc.runtime import Session
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS, run_cli

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "golden")
TOLERANCE = 1e-4


def outputs(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return Session(model.onnx_model(), "cpu").run(inputs)["y"]


def conv_spec(text: str):
    header = "dlc: 1\nname: c\n"
    return load_spec("c.yaml", text=header + textwrap.dedent(text))


CASES = {
    "1d-dense-causal-dilated": """
        inputs: {x: {shape: [N, 6, 300]}}
        layers:
          - conv1d: {out: 5, kernel: 9, dilation: 3, padding: causal}
            id: y
        """,
    "1d-grouped-strided": """
        inputs: {x: {shape: [N, 8, 257]}}
        layers:
          - conv1d: {out: 4, kernel: 31, groups: 2, stride: 2, padding: 15}
            id: y
        """,
    "1d-depthwise": """
        inputs: {x: {shape: [N, 7, 1000]}}
        layers:
          - conv1d: {out: 7, kernel: 101, groups: depthwise, padding: same}
            id: y
        """,
    "2d-dense": """
        inputs: {x: {shape: [N, 5, 23, 19]}}
        layers:
          - conv2d: {out: 6, kernel: 5, padding: 2}
            id: y
        """,
    "2d-depthwise-large-kernel": """
        inputs: {x: {shape: [N, 8, 28, 28]}}
        layers:
          - conv2d: {out: 8, kernel: 13, padding: 6, groups: depthwise, bias: false}
            id: y
        """,
    "2d-grouped-strided-dilated": """
        inputs: {x: {shape: [N, 6, 20, 17]}}
        layers:
          - conv2d: {out: 9, kernel: [3, 5], stride: [2, 1], dilation: [2, 1], groups: 3, padding: [[1, 2], [0, 3]]}
            id: y
        """,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forced_fft_agrees_with_direct(name: str) -> None:
    spec = conv_spec(CASES[name])
    direct = dlc.compile(spec, pass_options={"conv_algo": "direct"})
    fft = dlc.compile(spec, pass_options={"conv_algo": "fft"})
    assert [n.op for n in fft.graph].count("fft_conv") == 1
    assert "fft_conv" not in [n.op for n in direct.graph]
    x_shape = [3 if not isinstance(d, int) else d for d in direct.graph.inputs()[0].output.type.shape]
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    reference = outputs(direct, {"x": x})
    assert max_relative_error(reference, outputs(fft, {"x": x})) <= TOLERANCE
    torch_out = fft.torch_module()(torch.from_numpy(x)).detach().numpy()
    assert max_relative_error(reference, torch_out) <= TOLERANCE


def test_auto_picks_fft_for_a_long_kernel_and_direct_for_a_small_one() -> None:
    long = dlc.compile(SPECS / "bench/long_conv1d.yaml", overrides={"length": 8192, "taps": 1023})
    assert [n.op for n in long.graph] == ["input", "parameter", "fft_conv"]
    small = dlc.compile(SPECS / "cnn/lenet5.yaml")
    assert "fft_conv" not in [n.op for n in small.graph]
    notes = [note for r in long.pass_records if r.name == "select-conv-algorithm" for note in r.notes]
    assert notes and notes[0].startswith("y: fft (cheaper; predicted direct")


def test_symbolic_lengths_stay_direct_with_a_reason() -> None:
    model = dlc.compile(SPECS / "cnn/wavenet.yaml", pass_options={"conv_algo": "fft"})
    assert "fft_conv" not in [n.op for n in model.graph]
    notes = [n for r in model.pass_records if r.name == "select-conv-algorithm" for n in r.notes]
    assert any("are symbolic" in n for n in notes)


def test_long_conv_at_O2_agrees_with_O0() -> None:
    spec = load_spec(SPECS / "bench/long_conv1d.yaml", {"length": 4096, "taps": 511})
    x = np.random.default_rng(1).standard_normal((1, 64, 4096)).astype(np.float32)
    reference = outputs(dlc.compile(spec, opt_level=0), {"x": x})
    optimized = dlc.compile(spec)
    assert "fft_conv" in [n.op for n in optimized.graph]
    assert max_relative_error(reference, outputs(optimized, {"x": x})) <= TOLERANCE


def test_selection_golden_ir() -> None:
    model = dlc.compile(SPECS / "bench/long_conv1d.yaml", overrides={"length": 8192, "taps": 1023})
    text = str(model.graph) + "\n"
    path = os.path.join(GOLDEN, "pass-select-conv-algorithm.ir")
    if os.environ.get("DLC_UPDATE_GOLDEN") == "1":
        with open(path, "w") as handle:
            handle.write(text)
    with open(path) as handle:
        assert handle.read() == text


def test_print_ir_shows_the_choice_and_the_predicted_costs() -> None:
    result = run_cli(
        "compile", "specs/bench/long_conv1d.yaml", "--print-ir", "--set", "length=8192", "--set", "taps=1023"
    )
    assert result.code == 0, result.output
    assert "fft_conv(" in result.stdout and "predicted_us=" in result.stdout
    assert "#   y: fft (cheaper; predicted direct" in result.stdout
    forced = run_cli(
        "compile",
        "specs/bench/long_conv1d.yaml",
        "--print-ir",
        "--conv-algo",
        "direct",
        "--set",
        "length=8192",
        "--set",
        "taps=1023",
    )
    assert "#   y: direct (forced;" in forced.stdout and "fft_conv(" not in forced.stdout


def test_tune_stores_a_calibration_that_compiles_use(tmp_path) -> None:
    env = {"DLC_CACHE_DIR": str(tmp_path)}
    result = run_cli("tune", "--quick", env=env)
    assert result.code == 0, result.output
    assert "GEMM peak" in result.stdout
    stored = json.loads((tmp_path / "conv_cost.json").read_text())
    assert stored["source"] == "dlc tune --quick" and stored["gemm_peak"] > 1e8
    assert stored["depthwise_rate"] > 1e8 and stored["depthwise_rate_1d"] > 1e8
    from dlc.plugins.cnn.cost import CostModel

    previous = os.environ["DLC_CACHE_DIR"]
    os.environ["DLC_CACHE_DIR"] = str(tmp_path)
    try:
        assert CostModel.load().constants.source == "dlc tune --quick"
        (tmp_path / "conv_cost.json").write_text("not json")
        assert CostModel.load().constants.source == "defaults"  # a broken file falls back
    finally:
        os.environ["DLC_CACHE_DIR"] = previous


def test_depthwise_convs_are_costed_at_their_rank_s_rate() -> None:
    # ONNX Runtime runs 1-D depthwise convs several times slower per MAC than 2-D ones
    # (measured here: 17 against 76 GMAC/s), so each rank has its own calibrated rate.
    from dlc.plugins.cnn.cost import ConvShape, CostConstants, CostModel

    model = CostModel(CostConstants(depthwise_rate=1e12, depthwise_rate_1d=1e9, overhead=0.0))
    one_d = ConvShape(1, 64, 64, (255,), (4096,), (4096,), groups=64)
    two_d = ConvShape(1, 64, 64, (31, 31), (56, 56), (56, 56), groups=64)
    assert model.direct_conv(one_d) == pytest.approx(one_d.macs / 1e9, rel=1e-9)
    assert model.direct_conv(two_d) == pytest.approx(two_d.macs / 1e12, rel=1e-9)
