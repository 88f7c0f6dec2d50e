"""Deep Sets in dlc against the authors' code (tests/plugins/geometric/set_references.py):
`perm_equivariant` in its four variants and the zoo specs load the reference state_dicts
with no renaming and agree within 1e-5 (relative to the output's scale) in ONNX Runtime
and in the ejected PyTorch module; the zoo counts equal reference_models.json; set pooling
with a padding mask reads only the unpadded elements; and, as properties over random sets
(hypothesis), permuting a set leaves Deep Sets' outputs unchanged and permutes
`perm_equivariant`'s outputs the same way (within 1e-5)."""

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
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS
from tests.plugins.cnn.references import save_state_dict
from tests.plugins.geometric.set_references import (
    PERM_EQUI,
    DeepSetsSum,
    DTanh,
    onnx_and_torch_outputs,
)

TOLERANCE = 1e-5
VARIANTS = [("max", False), ("mean", False), ("max", True), ("mean", True)]
VARIANT_IDS = ["PermEqui1_max", "PermEqui1_mean", "PermEqui2_max", "PermEqui2_mean"]


def compile_text(text: str, **kwargs) -> dlc.CompiledModel:
    return dlc.compile(load_spec("test.yaml", text=textwrap.dedent(text)), **kwargs)


def layer_spec(pool: str, lambda_term: bool, masked: bool = False) -> str:
    mask_input = "  mask: {shape: [N, M], dtype: bool}\n" if masked else ""
    return (
        "dlc: 1\nname: layer\ninputs:\n  x: {shape: [N, M, 5]}\n" + mask_input + "layers:\n"
        f"  - perm_equivariant: {{out: 7, pool: {pool}, lambda_term: {str(lambda_term).lower()}}}\n"
        f"    id: layer\n" + ("    in: [x, mask]\n" if masked else "")
    )


def random_sets(batch: int, size: int, features: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, size, features)).astype(np.float32)


def assert_close(expected: np.ndarray, *actual: np.ndarray, tolerance: float = TOLERANCE) -> None:
    for result in actual:
        error = max_relative_error(expected, result)
        assert error <= tolerance, f"max relative error {error:.2e} > {tolerance:.0e}"


# -- against the reference code ------------------------------------------------------------


@pytest.mark.parametrize(("pool", "lambda_term"), VARIANTS, ids=VARIANT_IDS)
def test_perm_equivariant_loads_the_reference_layer_and_matches_it(
    pool: str, lambda_term: bool, tmp_path: Path
) -> None:
    reference = PERM_EQUI[(pool, lambda_term)](5, 7).eval()
    weights = save_state_dict(reference, tmp_path / "layer.safetensors", prefix="layer.")
    model = compile_text(layer_spec(pool, lambda_term), weights=weights)
    expected_names = ["Gamma.weight", "Gamma.bias"] + (["Lambda.weight"] if lambda_term else [])
    assert sorted(model.weights()) == sorted(f"layer.{name}" for name in expected_names)
    x = random_sets(3, 11, 5, seed=1)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"x": x})
    assert_close(expected, onnx_output, torch_output)


@pytest.mark.parametrize("reference_pool", ["max1", "max", "mean1", "mean"])
def test_deepsets_pointcloud_loads_the_reference_state_dict_as_it_is(
    reference_pool: str, tmp_path: Path
) -> None:
    """The DTanh classifier, at width 64 (full width: the counts test below)."""
    reference = DTanh(64, 3, pool=reference_pool).eval()
    torch.manual_seed(0)
    weights = save_state_dict(reference, tmp_path / "deepsets.safetensors")
    overrides = {
        "dim": 64,
        "pool": reference_pool.rstrip("1"),
        "lambda_term": not reference_pool.endswith("1"),
    }
    model = dlc.compile(SPECS / "geometric/deepsets_pointcloud.yaml", overrides=overrides, weights=weights)
    points = random_sets(2, 100, 3, seed=2)
    with torch.no_grad():
        expected = reference(torch.from_numpy(points)).numpy()
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"points": points})
    assert expected.shape == (2, 40)
    assert_close(expected, onnx_output, torch_output)


def test_deepsets_sum_loads_the_reference_state_dict_as_it_is(tmp_path: Path) -> None:
    reference = DeepSetsSum().eval()
    weights = save_state_dict(reference, tmp_path / "sum.safetensors")
    model = dlc.compile(SPECS / "geometric/deepsets_sum.yaml", weights=weights)
    x = random_sets(4, 10, 1, seed=3)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(model, {"x": x})
    assert_close(expected, onnx_output, torch_output)


# reference_models.json: (parameters, MACs for one set of `size` elements)
ZOO_COUNTS = [
    ("deepsets_pointcloud.yaml", {}, 1000, 208_680, 131_915_776),
    ("deepsets_pointcloud.yaml", {"lambda_term": True}, 1000, 340_520, 132_047_616),
    ("deepsets_sum.yaml", {}, 10, 30_601, 211_100),
]


@pytest.mark.parametrize(
    ("spec", "overrides", "size", "params", "macs"),
    ZOO_COUNTS,
    ids=["deepsets_pointcloud", "deepsets_pointcloud-PermEqui2", "deepsets_sum"],
)
def test_deepsets_zoo_counts_equal_the_reference(
    spec: str, overrides: dict, size: int, params: int, macs: int
) -> None:
    summary = dlc.compile(SPECS / "geometric" / spec, overrides=overrides, opt_level=0).summary(
        {"N": 1, "M": size}
    )
    assert (summary.params, summary.macs) == (params, macs)


# -- padding masks -----------------------------------------------------------------------------


@functools.cache
def masked_pool_model(reduce: str) -> dlc.CompiledModel:
    return compile_text(
        f"""
        dlc: 1
        name: pool
        inputs:
          x: {{shape: [N, M, 3]}}
          mask: {{shape: [N, M], dtype: bool}}
        layers:
          - set_pool: {reduce}
            in: [x, mask]
        """
    )


@settings(max_examples=25, deadline=None)
@given(
    reduce=st.sampled_from(["sum", "mean", "max"]),
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    padding=st.sampled_from([0.0, 1e30, -1e30, float("inf"), float("nan")]),
    seed=st.integers(0, 2**16),
)
def test_masked_set_pooling_reads_only_the_unpadded_elements(
    reduce: str, lengths: list[int], padding: float, seed: int
) -> None:
    """Sets of the given lengths padded to one tensor with `padding` (huge, infinite, NaN):
    pooling with the mask equals pooling each unpadded set alone (an empty set gives 0)."""
    size = max(max(lengths), 1)
    x = random_sets(len(lengths), size, 3, seed)
    mask = np.arange(size)[None, :] < np.array(lengths)[:, None]
    x[~mask] = padding
    expected = np.zeros((len(lengths), 3), np.float32)
    for n, length in enumerate(lengths):
        if length:
            expected[n] = getattr(np, reduce)(x[n, :length], axis=0)
    (onnx_output,), (torch_output,) = onnx_and_torch_outputs(
        masked_pool_model(reduce), {"x": x, "mask": mask}
    )
    assert_close(expected, onnx_output, torch_output)


def test_a_masked_deep_set_gives_each_set_what_it_gives_the_set_alone() -> None:
    """perm_equivariant and set_pool with one mask: a padded batch of sets of lengths 7, 3 and
    1 gives each set the output of that set run alone, unpadded."""
    model = compile_text(
        """
        dlc: 1
        name: masked_deep_set
        inputs:
          x: {shape: [N, M, 3]}
          mask: {shape: [N, M], dtype: bool}
        layers:
          - perm_equivariant: {out: 16, pool: mean, lambda_term: true}
            in: [x, mask]
          - tanh
          - perm_equivariant: {out: 16}
            in: [tanh_0, mask]
          - tanh
          - set_pool: max
            in: [tanh_1, mask]
          - linear: 4
        """
    )
    lengths = [7, 3, 1]
    x = random_sets(3, 7, 3, seed=4)
    mask = np.arange(7)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 1e6
    (padded,), (padded_torch,) = onnx_and_torch_outputs(model, {"x": x, "mask": mask})
    for n, length in enumerate(lengths):
        alone = {"x": x[n : n + 1, :length], "mask": np.ones((1, length), bool)}
        (expected,), _ = onnx_and_torch_outputs(model, alone)
        assert_close(expected[0], padded[n], padded_torch[n])


# -- permutation properties --------------------------------------------------------------------


@functools.cache
def layer_model(pool: str, lambda_term: bool) -> dlc.CompiledModel:
    return compile_text(layer_spec(pool, lambda_term), seed=5)


@functools.cache
def zoo_model(spec: str, **overrides: object) -> dlc.CompiledModel:
    return dlc.compile(SPECS / "geometric" / spec, overrides=overrides, seed=6)


def permuted(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x [N, M, F] with each set's elements shuffled by its own permutation, and the permutations."""
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(x.shape[1]) for _ in range(x.shape[0])])
    return np.take_along_axis(x, orders[:, :, None], axis=1), orders


@settings(max_examples=20, deadline=None)
@given(variant=st.sampled_from(VARIANTS), size=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_permuting_a_set_permutes_perm_equivariant_outputs(
    variant: tuple[str, bool], size: int, seed: int
) -> None:
    model = layer_model(*variant)
    x = random_sets(2, size, 5, seed)
    shuffled, orders = permuted(x, seed + 1)
    (output,), (output_torch,) = onnx_and_torch_outputs(model, {"x": x})
    (permuted_output,), (permuted_torch,) = onnx_and_torch_outputs(model, {"x": shuffled})
    expected = np.take_along_axis(output, orders[:, :, None], axis=1)
    assert_close(expected, permuted_output, np.take_along_axis(output_torch, orders[:, :, None], axis=1))
    assert_close(permuted_output, permuted_torch)


@settings(max_examples=15, deadline=None)
@given(
    case=st.sampled_from(
        [
            ("deepsets_pointcloud.yaml", (("dim", 32),), "points", 3),
            ("deepsets_pointcloud.yaml", (("dim", 32), ("lambda_term", True), ("pool", "mean")), "points", 3),
            ("deepsets_sum.yaml", (), "x", 1),
        ]
    ),
    size=st.integers(1, 60),
    seed=st.integers(0, 2**16),
)
def test_permuting_a_set_leaves_deep_sets_outputs_unchanged(
    case: tuple[str, tuple, str, int], size: int, seed: int
) -> None:
    spec, overrides, input_name, features = case
    model = zoo_model(spec, **dict(overrides))
    x = random_sets(2, size, features, seed)
    shuffled, _ = permuted(x, seed + 1)
    (output,), (output_torch,) = onnx_and_torch_outputs(model, {input_name: x})
    (shuffled_output,), (shuffled_torch,) = onnx_and_torch_outputs(model, {input_name: shuffled})
    assert_close(output, shuffled_output, output_torch, shuffled_torch)
