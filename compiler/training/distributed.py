"""Running under `torchrun`: the process group, this process's rank, and the device.

torchrun sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous address; dlc joins the
group with NCCL when the model runs on CUDA and gloo otherwise. Without torchrun the run is
one process of a world of one, and no process group is made. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlc.errors import DlcError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def choose_device(requested: str, local_rank: int) -> torch.device:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise DlcError(
            "training.device is cuda, but torch sees no CUDA device", hint="use device: auto or cpu"
        )
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def join(requested_device: str) -> World:
    """This process's place in the run; joins torchrun's process group when there is one."""
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(requested_device, local_rank)
    if size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, local_rank, device)


def leave(world: World, *, finished: bool) -> None:
    """Leaves the process group; after a finished run, only once every rank has finished
    (rank 0 may still be saving). After a failure no barrier is entered: the other ranks
    may be waiting in a different collective, and torchrun stops them when this one exits.
    """
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def all_ranks_agree(world: World, flag: bool) -> bool:
    """True when `flag` holds on every rank (a non-finite loss on one stops them all)."""
    if not world.distributed:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=world.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)
