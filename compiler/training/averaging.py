"""Polyak averaging: the weights dlc saves are the average of the iterates, not the last one.

The course gives two forms:

    uniform:      theta_bar_t = (1/t) sum_{i=1..t} theta_i   (kept as theta_bar += (theta_t - theta_bar) / t)
    exponential:  theta_bar_t = (1 - beta) theta_bar_{t-1} + beta theta_t

Both start from the first averaged iterate, theta_bar_1 = theta_1 (as torch.optim.swa_utils.
AveragedModel does); `start` skips the first steps, whose iterates are far from the optimum.
Floating-point buffers (batch-norm running statistics) are averaged like parameters, integer
buffers (batches seen) are copied from the newest model: AveragedModel(use_buffers=True).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class WeightAverager:
    """Keeps theta_bar for `model` under its state_dict names (the ONNX initializer names).

    Call `update(model)` after every optimizer step; `state_dict()` is what gets saved. With
    averaging `none` it is the model's own current state."""

    def __init__(self, model: nn.Module, spec: Any) -> None:
        self.kind: str = spec.name
        self.beta: float = getattr(spec, "beta", 1.0)
        self.start: int = getattr(spec, "start", 0)
        self.steps_seen = 0
        self.count = 0  # iterates averaged so far: t
        self._model = model
        self._average: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights theta_t into theta_bar."""
        self._model = model
        self.steps_seen += 1
        if self.kind == "none" or self.steps_seen <= self.start:
            return
        self.count += 1
        current = model.state_dict()
        if self.count == 1:
            self._average = {name: value.detach().clone() for name, value in current.items()}
            return
        for name, value in current.items():
            average = self._average[name]
            if not average.is_floating_point():
                average.copy_(value)
            elif self.kind == "uniform":
                average.add_(value.detach() - average, alpha=1.0 / self.count)
            else:
                average.mul_(1 - self.beta).add_(value.detach(), alpha=self.beta)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """theta_bar by name; the model's current weights before anything was averaged."""
        if not self._average:
            return {name: value.detach() for name, value in self._model.state_dict().items()}
        return dict(self._average)

    def load_state_dict(self, average: dict[str, torch.Tensor], count: int, steps_seen: int) -> None:
        """Resume: theta_bar as `state_dict()` gave it, and the counters."""
        self.count, self.steps_seen = count, steps_seen
        self._average = {name: value.detach().clone() for name, value in average.items()} if count else {}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load theta_bar into `model`, e.g. to evaluate the averaged weights."""
        model.load_state_dict(self.state_dict())
