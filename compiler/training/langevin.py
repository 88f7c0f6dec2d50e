"""Langevin dynamics with friction (`optimizer: sgld`): posterior samples instead of a minimum.

The course writes the velocity update v <- (1 - eta gamma) v - eta grad E(theta) + 2 gamma eta eps,
eps ~ N(0, I), and says it mimics friction and thermal noise. Read as the Euler-Maruyama step
(time step eta) of the underdamped Langevin equation

    d theta = v dt,    dv = -gamma v dt - grad E(theta) dt + sqrt(2 gamma T) dW,

whose stationary law is p(theta, v) ~ exp(-(E(theta) + |v|^2 / 2) / T), the noise's standard
deviation is sqrt(2 gamma eta T) (the course's `2 gamma eta` is its variance at T = 1) and the
position moves by eta v:

    v <- (1 - eta gamma) v - eta grad E(theta) + sqrt(2 gamma eta T) eps
    theta <- theta + eta v

With E = N * mean loss + (prior_precision / 2) |theta|^2 and a negative log-likelihood loss,
theta is drawn from the posterior p(theta | S) ~ p(S | theta) p(theta) (T = 1). The
discretization biases the stationary covariance by O(eta); burn-in forgets the start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer


class LangevinDynamics(Optimizer):
    """The friction form above. The noise comes from the optimizer's own generators (one per
    device, seeded with `seed`), so every process of a distributed run adds the same noise and
    the replicas stay equal; their states are part of `state_dict()` for exact resume."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        friction: float,
        temperature: float = 1.0,
        prior_precision: float = 0.0,
        energy_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        defaults = {
            "lr": lr,
            "friction": friction,
            "temperature": temperature,
            "prior_precision": prior_precision,
            "energy_scale": energy_scale,
        }
        super().__init__(params, defaults)
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[key] = generator
        return self._generators[key]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            eta, gamma = group["lr"], group["friction"]
            noise_scale = math.sqrt(2 * gamma * eta * group["temperature"])
            for param in group["params"]:
                if param.grad is None:
                    continue
                energy_gradient = group["energy_scale"] * param.grad
                if group["prior_precision"]:
                    energy_gradient = energy_gradient + group["prior_precision"] * param
                state = self.state[param]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(param)
                velocity = state["velocity"]
                noise = torch.randn(
                    param.shape,
                    generator=self._generator(param.device),
                    device=param.device,
                    dtype=param.dtype,
                )
                velocity.mul_(1 - eta * gamma).add_(energy_gradient, alpha=-eta).add_(
                    noise, alpha=noise_scale
                )
                param.add_(velocity, alpha=eta)
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["noise_generators"] = {device: g.get_state() for device, g in self._generators.items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        generator_states = state_dict.pop("noise_generators", {})
        super().load_state_dict(state_dict)
        for device, generator_state in generator_states.items():
            self._generator(torch.device(device)).set_state(generator_state)


class PosteriorSamples:
    """Weight samples of a Langevin run: after `burn_in` steps, one every `thinning` steps.

    Call `update(model)` after every optimizer step. A sample is a copy of the model's whole
    `state_dict` (parameters and buffers, under the ONNX initializer names), kept on the CPU."""

    def __init__(self, model: nn.Module, spec: Any) -> None:
        self.burn_in: int = spec.burn_in
        self.thinning: int = spec.thinning
        self.steps_seen = 0
        self.samples: list[dict[str, torch.Tensor]] = []

    def update(self, model: nn.Module) -> bool:
        """Count one optimizer step; keep a sample when it falls on the thinning grid."""
        self.steps_seen += 1
        after_burn_in = self.steps_seen - self.burn_in
        if after_burn_in <= 0 or after_burn_in % self.thinning:
            return False
        self.samples.append(
            {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
        )
        return True

    def __len__(self) -> int:
        return len(self.samples)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors for a safetensors file: `{index}/{name}` per sample, plus `steps_seen`."""
        flat = {"steps_seen": torch.tensor(self.steps_seen, dtype=torch.int64)}
        for index, sample in enumerate(self.samples):
            flat.update({f"{index}/{name}": value for name, value in sample.items()})
        return flat

    def load_state_dict(self, flat: Mapping[str, torch.Tensor]) -> None:
        self.steps_seen = int(flat["steps_seen"])
        self.samples = _unflatten(flat)

    def save(self, path: str | Path) -> None:
        """Write the samples as one safetensors file (`{index}/{name}` keys, `steps_seen`)."""
        from safetensors.torch import save_file

        flat = {key: value.contiguous() for key, value in self.state_dict().items()}
        save_file(flat, str(path), metadata={"burn_in": str(self.burn_in), "thinning": str(self.thinning)})


def load_posterior_samples(path: str | Path) -> list[dict[str, torch.Tensor]]:
    """The weight sets a Langevin run saved with `PosteriorSamples.save`, in order."""
    from safetensors.torch import load_file

    return _unflatten(load_file(str(path)))


def _unflatten(flat: Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    samples: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        if key != "steps_seen":
            index, name = key.split("/", 1)
            samples.setdefault(int(index), {})[name] = value
    return [samples[index] for index in sorted(samples)]


@torch.no_grad()
def predict_posterior_mean(
    model: nn.Module,
    samples: PosteriorSamples | Sequence[Mapping[str, torch.Tensor]],
    inputs: Any,
    output_transform: Any = None,
) -> Any:
    """The posterior predictive mean (1/S) sum_s f(x; theta_s), the Monte Carlo form of
    p(y | x) = integral p(y | x, theta) p(theta | S) d theta.

    `inputs` is one tensor, a tuple (positional) or a dict (keyword inputs). For classifiers
    pass `output_transform=torch.softmax`-like functions: the course averages predictive
    distributions, not logits. The model is run in eval mode and gets its weights back."""
    weight_sets = samples.samples if isinstance(samples, PosteriorSamples) else list(samples)
    if not weight_sets:
        raise ValueError("no posterior samples: the run ended before burn_in + thinning steps")
    original = {name: value.detach().clone() for name, value in model.state_dict().items()}
    was_training = model.training
    model.eval()
    total: Any = None
    try:
        for weights in weight_sets:
            model.load_state_dict(weights)
            output = _call(model, inputs)
            if output_transform is not None:
                output = output_transform(output)
            total = output if total is None else _add(total, output)
    finally:
        model.load_state_dict(original)
        model.train(was_training)
    return _scale(total, 1.0 / len(weight_sets))


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _add(total: Any, output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return total + output
    if isinstance(output, Mapping):
        return {key: _add(total[key], value) for key, value in output.items()}
    return type(output)(_add(a, b) for a, b in zip(total, output, strict=True))


def _scale(total: Any, factor: float) -> Any:
    if isinstance(total, torch.Tensor):
        return total * factor
    if isinstance(total, Mapping):
        return {key: _scale(value, factor) for key, value in total.items()}
    return type(total)(_scale(value, factor) for value in total)
