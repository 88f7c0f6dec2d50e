"""Data for training: packaged datasets, the seeded split, DistributedSampler's shards,
plugin datasets, and dataset options that do not work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlc.errors import SpecError
from dlc.ir.types import DType
from dlc.spec.yaml_source import load_yaml
from dlc.training.config import DataConfig
from dlc.training.data import TARGET, InputSlot, ResumableSampler, load_splits
from dlc.training.datasets import PACKAGED_DATASETS, DatasetArrays, DatasetInfo
from dlc.training.section import TrainingSource

IMAGE = InputSlot("image", ("N", 1, 8, 8), DType.float32)


def _section(text: str = "data: {dataset: digits}") -> TrainingSource:
    data, source = load_yaml(text, "train.yaml")
    return TrainingSource(data, source, (), Path("."))


def test_the_packaged_datasets_need_no_download_and_have_their_shapes() -> None:
    shapes = {
        info.name: {k: v.shape for k, v in info.load({}, 0).arrays.items()} for info in PACKAGED_DATASETS
    }
    assert shapes["digits"] == {"image": (1797, 1, 8, 8), "pixels": (1797, 64), "label": (1797,)}
    assert shapes["moons"] == {"x": (1000, 2), "label": (1000,)}
    assert shapes["blobs"] == {"x": (1000, 2), "label": (1000,)}
    assert shapes["sbm"]["adjacency"] == (150, 150) and shapes["sbm"]["x"] == (150, 16)


def test_the_sbm_propagation_matrix_is_symmetric_normalized_with_self_loops() -> None:
    (sbm,) = [info for info in PACKAGED_DATASETS if info.name == "sbm"]
    arrays = sbm.load({"blocks": 2, "nodes_per_block": 20}, 1).arrays
    a_hat = arrays["adjacency"]
    adjacency = np.zeros((40, 40), dtype=np.float32)
    adjacency[arrays["edge_index"][0], arrays["edge_index"][1]] = 1
    with_loops = adjacency + np.eye(40)
    degree = with_loops.sum(1)
    np.testing.assert_allclose(a_hat, with_loops / np.sqrt(np.outer(degree, degree)), rtol=1e-6)
    np.testing.assert_array_equal(adjacency, adjacency.T)


def test_the_split_is_seeded_disjoint_and_sized_by_the_fractions() -> None:
    config = DataConfig(dataset="digits", validation=0.1, test=0.2, split_seed=7)
    first = load_splits(config, _section(), [IMAGE], True)
    second = load_splits(config, _section(), [IMAGE], True)
    assert [len(first.split(s)[TARGET]) for s in ("train", "validation", "test")] == [1258, 180, 359]
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(first.split(split)["image"], second.split(split)["image"])
    other = load_splits(config.model_copy(update={"split_seed": 8}), _section(), [IMAGE], True)
    assert not np.array_equal(first.test["image"], other.test["image"])


def test_two_shards_of_an_epoch_are_the_single_process_order_interleaved() -> None:
    single = ResumableSampler(100, 1, 0, shuffle=True, seed=3)
    shards = [ResumableSampler(100, 2, rank, shuffle=True, seed=3) for rank in (0, 1)]
    for epoch in (0, 1):
        for sampler in (single, *shards):
            sampler.set_epoch(epoch)
        order = list(single)
        assert list(shards[0]) == order[0::2] and list(shards[1]) == order[1::2]
    single.set_epoch(1)
    first_epoch = ResumableSampler(100, 1, 0, shuffle=True, seed=3)
    first_epoch.set_epoch(0)
    assert list(single) != list(first_epoch)  # reshuffled every epoch
    single.set_epoch(1, skip=40)
    assert list(single) == order[40:] and len(single) == 60  # a resumed epoch


def test_a_plugin_dataset_is_found_by_name() -> None:
    def load(options, seed):
        return DatasetArrays({"image": np.zeros((10, 1, 8, 8), np.float32), "y": np.arange(10)}, "image", "y")

    plugin = DatasetInfo("zeros", "ten blank images", load)
    splits = load_splits(
        DataConfig(dataset="zeros", validation=0, test=0.2), _section(), [IMAGE], True, [plugin]
    )
    assert len(splits.train[TARGET]) == 8


def test_dataset_options_a_dataset_cannot_use_are_located_errors() -> None:
    section = _section("data: {dataset: moons, options: {n_samples: many}}")
    with pytest.raises(SpecError) as error:
        load_splits(DataConfig(dataset="moons", options={"n_samples": "many"}), section, [IMAGE], True)
    assert "train.yaml:1:33: error: dataset 'moons' cannot be built with these options" in str(error.value)
    with pytest.raises(SpecError) as error:
        load_splits(DataConfig(dataset="moons", options={"samples": 5}), section, [IMAGE], True)
    assert "dataset 'moons' has no option 'samples'" in str(error.value)
