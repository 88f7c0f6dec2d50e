"""Denoising diffusion, independent of any network: noise schedules, the forward process
`q_sample`, and samplers (DDPM, DDIM) compiled into the graph around a noise-predicting
network (the `sampling:` section of a spec, `dlc compile --sampler`).

    from dlc.diffusion import q_sample_torch       # x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
"""

from dlc.diffusion.schedules import alphas_cumprod, betas, q_sample, q_sample_torch

__all__ = ["alphas_cumprod", "betas", "q_sample", "q_sample_torch"]
