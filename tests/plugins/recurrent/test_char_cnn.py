"""`char_cnn` against a direct per-token computation with torch's functional ops (as
AllenNLP's character encoder runs it), in ONNX Runtime and the ejected module (1e-5), and
its parameter count at ELMo's sizes (reference_models.json's breakdown)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dlc
from dlc.spec.loader import load_spec

FILTERS = [[1, 3], [2, 4], [4, 5]]


def compile_encoder(
    shape: str, activation: str = "relu", filters=FILTERS, vocab: int = 30
) -> dlc.CompiledModel:
    text = f"""
    dlc: 1
    name: words
    inputs: {{chars: {{shape: {shape}, dtype: int64}}}}
    layers:
      - char_cnn: {{vocab: {vocab}, dim: 4, filters: {filters}, activation: {activation}, padding_idx: 0}}
        id: encoder
    """
    return dlc.compile(load_spec("words.yaml", text=textwrap.dedent(text)))


def per_token(weights: dict[str, np.ndarray], chars: np.ndarray, activation: str) -> np.ndarray:
    """Each token alone: embed, convolve, max over positions, activate, concatenate."""
    w = {name.removeprefix("encoder."): torch.from_numpy(value) for name, value in weights.items()}
    tokens = torch.from_numpy(chars).reshape(-1, chars.shape[-1])
    rows = []
    for token in tokens:
        embedded = F.embedding(token, w["char_embedding.weight"]).T[None]  # [1, dim, C]
        maxima = [
            F.conv1d(embedded, w[f"char_conv_{i}.weight"], w[f"char_conv_{i}.bias"]).amax(dim=2)
            for i in range(len(FILTERS))
        ]
        rows.append(getattr(torch, activation)(torch.cat(maxima, dim=1))[0])
    return torch.stack(rows).reshape(*chars.shape[:-1], -1).numpy()


@pytest.mark.parametrize(
    ("shape", "activation"), [("[N, T, 9]", "relu"), ("[N, 9]", "tanh")], ids=["tokens", "words-tanh"]
)
def test_matches_a_per_token_computation(shape: str, activation: str) -> None:
    model = compile_encoder(shape, activation)
    sizes = (3, 5, 9) if "T" in shape else (4, 9)
    chars = np.random.default_rng(0).integers(0, 30, size=sizes).astype(np.int64)
    chars[..., 6:] = 0  # padded characters, as ELMo's
    expected = per_token(model.weights(), chars, activation)
    (onnx_output,) = model.run({"chars": chars}, provider="cpu").values()
    with torch.no_grad():
        ejected = model.torch_module()(torch.from_numpy(chars)).numpy()
    assert onnx_output.shape == expected.shape == (*sizes[:-1], 12)
    assert np.abs(onnx_output - expected).max() <= 1e-5
    assert np.abs(ejected - expected).max() <= 1e-5


def test_elmo_sizes_have_the_reference_parameter_count() -> None:
    filters = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
    model = dlc.compile(
        load_spec(
            "elmo_chars.yaml",
            text=textwrap.dedent(
                f"""
                dlc: 1
                name: elmo_chars
                inputs: {{chars: {{shape: [N, T, 50], dtype: int64}}}}
                layers:
                  - char_cnn: {{vocab: 262, dim: 16, filters: {filters}, padding_idx: 0}}
                    id: encoder
                """
            ),
        ),
        opt_level=0,
    )
    summary = model.summary({"N": 1, "T": 1})
    assert summary.params == 4_192 + 199_168  # char_embedding(262x16) + char_cnn
    # Per token: sum over filters of width * 16 * count * (50 - width + 1).
    assert summary.macs == sum(k * 16 * n * (50 - k + 1) for k, n in filters) == 8_808_448
