"""The tangent kernel while training: how far `K_t` moves from `K_0` (lazy training).

NTK theory says that, in the NTK parameterization, the kernel stays constant during
training as the width grows (`d/dt K = 0` in the limit), so the relative change
`||K_t - K_0||_F / ||K_0||_F` should fall with width (roughly as `1/sqrt(width)`).

Two trainers. `kernel_change_during_training`: plain full-batch gradient descent on the mean
squared error `L = 1/(2N) sum_i ||f(x_i) - y_i||^2`, written out (`theta <- theta - lr grad
L`): the discretized gradient flow of the theory, with nothing (momentum, batches, weight
decay) between the measurement and the statement. `kernel_change_with_dlc_train`: `dlc
train`'s loop on the spec's `training:` section (any optimizer, objective and data set), the
kernel measured from its hook after optimizer steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError
from dlc.analysis.model_function import ModelFunction, flat_output
from dlc.analysis.ntk import Mode, empirical_ntk
from dlc.lazy_imports import numpy as np

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


def kernel_change_with_dlc_train(
    spec: str | Path,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    run_directory: Path,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    registry: Any = None,
    limits: Any = None,
    output: str | None = None,
    record_every: int = 10,
    mode: Mode = "trace",
    chunk: int | None = None,
) -> tuple[KernelHistory, Any]:
    """The kernel over `inputs` while `dlc train` runs the spec's `training:` section (or
    `config_path`): its optimizer, schedule, objective and data, in `run_directory`. The
    trainer trains the very module handed to it here, so its parameters (and batch-norm
    buffers) are read after every `record_every`-th optimizer step; the kernel is taken on
    a separate eval-mode copy. Returns the history (losses are dlc train's, in its metrics)
    and dlc train's result."""
    from dlc.analysis.model_function import as_input_tensors, model_function
    from dlc.training.loop import train
    from dlc.training.plan import plan_training

    plan = plan_training(spec, config_path=config_path, overrides=overrides, registry=registry, limits=limits)
    model = plan.models[plan.main_role]
    function = model_function(model, output)
    points = as_input_tensors(function, inputs, "--inputs")
    trained = model.torch_module()
    model.torch_module = lambda: trained  # type: ignore[method-assign]  # the trainer's module
    initial = empirical_ntk(function, points, mode=mode, chunk=chunk)
    initial_norm = float(np.linalg.norm(initial))
    history = KernelHistory(steps=[0], change=[0.0], loss=[float("nan")])

    def on_step(step: int) -> None:
        if step % record_every:
            return
        state = dataclasses.replace(
            function,
            parameters={k: v.detach().clone() for k, v in trained.named_parameters()},
            buffers={k: v.detach().clone() for k, v in trained.named_buffers()},
        )
        current = empirical_ntk(state, points, mode=mode, chunk=chunk)
        history.steps.append(step)
        history.change.append(float(np.linalg.norm(current - initial)) / initial_norm)
        history.loss.append(float("nan"))

    result = train(plan, run_directory, on_step=on_step)
    return history, result
