"""Helpers of the flow tests: specs written inline, both directions run in ONNX Runtime and
in the ejected torch module, and the notebook's RealNVP in plain torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

import dlc


def compile_text(tmp_path: Path, text: str, name: str = "flow.yaml") -> dlc.CompiledModel:
    path = tmp_path / name
    path.write_text(text)
    return dlc.compile(path)


def torch_run(model: dlc.CompiledModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ejected eager module's outputs, by the model's output names."""
    module = model.torch_module()
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = module(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    return {name: r.numpy() for name, r in zip(model.graph.outputs, results, strict=True)}


class RealNVP(nn.Module):
    """senya-ashukha/real-nvp-pytorch's RealNVP (the notebook's class, prior left out)."""

    def __init__(self, nets, nett, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = nn.Parameter(mask, requires_grad=False)
        self.t = torch.nn.ModuleList([nett() for _ in range(len(mask))])
        self.s = torch.nn.ModuleList([nets() for _ in range(len(mask))])

    def g(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for i in range(len(self.t)):
            x_ = x * self.mask[i]
            s = self.s[i](x_) * (1 - self.mask[i])
            t = self.t[i](x_) * (1 - self.mask[i])
            x = x_ + (1 - self.mask[i]) * (x * torch.exp(s) + t)
        return x

    def f(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det_J, z = x.new_zeros(x.shape[0]), x
        for i in reversed(range(len(self.t))):
            z_ = self.mask[i] * z
            s = self.s[i](z_) * (1 - self.mask[i])
            t = self.t[i](z_) * (1 - self.mask[i])
            z = (1 - self.mask[i]) * (z - t) * torch.exp(-s) + z_
            log_det_J -= s.sum(dim=1)
        return z, log_det_J


def notebook_realnvp(seed: int = 0) -> RealNVP:
    """The notebook's model: 6 couplings, masks [[0, 1], [1, 0]] * 3, 2-256-256-2 nets."""

    def nets() -> nn.Module:
        return nn.Sequential(
            nn.Linear(2, 256),
            nn.LeakyReLU(),
            nn.Linear(256, 256),
            nn.LeakyReLU(),
            nn.Linear(256, 2),
            nn.Tanh(),
        )

    def nett() -> nn.Module:
        return nn.Sequential(
            nn.Linear(2, 256), nn.LeakyReLU(), nn.Linear(256, 256), nn.LeakyReLU(), nn.Linear(256, 2)
        )

    masks = torch.from_numpy(np.array([[0, 1], [1, 0]] * 3).astype(np.float32))
    torch.manual_seed(seed)
    return RealNVP(nets, nett, masks)
