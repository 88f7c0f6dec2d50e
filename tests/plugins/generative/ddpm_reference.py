"""diffusers' UNet2DModel at the configuration of specs/generative/ddpm_cifar10.yaml (full
size, or the small CI size the tests pass as `--set` overrides), and its weights saved as
safetensors for `dlc.compile(..., weights=...)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.conftest import SPECS

SPEC = SPECS / "generative" / "ddpm_cifar10.yaml"
# 8x8 images, a U-Net a few hundred times smaller: every block kind, attention, skip and
# resampling of the full model is kept (4 levels, 2 layers, attention at the second level).
SMALL: dict[str, Any] = {"size": 8, "channels": [16, 32, 32, 32], "groups": 8}
FULL: dict[str, Any] = {"size": 32, "channels": [128, 256, 256, 256], "groups": 32}


def diffusers_unet(sizes: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """google/ddpm-cifar10-32's UNet2DModel configuration at `sizes`, randomly initialised."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sizes["size"],
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(sizes["channels"]),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=sizes["groups"],
        norm_eps=1e-6,
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        attention_head_dim=None,
    ).eval()


def save_state_dict(model: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path
