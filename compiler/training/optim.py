"""Optimizers, step-size schedules, Polyak averaging and Langevin sampling, as the course writes them.

The `optimizer`, `schedule` and `averaging` keys of a spec's `training:` section are the
Pydantic models here. This module imports no torch at import time, so spec loading and
`dlc schema` work in an install without it; the builders import torch when called.

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

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from dlc.spec.model import StrictModel
from dlc.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

    from dlc.training.averaging import WeightAverager
    from dlc.training.langevin import PosteriorSamples, predict_posterior_mean

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
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


# ---------------------------------------------------------------- schedules


class ConstantSchedule(StrictModel):
    """a_t = lr."""

    name: Literal["constant"]


class StepSchedule(StrictModel):
    """a_t = lr * gamma^floor((t - 1) / step_size): multiply by gamma every step_size steps."""

    name: Literal["step"]
    step_size: int = Field(ge=1, description="Optimizer steps between decays.")
    gamma: float = Field(default=0.1, gt=0, le=1, description="Factor applied every step_size steps.")


class CosineSchedule(StrictModel):
    """Linear warm-up to lr over warmup_steps, then a half cosine down to min_lr_ratio * lr at
    total_steps, constant after."""

    name: Literal["cosine"]
    warmup_steps: int = Field(default=0, ge=0)
    total_steps: int | None = Field(
        default=None, ge=1, description="Where the cosine ends; the loop's step count when omitted."
    )
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1, description="Final step size as a fraction of lr.")

    @model_validator(mode="after")
    def _warmup_before_end(self) -> CosineSchedule:
        if self.total_steps is not None and self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be below total_steps ({self.total_steps})"
            )
        return self


class RobbinsMonroSchedule(StrictModel):
    """a_t = a / (b + t)^p for steps t = 1, 2, ...: the course's 1/t is a=1, b=0, p=1."""

    name: Literal["robbins_monro"]
    a: PositiveFloat | None = Field(default=None, description="Numerator; the optimizer's lr when omitted.")
    b: NonNegativeFloat = Field(default=0.0, description="Offset: delays the decay by b steps.")
    p: PositiveFloat = Field(default=1.0, description="Power; (1/2, 1] meets both Robbins-Monro conditions.")


SCHEDULE_SPECS: dict[str, type[StrictModel]] = {
    "constant": ConstantSchedule,
    "step": StepSchedule,
    "cosine": CosineSchedule,
    "robbins_monro": RobbinsMonroSchedule,
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
    members = tuple(known.values())
    union = Annotated[members[0] if len(members) == 1 else _union(members), Field(discriminator="name")]
    names = Literal[tuple(known)]  # type: ignore[valid-type]
    return Annotated[
        union, BeforeValidator(_name_shorthand(kind, known), json_schema_input_type=names | union)
    ]


def _union(members: tuple[type, ...]) -> Any:
    from typing import Union

    return Union[members]  # noqa: UP007 - built from a runtime tuple


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


def step_size_factor(spec: StrictModel, base_lr: float, total_steps: int | None = None) -> Any:
    """The function k -> a_{k+1} / lr for the schedule `spec` (k = optimizer steps taken so
    far, as `LambdaLR` counts them; the course's t = k + 1)."""
    if isinstance(spec, ConstantSchedule):
        return lambda k: 1.0
    if isinstance(spec, StepSchedule):
        return lambda k: spec.gamma ** (k // spec.step_size)
    if isinstance(spec, RobbinsMonroSchedule):
        a = base_lr if spec.a is None else spec.a
        return lambda k: a / (spec.b + k + 1) ** spec.p / base_lr
    if isinstance(spec, CosineSchedule):
        end = spec.total_steps or total_steps
        if end is None:
            raise ValueError("a cosine schedule needs total_steps (in the spec or from the loop)")
        if spec.warmup_steps >= end:
            raise ValueError(f"warmup_steps ({spec.warmup_steps}) must be below total_steps ({end})")
        return lambda k: _cosine_factor(k, spec.warmup_steps, end, spec.min_lr_ratio)
    raise TypeError(f"not a schedule spec: {spec!r}")


def _cosine_factor(k: int, warmup: int, end: int, floor: float) -> float:
    if k < warmup:
        return (k + 1) / warmup
    progress = min(1.0, (k - warmup) / (end - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_schedule(
    spec: StrictModel, optimizer: torch.optim.Optimizer, total_steps: int | None = None
) -> Any:
    """A `LambdaLR` that sets each group's step size to a_t; call `.step()` after every
    optimizer step. `total_steps` ends a cosine schedule that does not say where it ends."""
    import torch

    factors = [step_size_factor(spec, group["lr"], total_steps) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def robbins_monro_conditions(spec: StrictModel) -> tuple[bool, bool]:
    """Whether the schedule's steps satisfy (sum a_t = inf, sum a_t^2 < inf), analytically.

    A step size that settles at a positive value sums to infinity, and so do its squares; one
    that reaches zero after finitely many steps (cosine to 0) or decays geometrically (step)
    has finite sums; a / (b + t)^p is a p-series: sum a_t = inf iff p <= 1, sum a_t^2 < inf iff p > 1/2.
    """
    if isinstance(spec, ConstantSchedule):
        return True, False
    if isinstance(spec, StepSchedule):
        return (True, False) if spec.gamma == 1 else (False, True)
    if isinstance(spec, CosineSchedule):
        return (True, False) if spec.min_lr_ratio > 0 else (False, True)
    if isinstance(spec, RobbinsMonroSchedule):
        return spec.p <= 1, spec.p > 0.5
    raise TypeError(f"not a schedule spec: {spec!r}")


def schedule_report(spec: StrictModel) -> str:
    """One line saying whether the schedule meets the Robbins-Monro conditions, and why."""
    diverges, square_summable = robbins_monro_conditions(spec)
    reason = _schedule_reason(spec)
    first = "sum a_t = inf holds" if diverges else "sum a_t = inf fails (sum a_t < inf)"
    second = "sum a_t^2 < inf holds" if square_summable else "sum a_t^2 < inf fails (sum a_t^2 = inf)"
    verdict = (
        "meets the Robbins-Monro conditions"
        if diverges and square_summable
        else "does not meet the Robbins-Monro conditions"
    )
    return f"schedule {reason}: {first}; {second}: {verdict}"


def _schedule_reason(spec: StrictModel) -> str:
    if isinstance(spec, ConstantSchedule):
        return "constant a_t = lr"
    if isinstance(spec, StepSchedule):
        if spec.gamma == 1:
            return "step with gamma = 1 (constant a_t = lr)"
        return f"step (geometric decay by {spec.gamma:g} every {spec.step_size} steps)"
    if isinstance(spec, CosineSchedule):
        if spec.min_lr_ratio > 0:
            return f"cosine (settles at {spec.min_lr_ratio:g} * lr > 0)"
        return "cosine (reaches a_t = 0 at total_steps)"
    assert isinstance(spec, RobbinsMonroSchedule)
    a = "lr" if spec.a is None else f"{spec.a:g}"
    return f"robbins_monro a_t = {a} / ({spec.b:g} + t)^{spec.p:g} (p-series, p = {spec.p:g})"


_LAZY_EXPORTS = {
    "WeightAverager": "dlc.training.averaging",
    "PosteriorSamples": "dlc.training.langevin",
    "predict_posterior_mean": "dlc.training.langevin",
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
    "predict_posterior_mean",
    "robbins_monro_conditions",
    "schedule_report",
]
