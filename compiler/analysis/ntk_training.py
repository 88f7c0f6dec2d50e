"""The tangent kernel while training: how far `K_t` moves from `K_0` (lazy training).

NTK theory says that, in the NTK parameterization, the kernel stays constant during
training as the width grows (`d/dt K = 0` in the limit), so the relative change
`||K_t - K_0||_F / ||K_0||_F` should fall with width (roughly as `1/sqrt(width)`).

The training here is plain full-batch gradient descent on the mean squared error
`L = 1/(2N) sum_i ||f(x_i) - y_i||^2`, written out (`theta <- theta - lr grad L`): the
discretized gradient flow of the theory, with nothing (momentum, batches, weight decay)
between the measurement and the statement. It does not use `dlc train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dlc.analysis import AnalysisError
from dlc.analysis.model_function import ModelFunction, flat_output
from dlc.analysis.ntk import Mode, empirical_ntk

if TYPE_CHECKING:
    import torch


@dataclass
class KernelHistory:
    """Measurements at `steps` (step 0 first): the relative kernel change and the loss."""

    steps: list[int] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def kernel_change_during_training(
    function: ModelFunction,
    inputs: tuple[torch.Tensor, ...],
    targets: np.ndarray,
    *,
    steps: int,
    learning_rate: float,
    record_every: int = 10,
    mode: Mode = "trace",
    chunk: int | None = None,
) -> KernelHistory:
    """Train `function`'s parameters (a copy) by gradient descent on the MSE to `targets`,
    measuring `||K_t - K_0|| / ||K_0||` every `record_every` steps and at the end."""
    import torch

    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise AnalysisError(f"the learning rate must be a positive number, got {learning_rate:g}")
    with torch.no_grad():
        outputs = flat_output(function, function.parameters, inputs)
    target = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    if target.numel() != outputs.numel() or target.shape[0] != outputs.shape[0]:
        raise AnalysisError(
            f"the targets have shape {list(target.shape)}, but output '{function.output}' gives "
            f"{outputs.shape[1]} values for each of {outputs.shape[0]} samples"
        )
    target = target.reshape(outputs.shape)
    parameters = {k: v.clone() for k, v in function.parameters.items()}
    initial = empirical_ntk(function, inputs, mode=mode, chunk=chunk)
    initial_norm = float(np.linalg.norm(initial))
    history = KernelHistory()

    def record(step: int, loss: float) -> None:
        at_step = dataclasses.replace(function, parameters={k: v.detach() for k, v in parameters.items()})
        current = empirical_ntk(at_step, inputs, mode=mode, chunk=chunk)
        history.steps.append(step)
        history.change.append(float(np.linalg.norm(current - initial)) / initial_norm)
        history.loss.append(loss)

    for step in range(steps + 1):
        for value in parameters.values():
            value.requires_grad_(True)
        residual = flat_output(function, parameters, inputs) - target
        loss = 0.5 * residual.pow(2).sum(dim=1).mean()
        if step % record_every == 0 or step == steps:
            record(step, float(loss.detach()))
        if step == steps:
            break
        if not torch.isfinite(loss):
            raise AnalysisError(f"the loss diverged at step {step}: lower --lr (now {learning_rate:g})")
        gradients = torch.autograd.grad(loss, list(parameters.values()))
        with torch.no_grad():
            parameters = {
                name: (value - learning_rate * gradient).detach()
                for (name, value), gradient in zip(parameters.items(), gradients, strict=True)
            }
    return history
