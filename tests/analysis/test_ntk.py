"""The empirical NTK (`dlc.analysis.ntk`, `dlc ntk`) against the explicit J J^T of the full
Jacobian (`torch.func.jacrev`), on small models of three families; blocks against the
unblocked computation; the command line's files and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dlc.analysis.model_function import as_input_tensors, compile_for_analysis, flat_output, model_function
from dlc.analysis.ntk import empirical_ntk
from tests.conftest import run_cli

SPECS = Path(__file__).parent / "specs"
# Spec, input shape of 5 samples.
MODELS = [("small_mlp", (5, 6)), ("small_cnn", (5, 1, 6, 6)), ("small_attention", (5, 4, 8))]
# float32 Jacobians, float64 contraction: agreement to 1e-5 of the kernel's largest entry.
TOLERANCE = 1e-5


def _function_and_inputs(spec: str, shape: tuple[int, ...], seed: int = 0):
    function = model_function(compile_for_analysis(SPECS / f"{spec}.yaml", seed=3))
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return function, as_input_tensors(function, data, "test inputs")


def _explicit_ntk(function, x1, x2) -> np.ndarray:
    """K[i, j, a, b] from the full Jacobians, J1 J2^T, in float64."""

    def jacobian(inputs) -> torch.Tensor:
        rows = torch.func.jacrev(lambda p: flat_output(function, p, inputs))(function.parameters)
        samples, outputs = next(iter(rows.values())).shape[:2]
        return (
            torch.cat([r.reshape(samples * outputs, -1) for r in rows.values()], 1).double(),
            samples,
            outputs,
        )

    (j1, n1, o), (j2, n2, _) = jacobian(x1), jacobian(x2)
    return (j1 @ j2.T).reshape(n1, o, n2, o).permute(0, 2, 1, 3).numpy()


@pytest.mark.parametrize(("spec", "shape"), MODELS)
@pytest.mark.parametrize("method", ["jacobian", "products"])
def test_ntk_equals_explicit_jacobian_product(spec: str, shape: tuple[int, ...], method: str) -> None:
    function, x = _function_and_inputs(spec, shape)
    kernel = empirical_ntk(function, x, mode="full", method=method)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        expected = _explicit_ntk(function, x, x)
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(kernel - expected).max() <= TOLERANCE * scale


@pytest.mark.parametrize(("spec", "shape"), MODELS)
def test_chunked_ntk_equals_unchunked(spec: str, shape: tuple[int, ...]) -> None:
    function, x = _function_and_inputs(spec, shape)
    whole = empirical_ntk(function, x, mode="full", chunk=shape[0])
    scale = np.abs(whole).max()
    for chunk in (1, 2):
        for method in ("jacobian", "products"):
            blocked = empirical_ntk(function, x, mode="full", chunk=chunk, method=method)
            assert np.abs(blocked - whole).max() <= TOLERANCE * scale, (chunk, method)


def test_cross_kernel_modes_are_views_of_the_full_kernel() -> None:
    function, x1 = _function_and_inputs("small_mlp", (4, 6))
    _, x2 = _function_and_inputs("small_mlp", (3, 6), seed=1)
    full = empirical_ntk(function, x1, x2, mode="full", chunk=2)
    expected = _explicit_ntk(function, x1, x2)
    assert full.shape == (4, 3, 3, 3)
    assert np.abs(full - expected).max() <= TOLERANCE * np.abs(expected).max()
    per_output = empirical_ntk(function, x1, x2, mode="per-output")
    np.testing.assert_allclose(per_output, np.diagonal(full, axis1=2, axis2=3), rtol=1e-6, atol=1e-9)
    trace = empirical_ntk(function, x1, x2, mode="trace")
    np.testing.assert_allclose(trace, np.trace(full, axis1=2, axis2=3), rtol=1e-6, atol=1e-9)


def test_python_api_ntk_matches_the_analysis_module() -> None:
    model = compile_for_analysis(SPECS / "small_mlp.yaml", seed=3)
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    kernel = model.ntk(x)
    function = model_function(model)
    expected = empirical_ntk(function, as_input_tensors(function, x, "x"), mode="trace")
    np.testing.assert_allclose(kernel, expected, rtol=1e-6)
    assert model.ntk(x, x[:2], mode="full").shape == (4, 2, 3, 3)


def test_cli_ntk_writes_the_kernel_and_a_heat_map(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=data)
    output = tmp_path / "k.npz"
    result = run_cli(
        "ntk",
        str(SPECS / "small_mlp.yaml"),
        "--inputs",
        str(tmp_path / "x.npz"),
        "--seed",
        "3",
        "--chunk",
        "2",
        "-o",
        str(output),
    )
    assert result.code == 0, result.output
    assert "NTK of 'out' (trace, 83 parameters): shape [5, 5]" in result.stdout
    function, x = _function_and_inputs("small_mlp", (5, 6))
    expected = np.trace(_explicit_ntk(function, x, x), axis1=2, axis2=3)
    kernel = np.load(output)["kernel"]
    assert np.abs(kernel - expected).max() <= TOLERANCE * np.abs(expected).max()
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_ntk_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "wrong.npz", x=np.zeros((3, 5), np.float32))
    np.savez(tmp_path / "other.npz", z=np.zeros((3, 6), np.float32))
    spec = str(SPECS / "small_mlp.yaml")
    shape = run_cli("ntk", spec, "--inputs", str(tmp_path / "wrong.npz"))
    assert shape.code == 1 and "array 'x' has shape [3, 5], but input 'x' is [N, 6]" in shape.stderr
    missing = run_cli("ntk", spec, "--inputs", str(tmp_path / "other.npz"))
    assert missing.code == 1 and "has no array named 'x'" in missing.stderr
    output = run_cli("ntk", spec, "--inputs", str(tmp_path / "wrong.npz"), "--outputs", "nope")
    assert output.code == 1 and "the model has no output 'nope'" in output.stderr
    onnx = run_cli("ntk", str(tmp_path / "model.onnx"), "--inputs", str(tmp_path / "wrong.npz"))
    assert onnx.code == 1 and "dlc ntk needs a spec (.yaml)" in onnx.stderr
    for result in (shape, missing, output, onnx):
        assert "Traceback" not in result.stderr


def test_default_blocks_fit_the_memory_budget(monkeypatch) -> None:
    """Without --chunk, blocks hold at most DEFAULT_BLOCK_BYTES of Jacobian rows: a budget
    of two samples' rows gives blocks of one sample, and the same kernel."""
    from dlc.analysis import ntk

    function, x = _function_and_inputs("small_mlp", (5, 6))
    whole = empirical_ntk(function, x, mode="full", chunk=5)
    seen: list[int] = []
    original = ntk.jacobian_rows

    def recording(function, inputs):
        seen.append(inputs[0].shape[0])
        return original(function, inputs)

    monkeypatch.setattr(ntk, "jacobian_rows", recording)
    monkeypatch.setattr(ntk, "DEFAULT_BLOCK_BYTES", 2 * 3 * function.parameter_count * 4)  # 3 outputs
    blocked = empirical_ntk(function, x, mode="full")
    assert max(seen) == 1
    assert np.abs(blocked - whole).max() <= TOLERANCE * np.abs(whole).max()
