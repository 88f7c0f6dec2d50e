"""`dlc predict`: the posterior predictive mean of a Langevin run, (1/S) sum_s f(x; theta_s).

`dlc train` with `optimizer: sgld` keeps weight samples after burn-in (`posterior.safetensors`,
one set per kept step). A prediction averages the model's outputs over them, the Monte Carlo
form of p(y | x) = integral p(y | x, theta) p(theta | data) d theta. For classifiers the
course averages predictive distributions, not logits: `--softmax` averages probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dlc.errors import DlcError
from dlc.lazy_imports import numpy as np


def posterior_predictive_mean(
    model: Any, posterior: str | Path, inputs: Mapping[str, np.ndarray], *, softmax: bool = False
) -> dict[str, np.ndarray]:
    """Every output of `model` (a `CompiledModel`) averaged over the posterior's weight sets."""
    import torch

    from dlc.analysis.model_function import as_input_tensors, model_function
    from dlc.training.langevin import load_posterior_samples, predict_posterior_mean

    samples = _read_samples(Path(posterior), load_posterior_samples)
    function = model_function(model)
    module = function.module
    own = module.state_dict()
    unknown = sorted(set(samples[0]) - set(own))
    if unknown:
        raise DlcError(
            f"{posterior}: the posterior's weight '{unknown[0]}' is not a parameter of {model.name}",
            hint="predict with the spec (and --set values) the run was trained with",
        )
    tensors = as_input_tensors(function, inputs, "--inputs")
    transform = (lambda output: _map(output, lambda t: torch.softmax(t, dim=-1))) if softmax else None
    weight_sets = [{**own, **weights} for weights in samples]  # buffers stay the model's own
    mean = predict_posterior_mean(module, weight_sets, tensors, output_transform=transform)
    outputs = mean if isinstance(mean, tuple | list) else (mean,)
    return {name: value.numpy() for name, value in zip(function.output_names, outputs, strict=True)}


def _read_samples(path: Path, load: Any) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DlcError(f"{path}: no such posterior file", hint="`dlc train` with `optimizer: sgld` writes it")
    try:
        samples = load(path)
    except Exception as error:  # safetensors raises its own types for a damaged header
        raise DlcError(f"{path}: not a posterior samples file ({error})") from None
    if not samples:
        raise DlcError(f"{path}: holds no posterior samples (the run ended before burn-in and thinning)")
    return samples


def _map(output: Any, function: Any) -> Any:
    if isinstance(output, tuple | list):
        return type(output)(function(t) for t in output)
    return function(output)
