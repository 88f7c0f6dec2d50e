"""specs/recurrent/elmo.yaml: its counts at full size (reference_models.json), and at a
reduced size its outputs against an independent float64 forward pass written from
bilm-tf / AllenNLP's biLM (character CNN, highway, projection, two LSTMP layers per
direction with a skip connection, ELMo's three masked layers), in ONNX Runtime and in the
ejected module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dlc
from tests.conftest import SPECS

ELMO = SPECS / "recurrent" / "elmo.yaml"
# Small enough to run in a test: the same network with narrower layers.
REDUCED = {
    "max_characters": 8,
    "filters": [[1, 4], [2, 4], [3, 8]],
    "cell": 24,
    "projection": 6,
    "clip": 0.5,
}


def test_full_size_counts_are_the_references() -> None:
    model = dlc.compile(ELMO, opt_level=0)
    summary = model.summary({"N": 1, "T": 20})
    assert summary.params == 93_600_864  # single-bias cells, as bilm-tf and AllenNLP
    assert summary.macs == 2_042_634_240  # 20 tokens of 50 characters
    layers = {layer.name: layer.params for layer in summary.layers}
    assert layers["char_cnn"] == 4_192 + 199_168  # character embedding 262 x 16 + convolutions
    assert layers["highways"] == 16_785_408
    assert layers["token_embedding"] == 1_049_088
    cells = [f"{direction}_layer_{k}" for direction in ("forward", "backward") for k in (0, 1)]
    assert [layers[cell] for cell in cells] == [18_890_752] * 4
    torch_biases = dlc.compile(ELMO, opt_level=0, overrides={"torch_biases": True}).summary()
    assert torch_biases.params == 93_666_400  # nn.LSTM(512, 4096, proj_size=512) x 4
    names = {node.attrs.name for node in model.graph.parameters()}
    assert {
        "forward_layer_0.input_linearity.weight",
        "backward_layer_1.state_linearity.bias",
        "backward_layer_1.state_projection.weight",
        "char_cnn.char_conv_6.weight",
    } <= names


def lstmp_reference(
    w: dict, prefix: str, x: torch.Tensor, lengths: np.ndarray, reverse: bool
) -> torch.Tensor:
    """AllenNLP's LstmCellWithProjection, one sentence and one step at a time, [N, T, p]."""
    clip = REDUCED["clip"]
    y = torch.zeros(*x.shape[:2], REDUCED["projection"], dtype=x.dtype)
    for n, length in enumerate(lengths):
        h = torch.zeros(REDUCED["projection"], dtype=x.dtype)
        c = torch.zeros(REDUCED["cell"], dtype=x.dtype)
        steps = range(length)
        for t in reversed(steps) if reverse else steps:
            gates = (
                w[f"{prefix}.input_linearity.weight"] @ x[n, t] + w[f"{prefix}.state_linearity.weight"] @ h
            )
            i, f, g, o = (gates + w[f"{prefix}.state_linearity.bias"]).chunk(4)
            c = (torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)).clamp(-clip, clip)
            h = (w[f"{prefix}.state_projection.weight"] @ (torch.sigmoid(o) * torch.tanh(c))).clamp(
                -clip, clip
            )
            y[n, t] = h
    return y


def elmo_reference(weights: dict[str, np.ndarray], characters: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    w = {name: torch.from_numpy(value).double() for name, value in weights.items()}
    chars = torch.from_numpy(characters)
    batch, steps, width = chars.shape
    embedded = F.embedding(chars.reshape(-1, width), w["char_cnn.char_embedding.weight"]).transpose(1, 2)
    maxima = [
        F.conv1d(embedded, w[f"char_cnn.char_conv_{i}.weight"], w[f"char_cnn.char_conv_{i}.bias"]).amax(dim=2)
        for i in range(len(REDUCED["filters"]))
    ]
    x = torch.relu(torch.cat(maxima, dim=1))
    for k in range(2):  # bilm-tf's highway: the transform gate g carries (1 - g) of the input
        gate = torch.sigmoid(F.linear(x, w[f"highways.{k}.gate.weight"], w[f"highways.{k}.gate.bias"]))
        transform = torch.relu(
            F.linear(x, w[f"highways.{k}.transform.weight"], w[f"highways.{k}.transform.bias"])
        )
        x = gate * transform + (1 - gate) * x
    tokens = F.linear(x, w["token_embedding.weight"], w["token_embedding.bias"]).reshape(batch, steps, -1)
    layers = [torch.cat([tokens, tokens], dim=-1)]
    outputs = {}
    for direction in ("forward", "backward"):
        first = lstmp_reference(w, f"{direction}_layer_0", tokens, lengths, direction == "backward")
        second = lstmp_reference(w, f"{direction}_layer_1", first, lengths, direction == "backward")
        outputs[direction] = (first, second + first)  # the skip connection around the second layer
    layers += [torch.cat([outputs["forward"][k], outputs["backward"][k]], dim=-1) for k in (0, 1)]
    mask = (torch.arange(steps)[None, :] < torch.from_numpy(lengths)[:, None]).double()[..., None]
    return (torch.stack(layers) * mask).numpy()


@pytest.mark.parametrize("lengths", [[7, 3, 1], [9, 9, 9]], ids=["padded", "full"])
def test_reduced_elmo_matches_an_independent_bilm(lengths: list[int]) -> None:
    model = dlc.compile(ELMO, overrides=REDUCED)
    rng = np.random.default_rng(0)
    characters = rng.integers(1, 262, size=(3, 9, REDUCED["max_characters"])).astype(np.int64)
    characters[:, :, 6:] = 0  # short words: padded characters
    inputs = {"characters": characters, "lengths": np.array(lengths, dtype=np.int64)}
    expected = elmo_reference(model.weights(), characters, inputs["lengths"])
    (onnx_output,) = model.run(inputs, provider="cpu").values()
    with torch.no_grad():
        ejected = model.torch_module()(*(torch.from_numpy(a) for a in inputs.values())).numpy()
    assert onnx_output.shape == expected.shape == (3, 3, 9, 2 * REDUCED["projection"])
    scale = np.abs(expected).max(axis=(1, 2, 3))  # per ELMo layer: [0.5-0.7, 0.06, 0.07]
    assert scale.min() > 0.01
    for output in (onnx_output, ejected):
        assert np.all(np.abs(output - expected).max(axis=(1, 2, 3)) <= 1e-5 * scale)
