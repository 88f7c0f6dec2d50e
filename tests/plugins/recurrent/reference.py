"""Shared helpers: a one-layer spec around a recurrent block, and torch's own module as
the reference, run sequence by sequence (no padding, no packing) for padded batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

import dlc

FEATURES, HIDDEN, PROJECTION = 5, 6, 3

CELLS: dict[str, tuple[str, type[torch.nn.RNNBase], dict[str, Any]]] = {
    "rnn-tanh": ("rnn", torch.nn.RNN, {}),
    "rnn-relu": ("rnn", torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": ("lstm", torch.nn.LSTM, {}),
    "gru": ("gru", torch.nn.GRU, {}),
    "lstm-projection": ("lstm", torch.nn.LSTM, {"proj_size": PROJECTION}),
}


@dataclass(frozen=True)
class Case:
    cell: str
    layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    lengths: bool = False
    initial_state: bool = False

    @property
    def block(self) -> str:
        return CELLS[self.cell][0]

    @property
    def options(self) -> dict[str, Any]:
        return CELLS[self.cell][2]

    @property
    def name(self) -> str:
        flags = [f"{self.layers}-layer", "bi" if self.bidirectional else "uni"]
        flags += ["batch-first" if self.batch_first else "time-first"]
        flags += ["lengths"] * self.lengths + ["h0"] * self.initial_state
        return "-".join([self.cell, *flags])

    def torch_module(self, seed: int = 0) -> torch.nn.RNNBase:
        torch.manual_seed(seed)
        module = CELLS[self.cell][1](
            FEATURES,
            HIDDEN,
            num_layers=self.layers,
            bidirectional=self.bidirectional,
            batch_first=self.batch_first,
            **self.options,
        )
        return module.eval()

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        stack = self.layers * (2 if self.bidirectional else 1)
        shapes = [(stack, batch, self.options.get("proj_size") or HIDDEN)]
        return shapes + ([(stack, batch, HIDDEN)] if self.block == "lstm" else [])

    def spec(self) -> dict[str, Any]:
        sequence = ["N", "T", FEATURES] if self.batch_first else ["T", "N", FEATURES]
        inputs: dict[str, Any] = {"x": {"shape": sequence}}
        names = ["x"]
        if self.lengths:
            inputs["lengths"] = {"shape": ["N"], "dtype": "int64"}
            names.append("lengths")
        if self.initial_state:
            for name, shape in zip(("h0", "c0"), self.state_shapes(1), strict=False):
                inputs[name] = {"shape": [shape[0], "N", shape[2]]}
                names.append(name)
        options = {
            "hidden": HIDDEN,
            "layers": self.layers,
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "lengths": self.lengths,
            "initial_state": self.initial_state,
            **self.options,
        }
        outputs = {"y": "rnn", "h": "rnn.h"} | ({"c": "rnn.c"} if self.block == "lstm" else {})
        layer = {self.block: options, "id": "rnn", "in": names}
        return {"dlc": 1, "name": "case", "inputs": inputs, "layers": [layer], "outputs": outputs}

    def compile(self, directory: Path, module: torch.nn.RNNBase) -> dlc.CompiledModel:
        """The spec compiled with the torch module's weights, loaded as a checkpoint."""
        spec = directory / f"{self.name}.yaml"
        spec.write_text(yaml.safe_dump(self.spec(), sort_keys=False))
        weights = directory / f"{self.name}.safetensors"
        save_file({f"rnn.{k}": v.contiguous() for k, v in module.state_dict().items()}, str(weights))
        return dlc.compile(spec, weights=weights)

    def inputs(self, time: int, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        shape = (batch, time, FEATURES) if self.batch_first else (time, batch, FEATURES)
        arrays = {"x": rng.standard_normal(shape).astype(np.float32)}
        if self.lengths:  # unsorted, one full-length sequence, one of length 1
            lengths = rng.integers(1, time + 1, size=batch)
            lengths[rng.permutation(batch)[:2]] = [time, 1]
            arrays["lengths"] = lengths.astype(np.int64)
        if self.initial_state:
            for name, shape in zip(("h0", "c0"), self.state_shapes(batch), strict=False):
                arrays[name] = rng.standard_normal(shape).astype(np.float32)
        return arrays


def torch_reference(
    case: Case, module: torch.nn.RNNBase, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """torch's module run on each sequence alone, cut to its length (no padding, no
    packing); outputs past a sequence's length are zero, as ONNX's sequence_lens defines."""
    x = torch.from_numpy(inputs["x"])
    batch_axis = 0 if case.batch_first else 1
    batch, time = x.shape[batch_axis], x.shape[1 - batch_axis]
    lengths = inputs.get("lengths", np.full(batch, time))
    states = [torch.from_numpy(inputs[n]) for n in ("h0", "c0") if n in inputs]
    ys, finals = [], []
    with torch.no_grad():
        for n in range(batch):
            one = x.narrow(batch_axis, n, 1).narrow(1 - batch_axis, 0, int(lengths[n]))
            state = [s[:, n : n + 1].contiguous() for s in states]
            hx = None if not state else (tuple(state) if case.block == "lstm" else state[0])
            y, final = module(one, hx)
            padding = list(y.shape)
            padding[1 - batch_axis] = time - int(lengths[n])
            ys.append(torch.cat([y, y.new_zeros(padding)], dim=1 - batch_axis))
            finals.append(final if isinstance(final, tuple) else (final,))
    result = {"y": torch.cat(ys, dim=batch_axis).numpy()}
    for index, name in enumerate(["h", "c"][: len(finals[0])]):
        result[name] = torch.cat([f[index] for f in finals], dim=1).numpy()
    return result
