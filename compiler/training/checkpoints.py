"""Checkpoints of a training run, as safetensors: everything a resumed run needs to continue
bit for bit.

The model's tensors keep their own names, the ONNX initializer names (`fc1.weight`), so a
checkpoint reads like the model it came from. The rest is named apart: the optimizer state
`optimizer.<model>.<param name>.<key>` (Adam's `exp_avg`, momentum buffers), other models'
tensors `<model>/<name>` (a GAN's discriminator), the averaged weights `average.<name>` and
the random generator state `rng.torch`. Counters, hyper-parameters and the schedule's
position are JSON in the file's metadata. Files are written beside their destination and
renamed into place, so an interrupted write never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.errors import DlcError, Location

if TYPE_CHECKING:
    import torch

MAIN_MODEL = "model"
CHECKPOINT_FORMAT = "dlc-training-checkpoint-1"


@dataclass
class Progress:
    """Where a run stands: optimizer steps taken, the epoch, and the examples of that epoch
    this process has consumed (a run interrupted mid-epoch resumes there)."""

    step: int = 0
    epoch: int = 0
    examples_in_epoch: int = 0


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write tensors (copied, contiguous, on the CPU) atomically."""
    from safetensors.torch import save_file

    arrays = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in tensors.items()}
    staged = path.with_name(f".{path.name}.partial")
    save_file(arrays, str(staged), metadata=dict(metadata or {}))
    os.replace(staged, path)
    return path


def model_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict of `module`: its keys are the spec's parameter names."""
    return dict(module.state_dict())


@dataclass
class Restored:
    """What a checkpoint gives back besides the weights and optimizer states it loads."""

    progress: Progress
    averaged: dict[str, torch.Tensor]
    averaged_count: int
    posterior: dict[str, torch.Tensor]


def save_checkpoint(
    path: Path,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    progress: Progress,
    *,
    averaged: Mapping[str, torch.Tensor] | None = None,
    averaged_count: int = 0,
    posterior: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    import torch

    tensors: dict[str, torch.Tensor] = {}
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "progress": json.dumps(progress.__dict__),
        "averaged_count": str(averaged_count),
    }
    for role, module in models.items():
        prefix = "" if role == MAIN_MODEL else f"{role}/"
        tensors.update({prefix + name: tensor for name, tensor in model_tensors(module).items()})
    for role, optimizer in optimizers.items():
        names = _parameter_names(models[role], optimizer)
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entries in state["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{role}.{names[index]}.{key}"] = value
                else:
                    scalars.setdefault(names[index], {})[key] = value
        groups = [{k: v for k, v in group.items() if k != "params"} for group in state["param_groups"]]
        # An optimizer's own extras (Langevin's noise generator states): tensors by key.
        extras = {key: value for key, value in state.items() if key not in ("state", "param_groups")}
        for key, entries in extras.items():
            for entry, tensor in entries.items():
                tensors[f"optimizer.{role}.@{key}.{entry}"] = tensor
        metadata[f"optimizer.{role}"] = json.dumps(
            {"param_groups": groups, "scalars": scalars, "extras": sorted(extras)}
        )
    for name, tensor in (averaged or {}).items():
        tensors[f"average.{name}"] = tensor
    for name, tensor in (posterior or {}).items():
        tensors[f"posterior.{name}"] = tensor
    tensors["rng.torch"] = torch.get_rng_state()
    return save_tensors(tensors, path, metadata)


def load_checkpoint(
    path: Path,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> Restored:
    """Restore models, optimizers and the random state from `path`."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    location = Location(str(path))
    if not path.is_file():
        raise DlcError(f"no checkpoint to resume from: {path}", location=location)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises several kinds on damaged files
        raise DlcError(f"cannot read checkpoint {path}: {error}", location=location) from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise DlcError(f"{path} is not a dlc training checkpoint", location=location)
    for role, module in models.items():
        prefix = "" if role == MAIN_MODEL else f"{role}/"
        own = {name: tensors[prefix + name] for name in module.state_dict() if prefix + name in tensors}
        missing = sorted(set(module.state_dict()) - set(own))
        if missing:
            raise DlcError(
                f"checkpoint {path} does not fit the model: missing {', '.join(missing[:5])}",
                location=location,
                hint="resume with the spec (and --set values) the checkpoint was trained with",
            )
        module.load_state_dict(own)
    for role, optimizer in optimizers.items():
        names = _parameter_names(models[role], optimizer)
        saved = json.loads(metadata[f"optimizer.{role}"])
        state: dict[int, dict[str, Any]] = {}
        for index, name in names.items():
            entries = dict(saved["scalars"].get(name, {}))
            prefix = f"optimizer.{role}.{name}."
            entries.update(
                {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
            )
            if entries:
                state[index] = entries
        groups = optimizer.state_dict()["param_groups"]
        restored = [
            {**saved_group, "params": group["params"]}
            for saved_group, group in zip(saved["param_groups"], groups, strict=True)
        ]
        full: dict[str, Any] = {"state": state, "param_groups": restored}
        for key in saved.get("extras", []):
            prefix = f"optimizer.{role}.@{key}."
            full[key] = {
                name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)
            }
        optimizer.load_state_dict(full)
    torch.set_rng_state(tensors["rng.torch"])
    return Restored(
        Progress(**json.loads(metadata["progress"])),
        _prefixed(tensors, "average."),
        int(metadata.get("averaged_count", "0")),
        _prefixed(tensors, "posterior."),
    )


def _prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)}


def _parameter_names(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[int, str]:
    """Optimizer state index -> parameter name (state_dict numbers parameters in group order)."""
    by_identity = {id(parameter): name for name, parameter in module.named_parameters()}
    names = {}
    index = 0
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            names[index] = by_identity[id(parameter)]
            index += 1
    return names
