"""The recurrent zoo specs at full size: parameter and MAC counts against the reference
(reference_models.json: torch's nn.RNN/LSTM/GRU(10, 20), MACs at seq_len 7, batch 1, as
seq_len * G*h*(i+h)) and against the same networks built in torch, whose state_dict
keys the specs reproduce."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dlc
from dlc.plugin_api import format_shape
from tests.conftest import SPECS

RECURRENT = SPECS / "recurrent"


@pytest.mark.parametrize(
    ("spec", "params", "macs_at_7_steps"),
    [("elman", 640, 4_200), ("lstm", 2_560, 16_800), ("gru", 1_920, 12_600)],
)
def test_single_layer_cells_match_the_reference_counts(spec: str, params: int, macs_at_7_steps: int) -> None:
    summary = dlc.compile(RECURRENT / f"{spec}.yaml", opt_level=0).summary({"T": 7, "N": 1})
    assert (summary.params, summary.macs) == (params, macs_at_7_steps)


class WordLanguageModel(nn.Module):
    """pytorch/examples word_language_model's RNNModel (LSTM, untied), Zaremba medium sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.encoder = nn.Embedding(10000, 650)
        self.rnn = nn.LSTM(650, 650, 2, dropout=0.5)
        self.decoder = nn.Linear(650, 10000)


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20000, 128, padding_idx=0)
        self.encoder = nn.GRU(128, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.classifier = nn.Linear(512, 17)


@pytest.mark.parametrize(
    ("spec", "reference", "params", "macs_at_35_steps"),
    [
        # 35 * (2 layers * 4 gates * 650 * (650 + 650) + 650 * 10000)
        ("lstm_lm", WordLanguageModel, 19_780_400, 464_100_000),
        # 35 * (2 directions * 3 gates * 256 * ((128 + 256) + (512 + 256)) + 512 * 17)
        ("bigru_tagger", Tagger, 4_344_337, 62_236_160),
    ],
)
def test_zoo_specs_are_the_torch_networks_with_their_state_dict(
    spec: str, reference: type[nn.Module], params: int, macs_at_35_steps: int
) -> None:
    model = dlc.compile(RECURRENT / f"{spec}.yaml", opt_level=0)
    summary = model.summary({"T": 35, "N": 1})
    assert (summary.params, summary.macs) == (params, macs_at_35_steps)
    with torch.device("meta"):
        state = reference().state_dict()
    assert sum(t.numel() for t in state.values()) == params
    shapes = {n.attrs.name: tuple(int(d) for d in n.output.type.shape) for n in model.graph.parameters()}
    assert shapes == {key: tuple(t.shape) for key, t in state.items()}


def test_lstm_lm_state_inputs_follow_its_size_params() -> None:
    model = dlc.compile(RECURRENT / "lstm_lm.yaml", opt_level=0, overrides={"hidden": 32, "layers": 3})
    shapes = {n.attrs.name: format_shape(n.output.type.shape) for n in model.graph.inputs()}
    assert shapes == {"tokens": "[T, N]", "h0": "[3, N, 32]", "c0": "[3, N, 32]"}
    assert model.summary().params == 2 * 10000 * 32 + 10000 + 3 * 4 * (32 * 64 + 2 * 32)


def test_lru_has_its_stated_counts_and_the_lru_parameter_names() -> None:
    model = dlc.compile(RECURRENT / "lru.yaml", opt_level=0)
    summary = model.summary({"N": 1, "T": 1024})
    assert (summary.params, summary.macs) == (1_058_826, 1_074_530_816)
    names = {n.attrs.name for n in model.graph.parameters()}
    lru = {"nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D"}
    assert {f"layers.3.recurrence.{name}" for name in lru} <= names
