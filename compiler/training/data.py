"""The examples a model trains on: arrays bound to the spec's inputs and targets, split into
train / validation / test, and batched by torch's `DataLoader`.

Arrays come from a dataset (`data.dataset`: packaged or a plugin's) or a file (`data.path`,
.npz or .safetensors, one array per spec input plus the targets). Every array is checked
against the input it feeds before anything is trained or written: a mismatch names the
array, its shape and the input. The split is a seeded permutation (`data.split_seed`): test
first, then validation, the rest trains. Shuffling is `DistributedSampler`'s, seeded with
the training seed and the epoch, so one process and K processes see the same global order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.errors import SpecError
from dlc.ir.types import DType
from dlc.lazy_imports import numpy as np
from dlc.spec.suggest import did_you_mean
from dlc.training.config import DataConfig
from dlc.training.datasets import PACKAGED_DATASETS, DatasetArrays, DatasetInfo
from dlc.training.section import TrainingSource

if TYPE_CHECKING:
    import torch

TARGET = "target"  # the key of the targets in a batch
NODES = "nodes"  # a graph batch: the indices of the split's nodes


@dataclass(frozen=True)
class InputSlot:
    """A spec input that takes data: its name, shape (ints and symbol names) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: DType


@dataclass
class Splits:
    """Arrays by batch key (spec input names and `target`), one dict per split. For a graph,
    `shared` arrays are the whole graph and each split is its node indices."""

    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    graph: bool = False

    def split(self, name: str) -> dict[str, np.ndarray]:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def available_datasets(plugin_datasets: Sequence[DatasetInfo]) -> dict[str, DatasetInfo]:
    return {d.name: d for d in (*PACKAGED_DATASETS, *plugin_datasets)}


def load_splits(
    config: DataConfig,
    section: TrainingSource,
    slots: Sequence[InputSlot],
    needs_target: bool,
    plugin_datasets: Sequence[DatasetInfo] = (),
) -> Splits:
    """Read, bind, check and split the arrays; `SpecError`s point into the section."""
    arrays = _read(config, section, plugin_datasets)
    bound = _bind(config, section, arrays, slots, needs_target)
    return _split(config, bound, arrays)


def _read(
    config: DataConfig, section: TrainingSource, plugin_datasets: Sequence[DatasetInfo]
) -> DatasetArrays:
    if config.dataset is not None:
        known = available_datasets(plugin_datasets)
        info = known.get(config.dataset)
        if info is None:
            hint = did_you_mean(config.dataset, known) or f"known datasets: {', '.join(sorted(known))}"
            raise section.error(f"unknown dataset '{config.dataset}'", ("data", "dataset"), hint=hint)
        unknown = sorted(set(config.options) - set(info.options))
        if unknown:
            allowed = ", ".join(info.options) or "none"
            raise section.error(
                f"dataset '{info.name}' has no option '{unknown[0]}'",
                ("data", "options", unknown[0]),
                hint=did_you_mean(unknown[0], info.options) or f"its options: {allowed}",
            )
        try:
            return info.load(config.options, config.split_seed)
        except (ValueError, TypeError) as error:  # option values the dataset cannot use
            raise section.error(
                f"dataset '{info.name}' cannot be built with these options: {error}", ("data", "options")
            ) from None
    assert config.path is not None
    path = section.resolve(config.path)
    return DatasetArrays(_read_array_file(path, section), features="", target=config.target or TARGET)


def _read_array_file(path: Path, section: TrainingSource) -> dict[str, np.ndarray]:
    where = ("data", "path")
    if not path.is_file():
        raise section.error(f"data file not found: {path}", where)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
    except Exception as error:  # numpy and safetensors raise several kinds on corrupt files
        raise section.error(f"cannot read data file {path}: {error}", where) from None
    raise section.error(f"data files are .npz or .safetensors, got {path.name}", where)


def _bind(
    config: DataConfig,
    section: TrainingSource,
    dataset: DatasetArrays,
    slots: Sequence[InputSlot],
    needs_target: bool,
) -> dict[str, np.ndarray]:
    """Arrays by batch key, each checked against the input it feeds."""
    arrays = dataset.arrays
    problems = []
    bound: dict[str, np.ndarray] = {}
    for input_name in config.inputs:
        if input_name not in {slot.name for slot in slots}:
            problems.append(
                section.diagnostic(
                    f"`data.inputs` names '{input_name}', which is not a spec input that takes data",
                    ("data", "inputs", input_name),
                    hint=did_you_mean(input_name, [s.name for s in slots]),
                )
            )
    for slot in slots:
        name = config.inputs.get(slot.name) or _default_array(slot, slots, dataset)
        path = ("data", "inputs", slot.name) if slot.name in config.inputs else ("data",)
        if name not in arrays:
            problems.append(
                section.diagnostic(
                    f"no array '{name}' for the spec input '{slot.name}'",
                    path,
                    hint=did_you_mean(name, arrays)
                    or f"the data holds: {', '.join(sorted(arrays)) or 'nothing'}",
                )
            )
            continue
        problem = _shape_problem(arrays[name], slot, dataset.graph)
        if problem:
            problems.append(
                section.diagnostic(
                    f"array '{name}' of shape {list(arrays[name].shape)} does not fit the input "
                    f"'{slot.name}' {_shape_text(slot.shape)}: {problem}",
                    path,
                )
            )
            continue
        bound[slot.name] = arrays[name].astype(slot.dtype.numpy, copy=False)
    if needs_target:
        target = config.target or dataset.target or TARGET
        if target not in arrays:
            problems.append(
                section.diagnostic(
                    f"no target array '{target}' in the data",
                    ("data", "target") if config.target else ("data",),
                    hint=did_you_mean(target, arrays) or f"the data holds: {', '.join(sorted(arrays))}",
                )
            )
        else:
            bound[TARGET] = arrays[target]
    counts = {key: len(array) for key, array in bound.items() if not dataset.graph or key == TARGET}
    if len(set(counts.values())) > 1 and not problems:
        listed = ", ".join(f"{key}: {count}" for key, count in counts.items())
        problems.append(
            section.diagnostic(f"the arrays hold different numbers of examples ({listed})", ("data",))
        )
    if problems:
        raise SpecError(diagnostics=problems)
    return bound


def _default_array(slot: InputSlot, slots: Sequence[InputSlot], dataset: DatasetArrays) -> str:
    """The input's own name; else a dataset's features when the spec has one data input."""
    if slot.name in dataset.arrays or len(slots) > 1 or not dataset.features:
        return slot.name
    return dataset.features


def _shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _shape_problem(array: np.ndarray, slot: InputSlot, whole: bool) -> str | None:
    """Why `array` cannot feed `slot`: whole (a graph's arrays) or one example per row."""
    if array.dtype.kind not in "biuf":
        return f"its dtype {array.dtype} is not numeric"
    if not slot.dtype.is_float and array.dtype.kind == "f":
        return f"the input takes {slot.dtype.value}, the array holds floats"
    shape = tuple(array.shape)
    if len(shape) != len(slot.shape):
        return f"rank {len(shape)} against rank {len(slot.shape)}"
    checked = range(len(shape)) if whole else range(1, len(shape))
    for axis in checked:
        if isinstance(slot.shape[axis], int) and shape[axis] != slot.shape[axis]:
            return f"axis {axis} holds {shape[axis]}, the input needs {slot.shape[axis]}"
    if not whole and isinstance(slot.shape[0], int):
        return f"the input's first axis is fixed at {slot.shape[0]}; batches need a symbolic batch dim (N)"
    return None


def _split(config: DataConfig, bound: dict[str, np.ndarray], dataset: DatasetArrays) -> Splits:
    count = len(bound[TARGET]) if dataset.graph else len(next(iter(bound.values())))
    order = np.random.default_rng(config.split_seed).permutation(count)
    n_test = round(config.test * count)
    n_validation = round(config.validation * count)
    parts = {
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_validation],
        "train": np.sort(order[n_test + n_validation :]),
    }
    if dataset.graph:
        shared = {k: v for k, v in bound.items() if k != TARGET}
        made = {
            name: {**shared, TARGET: bound[TARGET], NODES: idx.astype(np.int64)}
            for name, idx in parts.items()
        }
        return Splits(made["train"], made["validation"], made["test"], graph=True)
    made = {name: {k: v[idx] for k, v in bound.items()} for name, idx in parts.items()}
    return Splits(made["train"], made["validation"], made["test"])


# -- batching -------------------------------------------------------------------------------


class ResumableSampler:
    """`DistributedSampler`'s order for `epoch` (rank `rank` of `world`), starting `skip`
    examples in: a run resumed mid-epoch sees the batches the interrupted one had left."""

    def __init__(self, count: int, world: int, rank: int, shuffle: bool, seed: int) -> None:
        from torch.utils.data import DistributedSampler

        self._sampler = DistributedSampler(
            range(count), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed
        )
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self._sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._sampler)[self.skip :])

    def __len__(self) -> int:
        return len(self._sampler) - self.skip


def train_loader(
    split: Mapping[str, np.ndarray], batch_size: int, sampler: ResumableSampler
) -> torch.utils.data.DataLoader:
    """Batches of `batch_size` examples (this process's share of the global batch)."""
    import torch
    from torch.utils.data import DataLoader

    tensors = _tensors(split)
    count = len(next(iter(tensors.values())))
    # A generator of its own: DataLoader otherwise draws a seed from the global generator
    # for every epoch's iterator, and a run resumed mid-epoch would draw one more.
    return DataLoader(
        range(count),
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=_Collate(tensors),
        generator=torch.Generator().manual_seed(0),
    )


def eval_batches(split: Mapping[str, np.ndarray], batch_size: int, graph: bool) -> Iterator[dict[str, Any]]:
    """The split in order, in batches (a graph: the whole graph once)."""
    tensors = _tensors(split)
    if graph:
        yield tensors
        return
    count = len(next(iter(tensors.values()))) if tensors else 0
    for start in range(0, count, batch_size):
        yield {k: v[start : start + batch_size] for k, v in tensors.items()}


def graph_batches(split: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """A graph trains full-batch: one step per epoch on the split's nodes."""
    return [_tensors(split)]


def _tensors(split: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in split.items()}


class _Collate:
    """Index lists -> a batch dict; a class (not a lambda) so DataLoader workers can pickle it."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        import torch

        index = torch.as_tensor(indices)
        return {k: v[index] for k, v in self.tensors.items()}
