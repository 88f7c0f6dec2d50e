"""`lstmp`, ELMo's cell (one bias, clipping, one direction), against a step-by-step float64
numpy loop written from AllenNLP's LstmCellWithProjection, and against torch's own
nn.LSTM(proj_size=...) where the two are the same cell (no clipping, b = b_ih + b_hh).
ONNX Runtime and the ejected module agree with both within 1e-5 (max abs error)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

import dlc
from dlc.spec.loader import load_spec

FEATURES, HIDDEN, PROJECTION = 5, 6, 3
TOLERANCE = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def spec(options: dict, batch_first: bool = False) -> dict:
    sequence = ["N", "T", FEATURES] if batch_first else ["T", "N", FEATURES]
    inputs = {"x": {"shape": sequence}}
    names = ["x"]
    if options.get("lengths"):
        inputs["lengths"] = {"shape": ["N"], "dtype": "int64"}
        names.append("lengths")
    if options.get("initial_state"):
        inputs["h0"] = {"shape": [1, "N", PROJECTION]}
        inputs["c0"] = {"shape": [1, "N", HIDDEN]}
        names += ["h0", "c0"]
    layer = {"lstmp": {"hidden": HIDDEN, "proj_size": PROJECTION, "batch_first": batch_first, **options}}
    layer |= {"id": "cell", "in": names}
    return {
        "dlc": 1,
        "name": "cell",
        "inputs": inputs,
        "layers": [layer],
        "outputs": {"y": "cell", "h": "cell.h", "c": "cell.c"},
    }


def step_by_step(
    weights: dict[str, np.ndarray], inputs: dict[str, np.ndarray], options: dict
) -> dict[str, np.ndarray]:
    """One sequence at a time, cut to its length, one step at a time (time-first)."""
    w = {name.removeprefix("cell."): value.astype(np.float64) for name, value in weights.items()}
    x = inputs["x"].astype(np.float64)
    steps, batch = x.shape[:2]
    lengths = inputs.get("lengths", np.full(batch, steps))
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    y = np.zeros((steps, batch, PROJECTION))
    finals = {"h": np.zeros((1, batch, PROJECTION)), "c": np.zeros((1, batch, HIDDEN))}
    for n in range(batch):
        h = inputs["h0"][0, n].astype(np.float64) if "h0" in inputs else np.zeros(PROJECTION)
        c = inputs["c0"][0, n].astype(np.float64) if "c0" in inputs else np.zeros(HIDDEN)
        order = range(lengths[n])
        for t in reversed(order) if options.get("reverse") else order:
            gates = w["input_linearity.weight"] @ x[t, n] + w["state_linearity.weight"] @ h
            i, f, g, o = np.split(gates + w["state_linearity.bias"], 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            if options.get("cell_clip"):
                c = np.clip(c, -options["cell_clip"], options["cell_clip"])
            h = w["state_projection.weight"] @ (sigmoid(o) * np.tanh(c))
            if options.get("proj_clip"):
                h = np.clip(h, -options["proj_clip"], options["proj_clip"])
            y[t, n] = h
        finals["h"][0, n], finals["c"][0, n] = h, c
    return {"y": y, **finals}


def random_inputs(options: dict, steps: int = 7, batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal((steps, batch, FEATURES)).astype(np.float32)}
    if options.get("lengths"):
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[:2] = [steps, 1]
        inputs["lengths"] = lengths.astype(np.int64)
    if options.get("initial_state"):
        inputs["h0"] = rng.standard_normal((1, batch, PROJECTION)).astype(np.float32)
        inputs["c0"] = rng.standard_normal((1, batch, HIDDEN)).astype(np.float32)
    return inputs


def run_both(model: dlc.CompiledModel, inputs: dict[str, np.ndarray], batch_first: bool) -> list[dict]:
    """(ONNX Runtime, ejected module) outputs, time-first."""
    fed = dict(inputs)
    if batch_first:
        fed["x"] = inputs["x"].transpose(1, 0, 2).copy()
    onnx_outputs = model.run(fed, provider="cpu")
    with torch.no_grad():
        torch_outputs = model.torch_module()(*(torch.from_numpy(a) for a in fed.values()))
    torch_outputs = dict(zip(model.graph.outputs, (t.numpy() for t in torch_outputs), strict=True))
    if batch_first:
        for outputs in (onnx_outputs, torch_outputs):
            outputs["y"] = outputs["y"].transpose(1, 0, 2)
    return [onnx_outputs, torch_outputs]


OPTIONS = [
    dict(zip(("reverse", "lengths", "initial_state", "cell_clip"), combination, strict=True))
    for combination in itertools.product((False, True), (False, True), (False, True), (None, 0.3))
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(k for k, v in o.items() if v) or "plain")
def test_onnx_and_ejected_module_match_the_step_by_step_cell(options: dict) -> None:
    options = {k: v for k, v in options.items() if v} | ({"proj_clip": 0.2} if options["cell_clip"] else {})
    batch_first = bool(options.get("reverse")) != bool(options.get("lengths"))  # both layouts, mixed
    model = dlc.compile(
        load_spec("cell.yaml", text=yaml.safe_dump(spec(options, batch_first), sort_keys=False))
    )
    inputs = random_inputs(options)
    expected = step_by_step(model.weights(), inputs, options)
    for outputs in run_both(model, inputs, batch_first):
        for name, want in expected.items():
            assert np.abs(outputs[name] - want).max() <= TOLERANCE, name
    if options.get("cell_clip"):  # the clips act: without them the outputs differ
        unclipped = step_by_step(model.weights(), inputs, {"reverse": options.get("reverse")})
        assert np.abs(unclipped["y"] - expected["y"]).max() > 0.01


@pytest.mark.parametrize("input_bias", [False, True], ids=["one-bias", "input-bias"])
def test_without_clipping_it_is_torchs_lstm(input_bias: bool, tmp_path) -> None:
    """One bias b = b_ih + b_hh, or with `input_bias` torch's two under AllenNLP's names."""
    torch.manual_seed(0)
    reference = torch.nn.LSTM(FEATURES, HIDDEN, proj_size=PROJECTION).eval()
    state = reference.state_dict()
    weights = {
        "cell.input_linearity.weight": state["weight_ih_l0"],
        "cell.state_linearity.weight": state["weight_hh_l0"],
        "cell.state_linearity.bias": state["bias_hh_l0"],
        "cell.state_projection.weight": state["weight_hr_l0"],
    }
    if input_bias:
        weights["cell.input_linearity.bias"] = state["bias_ih_l0"]
    else:
        weights["cell.state_linearity.bias"] = state["bias_ih_l0"] + state["bias_hh_l0"]
    save_file(weights, str(tmp_path / "cell.safetensors"))
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(spec({"input_bias": input_bias}), sort_keys=False))
    model = dlc.compile(path, weights=tmp_path / "cell.safetensors")
    assert model.summary().params == sum(t.numel() for t in state.values()) - (
        0 if input_bias else 4 * HIDDEN
    )
    inputs = random_inputs({})
    with torch.no_grad():
        y, (h, c) = reference(torch.from_numpy(inputs["x"]))
    for outputs in run_both(model, inputs, batch_first=False):
        for name, want in (("y", y), ("h", h), ("c", c)):
            assert np.abs(outputs[name] - want.numpy()).max() <= TOLERANCE, name


def test_parameters_are_allennlps_with_its_initialization() -> None:
    model = dlc.compile(load_spec("cell.yaml", text=yaml.safe_dump(spec({"reverse": True}), sort_keys=False)))
    weights = model.weights()
    assert {k: v.shape for k, v in weights.items()} == {
        "cell.input_linearity.weight": (4 * HIDDEN, FEATURES),
        "cell.state_linearity.weight": (4 * HIDDEN, PROJECTION),
        "cell.state_linearity.bias": (4 * HIDDEN,),
        "cell.state_projection.weight": (PROJECTION, HIDDEN),
    }
    assert model.summary().params == 4 * HIDDEN * (FEATURES + PROJECTION + 1) + PROJECTION * HIDDEN
    assert model.summary({"T": 7, "N": 1}).macs == 7 * (
        4 * HIDDEN * (FEATURES + PROJECTION) + PROJECTION * HIDDEN
    )
    for name, columns in (("input_linearity", FEATURES), ("state_linearity", PROJECTION)):
        for block in np.split(weights[f"cell.{name}.weight"].astype(np.float64), 4):  # [h, cols], h > cols
            np.testing.assert_allclose(block.T @ block, np.eye(columns), atol=1e-5)
    np.testing.assert_array_equal(
        weights["cell.state_linearity.bias"], np.repeat([0.0, 1.0, 0.0, 0.0], HIDDEN)
    )
    source = model.torch_source()
    assert f"self.cell = LSTMP({FEATURES}, {HIDDEN}, {PROJECTION}, reverse=True)" in source


def test_block_orthogonal_is_each_blocks_q_with_rs_diagonal_positive() -> None:
    # torch's orthogonal_: Q of the draw's QR, signed so that R's diagonal is positive. The
    # QR runs in float64; a float32 draw gives float32 values, each rounded once.
    from dlc.plugins.recurrent.lstmp import block_orthogonal

    rng = np.random.default_rng(0)
    drawn = rng.standard_normal((4 * 8, 5)).astype(np.float32)
    result = block_orthogonal(8)(drawn.copy())
    assert result.dtype == np.float32
    for rows in range(0, 32, 8):
        q, block = result[rows : rows + 8].astype(np.float64), drawn[rows : rows + 8].astype(np.float64)
        np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-6)
        r = q.T @ block  # R, upper triangular with a positive diagonal
        np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-5)
        assert (np.diag(r) > 0).all()
        exact, _ = np.linalg.qr(block)
        exact *= np.sign(np.diag(np.linalg.qr(block)[1]))
        np.testing.assert_array_equal(result[rows : rows + 8], exact.astype(np.float32))
    wide = block_orthogonal(2)(rng.standard_normal((4, 6)))  # blocks wider than tall: orthonormal rows
    assert wide.dtype == np.float64
    for rows in (0, 2):
        np.testing.assert_allclose(wide[rows : rows + 2] @ wide[rows : rows + 2].T, np.eye(2), atol=1e-12)
    with pytest.raises(ValueError, match="do not split into blocks of 3"):
        block_orthogonal(3)(np.zeros((4, 2), np.float32))
