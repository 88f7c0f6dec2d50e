"""DDPM and DDIM as tables of per-step coefficients, so that one loop body serves both.

Step i of S runs the network at timestep t_i (diffusers' "leading" spacing: t_i = (S-1-i) k,
k = T // S), predicts x_0 from the noise estimate eps, and moves to the previous timestep:

    x0   = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t)          (clipped to [-r, r] if asked)
    x'   = a_i x0 + b_i x + c_i eps + d_i z_i                   z_i ~ N(0, I), an input

DDPM (Ho et al. 2020, eq. 7, the posterior mean and the "fixed small" variance):
    a = sqrt(abar_prev) beta_t / (1 - abar_t),  b = sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t),
    c = 0,  d = sqrt(max(beta~_t, 1e-20)) with beta~_t = (1 - abar_prev) / (1 - abar_t) beta_t,
    d = 0 at t = 0;  alpha_t = abar_t / abar_prev, beta_t = 1 - alpha_t (strided schedules)
DDIM (Song et al. 2021, eq. 12):
    sigma = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev)),
    a = sqrt(abar_prev),  b = 0,  c = sqrt(1 - abar_prev - sigma^2),  d = sigma
with abar_prev = 1 after the last step. These are diffusers' DDPMScheduler and
DDIMScheduler (set_alpha_to_one) formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlc.diffusion.schedules import alphas_cumprod
from dlc.lazy_imports import numpy as np
from dlc.spec.sampling import SamplingSection


@dataclass(frozen=True)
class SamplerPlan:
    """Per-step tables (float32[S]) of a sampler: the timesteps and the coefficients above."""

    name: str
    timesteps: np.ndarray
    sqrt_one_minus_abar: np.ndarray  # sqrt(1 - abar_t): eps's share of x_t
    sqrt_abar: np.ndarray  # sqrt(abar_t): x_0's share of x_t
    x0_coefficient: np.ndarray  # a
    x_coefficient: np.ndarray  # b
    eps_coefficient: np.ndarray  # c
    noise_coefficient: np.ndarray  # d
    clip: float | None

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    @property
    def stochastic(self) -> bool:
        return bool(np.any(self.noise_coefficient != 0))


def sampler_plan(section: SamplingSection) -> SamplerPlan:
    """The tables of `section`'s sampler, computed in float32 in diffusers' order of
    operations, so that the compiled sampler rounds as diffusers' schedulers do (a sampler
    amplifies one-ulp differences over its steps). Square roots are correctly rounded;
    torch's float32 sqrt on the CPU is not (one ulp off for 177 of the linear schedule's
    1000 sqrt(abar_t)), and matching it would tie the constants to one torch build."""
    abar = alphas_cumprod(section.schedule, section.beta_start, section.beta_end, section.train_steps)
    steps = section.sampling_steps
    stride = section.train_steps // steps
    timesteps = np.arange(steps - 1, -1, -1, dtype=np.int64) * stride
    previous = timesteps - stride
    one = np.float32(1.0)
    abar_t = abar[timesteps]
    abar_prev = np.where(previous >= 0, abar[np.maximum(previous, 0)], one).astype(np.float32)
    beta_prod_t, beta_prod_prev = one - abar_t, one - abar_prev
    zeros = np.zeros(steps, np.float32)
    if section.sampler == "ddpm":
        alpha_t = abar_t / abar_prev
        beta_t = one - alpha_t
        x0 = np.sqrt(abar_prev) * beta_t / beta_prod_t
        x = np.sqrt(alpha_t) * beta_prod_prev / beta_prod_t
        eps = zeros
        variance = np.maximum(beta_prod_prev / beta_prod_t * beta_t, np.float32(1e-20))
        noise = np.where(timesteps > 0, np.sqrt(variance), zeros)
    else:
        variance = (beta_prod_prev / beta_prod_t) * (one - abar_t / abar_prev)
        sigma = np.float32(section.eta) * np.sqrt(variance)
        x0 = np.sqrt(abar_prev)
        x = zeros
        eps = np.sqrt(np.maximum(one - abar_prev - sigma**2, np.float32(0.0)))
        noise = sigma
    return SamplerPlan(
        f"{section.sampler}{steps}",
        timesteps.astype(np.float32),
        np.sqrt(beta_prod_t),
        np.sqrt(abar_t),
        *(np.asarray(table, dtype=np.float32) for table in (x0, x, eps, noise)),
        clip=section.clip_range if section.clip_sample else None,
    )
