"""Optimizers, step-size schedules, Polyak averaging and Langevin sampling, as the course writes them.

The `optimizer`, `schedule` and `averaging` keys of a spec's `training:` section are the
Pydantic models here. This module imports no torch at import time, so spec loading and
`dlc schema` work in an install without it; the builders import torch when called. This
module is the one entry point: schedules live in `schedules`, the course's own optimizers in
`course_optimizers`, averaging in `averaging`, Langevin sampling in `langevin`.

The training loop drives one optimizer step like this::

    loss.backward()
    optimizer.step()        # build_optimizer(spec.optimizer, model.parameters(), dataset_size=N)
    schedule.step()         # build_schedule(spec.schedule, optimizer): once per optimizer step
    averager.update(model)  # WeightAverager(model, spec.averaging): its weights are saved
    posterior.update(model) # PosteriorSamples(model, spec.optimizer), only for `sgld`

Which update each optimizer computes (course notation, g = grad J(theta) + weight_decay * theta):

- ``sgd``:       theta <- theta - eta g                               (torch.optim.SGD)
- ``momentum``:  theta' = theta - eta g + beta (theta - theta_prev)   (HeavyBallMomentum)
- ``nesterov``:  y = theta + beta (theta - theta_prev); theta' = y - eta grad(y)  (NesterovMomentum)
- ``rmsprop``:   E = beta E + (1 - beta) g^2; theta -= alpha g / sqrt(E + eps)    (CourseRMSProp)
- ``adam``:      bias-corrected m, v; theta -= alpha m_hat / (sqrt(v_hat) + eps)  (torch.optim.Adam)
- ``adamw``:     Adam with decoupled decay theta -= alpha lambda theta            (torch.optim.AdamW)
- ``sgld``:      v <- (1 - eta gamma) v - eta grad E + sqrt(2 gamma eta T) eps; theta += eta v
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, model_validator

from dlc.spec.model import StrictModel
from dlc.spec.suggest import did_you_mean
from dlc.training.schedules import (
    SCHEDULE_SPECS,
    NonNegativeFloat,
    PositiveFloat,
    build_schedule,
    robbins_monro_conditions,
    schedule_report,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

    from dlc.training.averaging import WeightAverager
    from dlc.training.langevin import PosteriorSamples, load_posterior_samples, predict_posterior_mean

# A decay or momentum factor: 1 would never forget (momentum without friction does not converge).
DecayFactor = Annotated[float, Field(ge=0, lt=1)]
GradClip = Annotated[
    float | None,
    Field(gt=0, allow_inf_nan=False, description="Rescale the gradient to this total L2 norm when above it."),
]
WeightDecay = Annotated[
    float,
    Field(ge=0, allow_inf_nan=False, description="L2 penalty: adds weight_decay * theta to the gradient."),
]


# ---------------------------------------------------------------- optimizers


class SGDSpec(StrictModel):
    """Gradient descent on mini-batches: theta <- theta - eta grad J(theta)."""

    name: Literal["sgd"]
    lr: PositiveFloat = Field(default=0.01, description="Step size eta.")
    weight_decay: WeightDecay = 0.0
    grad_clip: GradClip = None


class MomentumSpec(StrictModel):
    """Heavy-ball momentum: theta' = theta - eta grad J(theta) + beta (theta - theta_prev)."""

    name: Literal["momentum"]
    lr: PositiveFloat = Field(default=0.01, description="Step size eta.")
    momentum: DecayFactor = Field(default=0.9, description="beta in [0, 1): the momentum term (friction).")
    weight_decay: WeightDecay = 0.0
    grad_clip: GradClip = None


class NesterovSpec(StrictModel):
    """Nesterov accelerated gradient: the gradient is taken at the look-ahead point."""

    name: Literal["nesterov"]
    lr: PositiveFloat = Field(default=0.01, description="Step size eta.")
    momentum: DecayFactor = Field(default=0.9, description="beta in [0, 1).")
    weight_decay: WeightDecay = 0.0
    grad_clip: GradClip = None


class RMSPropSpec(StrictModel):
    """RMSProp: a decaying average of squared gradients scales each parameter's step."""

    name: Literal["rmsprop"]
    lr: PositiveFloat = Field(default=0.001, description="Step size alpha.")
    beta: DecayFactor = Field(default=0.9, description="Decay of the squared-gradient average E[g^2].")
    eps: PositiveFloat = Field(default=1e-8, description="Added inside the square root: sqrt(E[g^2] + eps).")
    weight_decay: WeightDecay = 0.0
    grad_clip: GradClip = None


class AdamSpec(StrictModel):
    """Adam: bias-corrected first and second moments."""

    name: Literal["adam"]
    lr: PositiveFloat = Field(default=0.001, description="Step size alpha.")
    betas: tuple[DecayFactor, DecayFactor] = Field(default=(0.9, 0.999), description="[beta1, beta2].")
    eps: PositiveFloat = Field(default=1e-8, description="Added to sqrt(v_hat).")
    weight_decay: WeightDecay = 0.0
    grad_clip: GradClip = None


class AdamWSpec(StrictModel):
    """Adam with decoupled weight decay (Loshchilov & Hutter): theta -= alpha lambda theta."""

    name: Literal["adamw"]
    lr: PositiveFloat = Field(default=0.001, description="Step size alpha.")
    betas: tuple[DecayFactor, DecayFactor] = Field(default=(0.9, 0.999), description="[beta1, beta2].")
    eps: PositiveFloat = Field(default=1e-8, description="Added to sqrt(v_hat).")
    weight_decay: NonNegativeFloat = Field(default=0.01, description="Decoupled decay lambda.")
    grad_clip: GradClip = None


class SGLDSpec(StrictModel):
    """Langevin dynamics with friction: samples theta from p(theta | S) ~ exp(-E(theta) / T).

    E = dataset_size * (the loop's mean loss) + prior_precision / 2 * |theta|^2, so with a
    negative log-likelihood loss the samples follow the Bayesian posterior under a Gaussian
    prior N(0, 1 / prior_precision) (a flat prior when 0)."""

    name: Literal["sgld"]
    lr: PositiveFloat = Field(default=1e-4, description="Step size eta.")
    friction: PositiveFloat = Field(
        default=1.0, description="gamma: velocity decays by (1 - eta gamma) a step."
    )
    temperature: PositiveFloat = Field(default=1.0, description="T: samples follow exp(-E / T).")
    prior_precision: NonNegativeFloat = Field(default=0.0, description="Gaussian prior N(0, 1/precision).")
    burn_in: int = Field(default=1000, ge=0, description="Steps before the first posterior sample.")
    thinning: int = Field(default=10, ge=1, description="Keep one sample every this many steps.")

    @model_validator(mode="after")
    def _friction_keeps_velocity_stable(self) -> SGLDSpec:
        if self.lr * self.friction >= 1:
            raise ValueError(
                f"lr * friction must be below 1 (the velocity is multiplied by 1 - lr * friction "
                f"each step), got {self.lr:g} * {self.friction:g} = {self.lr * self.friction:g}"
            )
        return self


OPTIMIZER_SPECS: dict[str, type[StrictModel]] = {
    "sgd": SGDSpec,
    "momentum": MomentumSpec,
    "nesterov": NesterovSpec,
    "rmsprop": RMSPropSpec,
    "adam": AdamSpec,
    "adamw": AdamWSpec,
    "sgld": SGLDSpec,
}


# ---------------------------------------------------------------- averaging


class NoAveraging(StrictModel):
    """Save the last iterate theta_T."""

    name: Literal["none"]


class UniformAveraging(StrictModel):
    """Polyak averaging: theta_bar_t = (1/t) sum_{i=1..t} theta_i, over the steps after `start`."""

    name: Literal["uniform"]
    start: int = Field(default=0, ge=0, description="Optimizer steps to skip before averaging.")


class ExponentialAveraging(StrictModel):
    """theta_bar_t = (1 - beta) theta_bar_{t-1} + beta theta_t; theta_bar_1 = theta_1."""

    name: Literal["exponential"]
    beta: float = Field(default=0.01, gt=0, le=1, description="Weight of the newest iterate.")
    start: int = Field(default=0, ge=0, description="Optimizer steps to skip before averaging.")


AVERAGING_SPECS: dict[str, type[StrictModel]] = {
    "none": NoAveraging,
    "uniform": UniformAveraging,
    "exponential": ExponentialAveraging,
}


def _name_shorthand(kind: str, known: dict[str, type[StrictModel]]) -> Any:
    """`optimizer: adam` means `optimizer: {name: adam}`; an unknown name gets a did-you-mean."""

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"] not in known:
            hint = did_you_mean(value["name"], known)
            raise ValueError(
                f"unknown {kind} '{value['name']}'"
                + (f"; {hint}" if hint else "")
                + f" (known: {', '.join(known)})"
            )
        return value

    return expand


def _spec_union(kind: str, known: dict[str, type[StrictModel]]) -> Any:
    """The discriminated union of `known` (by `name`), accepting a bare name too."""
    union = Annotated[Union[tuple(known.values())], Field(discriminator="name")]  # noqa: UP007
    names = Literal[tuple(known)]  # type: ignore[valid-type]
    return Annotated[
        union, BeforeValidator(_name_shorthand(kind, known), json_schema_input_type=names | union)
    ]


OptimizerSpec = _spec_union("optimizer", OPTIMIZER_SPECS)
ScheduleSpec = _spec_union("schedule", SCHEDULE_SPECS)
AveragingSpec = _spec_union("averaging", AVERAGING_SPECS)


# ---------------------------------------------------------------- builders


def build_optimizer(
    spec: StrictModel, params: Iterable[Any], *, dataset_size: int = 1, seed: int = 0
) -> torch.optim.Optimizer:
    """The optimizer `spec` names over `params`. `dataset_size` scales the mean loss into the
    energy E of `sgld` (ignored by the others); `seed` seeds sgld's noise, identically on every
    process of a distributed run so the replicas stay equal."""
    import torch

    from dlc.training import course_optimizers
    from dlc.training.langevin import LangevinDynamics

    params = list(params)
    if isinstance(spec, SGDSpec):
        optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay)
    elif isinstance(spec, MomentumSpec):
        optimizer = course_optimizers.HeavyBallMomentum(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    elif isinstance(spec, NesterovSpec):
        optimizer = course_optimizers.NesterovMomentum(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    elif isinstance(spec, RMSPropSpec):
        optimizer = course_optimizers.CourseRMSProp(
            params, lr=spec.lr, beta=spec.beta, eps=spec.eps, weight_decay=spec.weight_decay
        )
    elif isinstance(spec, AdamSpec):
        optimizer = torch.optim.Adam(
            params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay
        )
    elif isinstance(spec, AdamWSpec):
        optimizer = torch.optim.AdamW(
            params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay
        )
    elif isinstance(spec, SGLDSpec):
        return LangevinDynamics(
            params,
            lr=spec.lr,
            friction=spec.friction,
            temperature=spec.temperature,
            prior_precision=spec.prior_precision,
            energy_scale=float(dataset_size),
            seed=seed,
        )
    else:
        raise TypeError(f"not an optimizer spec: {spec!r}")
    if spec.grad_clip is not None:
        course_optimizers.clip_gradients_before_each_step(optimizer, spec.grad_clip)
    return optimizer


_LAZY_EXPORTS = {
    "WeightAverager": "dlc.training.averaging",
    "PosteriorSamples": "dlc.training.langevin",
    "predict_posterior_mean": "dlc.training.langevin",
    "load_posterior_samples": "dlc.training.langevin",
}


def __getattr__(name: str) -> Any:
    """The torch-using parts of the contract, imported on first use (PEP 562)."""
    import importlib

    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AveragingSpec",
    "OptimizerSpec",
    "PosteriorSamples",
    "ScheduleSpec",
    "WeightAverager",
    "build_optimizer",
    "build_schedule",
    "load_posterior_samples",
    "predict_posterior_mean",
    "robbins_monro_conditions",
    "schedule_report",
]
