"""The `sampling:` section of a spec: how `dlc compile --sampler` turns a noise-predicting
network (a diffusion U-Net) into a sampler, x_T -> x_0, compiled into one graph.

```yaml
sampling:
  sampler: ddim          # ddpm (ancestral) | ddim
  steps: 50              # sampling steps (default: every training step)
  eta: 0.0               # DDIM's noise scale (0: deterministic)
  schedule: linear       # linear | cosine
  beta_start: 1.0e-4
  beta_end: 0.02
  train_steps: 1000
```

Checked when the spec loads, each problem located at its key: betas outside (0, 1), more
sampling steps than training steps, unknown keys (with a did-you-mean)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_TRAIN_STEPS = 100_000


class SamplingSection(BaseModel):
    """A diffusion sampler around the spec's network (which predicts the noise eps)."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["ddpm", "ddim"] = Field(
        "ddpm", description="ddpm: ancestral sampling (Ho et al.); ddim: Song et al.'s implicit sampler."
    )
    schedule: Literal["linear", "cosine"] = Field("linear", description="How beta_t grows over training.")
    beta_start: float = Field(1e-4, gt=0, lt=1, description="beta at the first training step (linear).")
    beta_end: float = Field(0.02, gt=0, lt=1, description="beta at the last training step (linear).")
    train_steps: int = Field(1000, ge=2, le=MAX_TRAIN_STEPS, description="Training steps T.")
    steps: int | None = Field(
        None, ge=1, description="Sampling steps, evenly spaced over training (default: all of them)."
    )
    eta: float = Field(0.0, ge=0, le=1, description="DDIM: noise scale (0 deterministic, 1 like DDPM).")
    clip_sample: bool = Field(True, description="Clip the predicted x_0 to [-clip_range, clip_range].")
    clip_range: float = Field(1.0, gt=0, description="Bound of the clipped x_0.")
    sample: str = Field("sample", min_length=1, description="The network's input that takes x_t.")
    timestep: str = Field("timestep", min_length=1, description="The network's input that takes t.")

    @field_validator("steps")
    @classmethod
    def _not_more_than_training(cls, steps: int | None, info: ValidationInfo) -> int | None:
        train_steps = info.data.get("train_steps")
        if steps is not None and train_steps is not None and steps > train_steps:
            raise ValueError(
                f"{steps} sampling steps but only {train_steps} training steps: a sampler visits at "
                "most every training step"
            )
        return steps

    @property
    def sampling_steps(self) -> int:
        return self.steps if self.steps is not None else self.train_steps

    @property
    def stochastic(self) -> bool:
        """Whether each step adds fresh noise (an input of the compiled sampler)."""
        return self.sampler == "ddpm" or self.eta > 0
