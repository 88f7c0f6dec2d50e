"""Step-size schedules a_t and whether they meet the Robbins-Monro conditions.

The `schedule` key of a spec's `training:` section. Every schedule is a factor on the
optimizer's step size, applied by a `LambdaLR` that the loop steps once per optimizer step;
`schedule_report` says whether sum a_t = inf and sum a_t^2 < inf, which the course requires
of SGD's steps for convergence. Torch is imported only by `build_schedule`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from dlc.spec.model import StrictModel

if TYPE_CHECKING:
    import torch

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


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
