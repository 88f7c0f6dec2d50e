"""specs/recurrent/bahdanau_decoder.yaml against a torch reference written here: the
RNNsearch decoder (additive attention inside a GRU recurrence), teacher-forced. The
reference's state_dict keys are the spec's parameter names, so dlc's weights load into it
with strict=True. One ONNX file (symbolic T and S) serves target lengths 1, 7 and 64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

import dlc
from dlc.testing import max_relative_error
from tests.conftest import SPECS

SPEC = SPECS / "recurrent" / "bahdanau_decoder.yaml"
# Measured: at most 4e-7 (ONNX Runtime and the ejected module against the reference).
TOLERANCE = 1e-5


class BahdanauDecoder(nn.Module):
    """Bahdanau et al. 2015's decoder with a GRU cell; attributes named as the spec's ids."""

    def __init__(
        self, vocab: int = 40, embedding: int = 16, memory: int = 24, hidden: int = 32, attention: int = 20
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.keys = nn.Linear(memory, attention)  # U h_j, once for all steps
        self.bridge = nn.Linear(memory, hidden)  # s_0 = tanh(W_s mean_j h_j + b_s)
        self.decoder = nn.Module()
        self.decoder.query = nn.Linear(hidden, attention, bias=False)  # W s
        self.decoder.score = nn.Linear(attention, 1, bias=False)  # v
        self.decoder.cell = nn.GRU(embedding + memory, hidden, batch_first=True)
        self.decoder.out = nn.Linear(hidden + memory + embedding, vocab)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedded = self.embed(tokens)  # [N, T, E]
        keys = self.keys(memory)  # [N, S, A]
        state = torch.tanh(self.bridge(memory.mean(dim=1)))  # [N, H]
        logits, alignments = [], []
        for t in range(tokens.size(1)):
            y = embedded[:, t]
            energy = self.decoder.score(torch.tanh(self.decoder.query(state).unsqueeze(1) + keys))
            weights = torch.softmax(energy, dim=1)  # [N, S, 1]
            context = (weights * memory).sum(dim=1)  # [N, M]
            _, hidden = self.decoder.cell(torch.cat([y, context], dim=1).unsqueeze(1), state.unsqueeze(0))
            state = hidden[0]
            logits.append(self.decoder.out(torch.cat([state, context, y], dim=1)))
            alignments.append(weights[..., 0])
        return torch.stack(logits, dim=1), torch.stack(alignments, dim=1), state


def reference_with_dlc_weights(model: dlc.CompiledModel) -> BahdanauDecoder:
    reference = BahdanauDecoder()
    state = {name: torch.from_numpy(np.array(array)) for name, array in model.weights().items()}
    reference.load_state_dict(state, strict=True)  # the same keys, no renaming
    return reference.eval()


def inputs(steps: int, source: int = 5, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(steps)
    return {
        "tokens": rng.integers(0, 40, size=(batch, steps)).astype(np.int64),
        "memory": rng.standard_normal((batch, source, 24)).astype(np.float32),
    }


def test_one_onnx_file_matches_the_torch_reference_at_every_length(tmp_path: Path) -> None:
    model = dlc.compile(SPEC)
    path = tmp_path / "decoder.onnx"
    model.save(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = reference_with_dlc_weights(model)
    for steps in (1, 7, 64):
        feeds = inputs(steps)
        logits, attention, state = session.run(["logits", "attention", "state"], feeds)
        with torch.no_grad():
            expected = reference(*(torch.from_numpy(feeds[k]) for k in ("tokens", "memory")))
        assert logits.shape == (3, steps, 40) and attention.shape == (3, steps, 5)
        for name, got, want in zip(
            ("logits", "attention", "state"), (logits, attention, state), expected, strict=True
        ):
            error = max_relative_error(want.numpy(), got)
            assert error <= TOLERANCE, f"T={steps} {name}: ONNX vs reference {error:.2e}"
        np.testing.assert_allclose(attention.sum(axis=2), 1.0, atol=1e-5)  # alignments are distributions


def test_the_ejected_module_is_a_for_loop_that_matches_the_reference() -> None:
    model = dlc.compile(SPEC)
    source = model.torch_source()
    assert "for t in range(tokens.size(1)):" in source
    assert "self.decoder.cell(" in source  # the body's GRU is one nn.GRU, shared by every step
    module = model.torch_module()
    reference = reference_with_dlc_weights(model)
    for steps in (1, 7, 64):
        feeds = {k: torch.from_numpy(v) for k, v in inputs(steps, source=9).items()}
        with torch.no_grad():
            got = module(feeds["tokens"], feeds["memory"])
            want = reference(feeds["tokens"], feeds["memory"])
        for name, a, b in zip(("logits", "attention", "state"), got, want, strict=True):
            error = max_relative_error(b.numpy(), a.numpy())
            assert error <= TOLERANCE, f"T={steps} {name}: ejected vs reference {error:.2e}"


def test_the_body_weights_are_counted_once_and_its_macs_per_step() -> None:
    summary = dlc.compile(SPEC, opt_level=0).summary({"N": 1, "T": 7, "S": 5})
    # embed 640 + keys 500 + bridge 800 + query 640 + score 20 + GRU 3*32*(40+32+2) + out 72*40+40
    assert summary.params == 640 + 500 + 800 + 640 + 20 + 7_104 + 2_920 == 12_624
    per_step = 32 * 20 + 5 * 20 + 3 * 32 * (40 + 32) + 72 * 40  # query, score, GRU, out
    assert summary.macs == 5 * 24 * 20 + 24 * 32 + 7 * per_step
    rows = {row.name: row for row in summary.layers}
    assert rows["decoder"].macs == 7 * per_step and rows["decoder"].params == 10_684


@pytest.mark.parametrize("level", [0, 1, 2])
def test_every_optimization_level_keeps_the_loop(level: int) -> None:
    model = dlc.compile(SPEC, opt_level=level, verify=True)
    assert [n.op for n in model.graph if n.op == "scan"] == ["scan"]
    feeds = inputs(7)
    logits = model.run(feeds, "cpu")["logits"]
    with torch.no_grad():
        expected = reference_with_dlc_weights(model)(
            *(torch.from_numpy(feeds[k]) for k in ("tokens", "memory"))
        )
    assert max_relative_error(expected[0].numpy(), logits) <= TOLERANCE
