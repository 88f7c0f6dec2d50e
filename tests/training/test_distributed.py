"""`torchrun --nproc-per-node 2 -m dlc train`: DistributedDataParallel on gloo (CPU). Two
processes with half the batch each take the same steps as one process with the whole batch
(DistributedSampler's shards of one permutation, gradients averaged): equal weights within
1e-6 after 20 steps (measured 6e-8). Only rank 0 reports and writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SPEC = """\
dlc: 1
name: ddp_mlp
inputs:
  x: {shape: [N, 2]}
layers:
  - linear: 16
  - tanh
  - linear: 2
training:
  data: {dataset: moons, options: {n_samples: 200, noise: 0.2}}
  objective: cross_entropy
  optimizer: {name: adam, lr: 0.01}
  epochs: 100
  max_steps: 20
  batch_size: 16
  log_every: 1
"""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    (tmp_path / "ddp_mlp.yaml").write_text(SPEC)
    single = _run([sys.executable, "-m", "dlc", "train", "ddp_mlp.yaml", "--out", "one"], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    double = _run([*torchrun, "-m", "dlc", "train", "ddp_mlp.yaml", "--out", "two"], tmp_path)
    assert "20 steps" in single.stdout and double.stdout.count("wrote ") == 1  # rank 0 only
    one, two = (
        load_file(str(tmp_path / "one" / "model.safetensors")),
        load_file(str(tmp_path / "two" / "model.safetensors")),
    )
    assert sorted(one) == sorted(two)
    difference = max((one[name] - two[name]).abs().max().item() for name in one)
    assert difference <= 1e-6
    assert not torch.equal(one["linear_0.weight"], _initial(tmp_path))  # it did train


def _initial(directory: Path) -> torch.Tensor:
    import dlc

    return torch.from_numpy(dlc.compile(directory / "ddp_mlp.yaml", opt_level=0).weights()["linear_0.weight"])


def test_under_torchrun_a_batch_that_does_not_split_evenly_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ddp_mlp.yaml").write_text(SPEC.replace("batch_size: 16", "batch_size: 15"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = subprocess.run(
        [*torchrun, "-m", "dlc", "train", "ddp_mlp.yaml", "--out", "two"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "the batch size 15 does not split evenly across 2 processes" in result.stderr
    # (torchrun itself then prints a traceback of its ChildFailedError: not dlc's to change)


def test_a_finished_run_leaves_the_group_after_a_barrier_and_a_failed_one_without(monkeypatch) -> None:
    import torch.distributed as dist

    from dlc.training.distributed import World, leave

    calls: list[str] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    world = World(rank=1, size=2, local_rank=1, device=torch.device("cpu"))
    leave(world, finished=True)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    leave(world, finished=False)  # the other ranks may be stuck elsewhere: no barrier
    assert calls == ["destroy"]
