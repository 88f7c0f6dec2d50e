"""PointNet in dlc: the zoo spec's counts equal reference_models.json (the authors' layout
and vanilla), its parameters load from a plain-torch PointNet written with the PyTorch
port's module names (set_references.py) with no renaming and agree with it within 1e-5 in
ONNX Runtime and the ejected module (random batch-norm statistics, so that every
statistic matters), one ONNX file runs clouds of any size, the T-Net template alone
matches the reference T-Net, and, as a property (hypothesis), permuting the points of a
cloud leaves the logits unchanged within 1e-5."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlc
from dlc.runtime import Session
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS
from tests.plugins.cnn.references import save_state_dict
from tests.plugins.geometric.set_references import (
    PointNetCls,
    STNkd,
    onnx_and_torch_outputs,
    randomize_batch_norms,
)

SPEC = SPECS / "geometric" / "pointnet_cls.yaml"
TOLERANCE = 1e-5


def clouds(batch: int, points: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, channels, points)).astype(np.float32)


@pytest.mark.parametrize(
    ("transforms", "params", "macs"),
    [(True, 3_480_049, 448_025_856), (False, 819_624, 151_857_152)],
    ids=["with-T-Nets", "vanilla"],
)
def test_pointnet_counts_equal_the_reference(transforms: bool, params: int, macs: int) -> None:
    """reference_models.json at 1024 points; the breakdown of the T-Nets too."""
    model = dlc.compile(SPEC, overrides={"transforms": transforms}, opt_level=0)
    summary = model.summary({"N": 1, "P": 1024})
    assert (summary.params, summary.macs) == (params, macs)
    if transforms:
        sizes: dict[str, int] = {}
        for name, array in model.weights().items():  # -O0: the spec's own parameters
            if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
                part = next((p for p in ("feat.stn.", "feat.fstn.") if name.startswith(p)), "rest")
                sizes[part] = sizes.get(part, 0) + array.size
        assert sizes == {"feat.stn.": 803_081, "feat.fstn.": 1_857_344, "rest": 151_680 + 667_944}


def reference_and_model(transforms: bool, directory: Path) -> tuple[PointNetCls, dlc.CompiledModel]:
    torch.manual_seed(7)
    reference = randomize_batch_norms(PointNetCls(40, transforms), seed=7)
    weights = save_state_dict(reference, directory / f"pointnet-{transforms}.safetensors")
    return reference, dlc.compile(SPEC, overrides={"transforms": transforms}, weights=weights)


@pytest.mark.parametrize("transforms", [True, False], ids=["with-T-Nets", "vanilla"])
def test_pointnet_loads_the_reference_state_dict_and_matches_it(transforms: bool, tmp_path: Path) -> None:
    reference, model = reference_and_model(transforms, tmp_path)
    assert sorted(n.attrs.name for n in model.lowered.graph.parameters()) == sorted(reference.state_dict())
    points = clouds(2, 64, seed=1)
    with torch.no_grad():
        expected = reference(torch.from_numpy(points)).numpy()
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"points": points})
    for actual in (onnx_output, torch_output):
        assert max_relative_error(expected, actual) <= TOLERANCE


def test_one_onnx_file_classifies_clouds_of_any_size(tmp_path: Path) -> None:
    reference, model = reference_and_model(True, tmp_path)
    path = tmp_path / "pointnet.onnx"
    model.save(path)
    session = Session(path, "cpu")
    for batch, size in ((1, 1), (3, 17), (2, 500)):
        points = clouds(batch, size, seed=size)
        with torch.no_grad():
            expected = reference(torch.from_numpy(points)).numpy()
        (logits,) = session.run({"points": points}).values()
        assert max_relative_error(expected, logits) <= TOLERANCE


def test_the_tnet_template_alone_matches_the_reference_tnet(tmp_path: Path) -> None:
    torch.manual_seed(8)
    reference = randomize_batch_norms(STNkd(k=5), seed=8)
    weights = save_state_dict(reference, tmp_path / "tnet.safetensors", prefix="stn.")
    spec = load_spec(
        "tnet.yaml",
        text=textwrap.dedent(
            """
            dlc: 1
            name: tnet
            inputs:
              x: {shape: [N, 5, P]}
            layers:
              - tnet: {k: 5}
                id: stn
            """
        ),
    )
    model = dlc.compile(spec, weights=weights)
    x = clouds(3, 20, channels=5, seed=2)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"x": x})
    assert onnx_output.shape == (3, 5, 5)
    for actual in (onnx_output, torch_output):
        assert max_relative_error(expected, actual) <= TOLERANCE


@functools.cache
def pointnet_session() -> tuple[Session, torch.nn.Module]:
    torch.manual_seed(9)
    model = dlc.compile(SPEC, seed=9)
    return Session(model.onnx_model(), "cpu"), model.torch_module()


@settings(max_examples=10, deadline=None)
@given(size=st.integers(1, 200), seed=st.integers(0, 2**16))
def test_permuting_the_points_of_a_cloud_leaves_pointnet_logits_unchanged(size: int, seed: int) -> None:
    session, module = pointnet_session()
    points = clouds(2, size, seed=seed)
    order = np.random.default_rng(seed + 1).permutation(size)
    shuffled = points[:, :, order]
    (logits,) = session.run({"points": points}).values()
    (shuffled_logits,) = session.run({"points": shuffled}).values()
    with torch.no_grad():
        shuffled_torch = module(torch.from_numpy(shuffled)).numpy()
    assert max_relative_error(logits, shuffled_logits) <= TOLERANCE
    assert max_relative_error(logits, shuffled_torch) <= TOLERANCE
