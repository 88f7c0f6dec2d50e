"""Noise schedules and the forward process of denoising diffusion (Ho et al. 2020).

    beta_t:  linear from beta_start to beta_end over `train_steps` (Ho et al.), or cosine
             (Nichol and Dhariwal 2021: abar(t) = cos^2((t/T + 0.008) / 1.008 * pi/2),
             beta_t = min(1 - abar(t+1) / abar(t), 0.999))
    abar_t = prod_{s <= t} (1 - beta_s)
    q(x_t | x_0):  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I)

Values are computed as diffusers' schedulers compute them (float32 betas and cumulative
products), so a sampler compiled by dlc follows diffusers' `DDPMScheduler` and
`DDIMScheduler` step for step. `q_sample_torch` is the training-side helper.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    import torch

Schedule = Literal["linear", "cosine"]


def betas(schedule: Schedule, beta_start: float, beta_end: float, train_steps: int) -> np.ndarray:
    """float32[train_steps]: the noise added at each training step."""
    if schedule == "linear":
        return _linspace_float32(beta_start, beta_end, train_steps)
    if schedule == "cosine":  # diffusers' squaredcos_cap_v2

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        values = [
            min(1 - alpha_bar((i + 1) / train_steps) / alpha_bar(i / train_steps), 0.999)
            for i in range(train_steps)
        ]
        return np.array(values, dtype=np.float32)
    raise ValueError(f"unknown noise schedule {schedule!r}")


def alphas_cumprod(schedule: Schedule, beta_start: float, beta_end: float, train_steps: int) -> np.ndarray:
    """float32[train_steps]: abar_t, the fraction of the signal's variance left at step t
    (accumulated in float64, as torch.cumprod does on the CPU)."""
    alphas = np.float32(1.0) - betas(schedule, beta_start, beta_end, train_steps)
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


def _linspace_float32(start: float, end: float, count: int) -> np.ndarray:
    """torch.linspace(start, end, count, dtype=float32), bit for bit: float32 ends and step,
    each value one fused multiply-add, the first half counted from `start`, the rest from
    `end` (exact, since a float64 product of two float32 values is exact)."""
    first, last = np.float32(start), np.float32(end)
    step = np.float32((last - first) / np.float32(max(count - 1, 1)))
    index = np.arange(count, dtype=np.float64)
    forward = np.float64(first) + np.float64(step) * index
    backward = np.float64(last) - np.float64(step) * (count - 1 - index)
    return np.where(index < count // 2, forward, backward).astype(np.float32)


def q_sample(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, abar: np.ndarray) -> np.ndarray:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with t [N] integer steps (numpy)."""
    scale = abar[np.asarray(t, dtype=np.int64)].reshape(-1, *([1] * (np.ndim(x0) - 1)))
    return (np.sqrt(scale) * x0 + np.sqrt(1.0 - scale) * eps).astype(x0.dtype)


def q_sample_torch(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """The same in torch, differentiable in x_0 and eps (training: L_simple = |eps - eps_theta(x_t, t)|^2).

    `abar` is `torch.from_numpy(alphas_cumprod(...))`; `t` holds integer steps [N]."""
    scale = abar.to(x0.device, x0.dtype)[t.long()].reshape(-1, *([1] * (x0.dim() - 1)))
    return scale.sqrt() * x0 + (1 - scale).sqrt() * eps
