"""The CNN zoo: full-size parameter and MAC counts against the reference models, and
ONNX Runtime vs ejected PyTorch with weights that keep the signal alive.

Counts: parameters exactly, MACs within 1% (figures from reference_models.json:
torchvision's published num_params and _ops, or the model built in torch and counted
with FlopCounterMode / 2, batch 1). Counting lowers the spec only, so even VGG-16 never
draws its 138M weights.

Parity: tests/test_specs.py runs every spec with torch's default initialization, under
which a deep stack such as VGG-16 shrinks the input's contribution to the logits below
1e-6 (they are the last biases), so agreement there says little about the early layers.
Here the same reduced-size specs (tests/spec_settings/cnn.yaml) run with He-normal
weights, zero biases and random batch-norm statistics, and the outputs must both depend
on the input and agree within 1e-4 relative to their scale."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

import dlc
from dlc.runtime import Session, random_inputs
from dlc.testing import max_relative_error
from tests.conftest import REPO, SPECS, run_cli
from tests.plugins.cnn.references import (
    BasicBlock,
    Bottleneck,
    ResNet,
    inputs,
    randomize,
    save_state_dict,
)
from tests.test_specs import ejected_outputs, settings_for

ZOO = SPECS / "cnn"


class Reference(NamedTuple):
    params: int
    macs: int  # at batch 1 and `dims`
    source: str
    dims: dict[str, int] | None = None


REFERENCE = {
    "lenet5.yaml": Reference(61_706, 416_520, "LeNet-5, modern layer sizes (PyTorch tutorial Net)"),
    "alexnet.yaml": Reference(61_100_840, 714_188_480, "torchvision alexnet"),
    "vgg16.yaml": Reference(138_357_544, 15_470_264_320, "torchvision vgg16"),
    "vgg16_bn.yaml": Reference(138_365_992, 15_470_264_320, "torchvision vgg16_bn"),
    "resnet18.yaml": Reference(11_689_512, 1_814_073_344, "torchvision resnet18"),
    "resnet50.yaml": Reference(25_557_032, 4_089_184_256, "torchvision resnet50"),
    "googlenet.yaml": Reference(6_624_904, 1_498_376_192, "torchvision googlenet, aux_logits=False"),
    # torchvision's models, counted as reference_models.json counts (FlopCounterMode / 2, batch 1)
    "mobilenet_v2.yaml": Reference(3_504_872, 300_774_272, "torchvision mobilenet_v2"),
    "efficientnet_b0.yaml": Reference(5_288_548, 385_814_752, "torchvision efficientnet_b0"),
    "convnext_tiny.yaml": Reference(28_589_128, 4_455_531_264, "torchvision convnext_tiny"),
    "inception_v1.yaml": Reference(6_998_552, 1_582_671_872, "GoogLeNet paper-faithful, without aux heads"),
    "unet.yaml": Reference(
        31_030_658, 150_428_424_448, "U-Net, Ronneberger 2015 (valid convs, crop and concat)"
    ),
    "wavenet.yaml": Reference(1_515_968, 1_484_800, "WaveNet, ibab/tensorflow-wavenet defaults (per sample)"),
    # No reference model: 20,000 x 300 embedding + 100 x 300 x (3 + 4 + 5) + 300 + 300 x 2 + 2;
    # MACs 100 x 300 x (3 x 48 + 4 x 47 + 5 x 46) + 300 x 2 for a 50-token sentence.
    "text_cnn.yaml": Reference(6_360_902, 16_860_600, "Kim 2014 CNN (counted by hand)", {"T": 50}),
}


def test_every_zoo_spec_has_reference_counts() -> None:
    assert sorted(p.name for p in ZOO.glob("*.yaml")) == sorted(REFERENCE)


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_zoo_spec_matches_the_reference_counts(spec: str) -> None:
    reference = REFERENCE[spec]
    summary = dlc.compile(ZOO / spec, opt_level=0).summary(reference.dims)
    assert summary.params == reference.params
    assert abs(summary.macs - reference.macs) <= 0.01 * reference.macs, f"{summary.macs:,} MACs"


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_dlc_summary_json_reports_the_counts(spec: str) -> None:
    reference = REFERENCE[spec]
    dims = [f"--dim={name}={size}" for name, size in (reference.dims or {}).items()]
    result = run_cli("summary", str(ZOO / spec), "--json", *dims)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["params"] == reference.params
    assert abs(report["macs"] - reference.macs) <= 0.01 * reference.macs


def keep_signal(model: dlc.CompiledModel) -> None:
    """He-normal weights (std sqrt(2 / fan_in)), zero biases, random normalization weights
    and statistics, written into the model's tensors in place."""
    rng = np.random.default_rng(0)
    for node in model.graph.parameters():
        array, name = model.tensor(node), node.attrs.name
        if not np.issubdtype(array.dtype, np.floating):
            continue
        if name.endswith("running_var") or (array.ndim == 1 and name.endswith("weight")):
            array[...] = rng.uniform(0.5, 1.5, array.shape)  # variances and normalization scales
        elif name.endswith("running_mean"):
            array[...] = 0.1 * rng.standard_normal(array.shape)
        elif name.endswith("bias"):
            array[...] = 0.0
        else:  # conv [out, in / groups, *kernel], linear [out, in], locally connected [.., .., out, in, p, q]
            fan_in = math.prod(array.shape[3:]) if array.ndim == 6 else math.prod(array.shape[1:])
            array[...] = rng.standard_normal(array.shape) * math.sqrt(2.0 / fan_in)


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_zoo_spec_runs_the_same_in_onnx_runtime_and_torch_with_a_live_signal(
    spec: str, tmp_path: Path
) -> None:
    settings = settings_for(ZOO / spec)
    model = dlc.compile(ZOO / spec, overrides=settings["set"])
    keep_signal(model)
    session = Session(model.onnx_model(), "cpu")
    dims = {name: settings["dims"].get(name, [3])[-1] for name in session.dim_names()}
    first, second = random_inputs(session, dims, seed=0), random_inputs(session, dims, seed=1)
    onnx_first, onnx_second = session.run(first), session.run(second)
    torch_first = ejected_outputs(model, tmp_path, first)
    for name, expected in onnx_first.items():
        # Relative to the output's own scale, also below 1 (stricter than max_relative_error
        # there): EfficientNet's sigmoid gates halve the signal in many blocks, leaving
        # logits of ~1e-3 under these weights.
        scale = float(np.abs(expected).max())
        assert scale > 0, f"{name} is all zeros"
        assert np.abs(expected - onnx_second[name]).max() / scale > 1e-2, (
            f"{name} hardly depends on the input"
        )
        difference = float(np.abs(expected - torch_first[name]).max()) / scale
        assert difference <= max(float(settings["tolerance"]), 1e-4)


@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        ("resnet18.yaml", lambda: ResNet(BasicBlock, [2, 2, 2, 2], classes=10, width=8)),
        ("resnet50.yaml", lambda: ResNet(Bottleneck, [3, 4, 6, 3], classes=10, width=8)),
    ],
)
def test_resnets_are_torchvisions_with_its_weights(spec: str, reference, tmp_path: Path) -> None:
    """torchvision's architecture (re-implemented in references.py, an eighth of the width,
    64x64 inputs): its randomized state_dict loads with no renaming and gives the same
    logits. test_torchvision_weights.py checks torchvision itself."""
    module = randomize(reference())
    weights = save_state_dict(module, tmp_path / "w.safetensors")
    model = dlc.compile(ZOO / spec, overrides={"image": 64, "width": 8, "classes": 10}, weights=weights)
    x = inputs(2, 3, 64, 64)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert max_relative_error(expected, model.run({"image": x}, "cpu")["fc"]) <= 1e-4


def test_wavenet_is_causal_and_its_macs_scale_with_the_length() -> None:
    model = dlc.compile(ZOO / "wavenet.yaml")
    x = inputs(1, 256, 48)
    later = x.copy()
    later[..., 30:] = inputs(1, 256, 18, seed=1)
    before, after = (model.run({"audio": a}, "cpu")["postprocess2"] for a in (x, later))
    assert np.allclose(before[..., :30], after[..., :30], rtol=0, atol=1e-6)
    assert not np.allclose(before[..., 30:], after[..., 30:])
    assert model.summary({"T": 16_000}).macs == 23_756_800_000  # one second at 16 kHz


def test_readme_shows_the_unet_spec_as_it_is() -> None:
    readme = (REPO / "README.md").read_text()
    assert (ZOO / "unet.yaml").read_text() in readme
    assert (
        "│ total               │                  │                    │ 31,030,658 │ 150,428,424,448 │"
        in readme
    )
