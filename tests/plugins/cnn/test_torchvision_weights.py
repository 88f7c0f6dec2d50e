"""torchvision's state_dicts load into the zoo specs as they are, and give its outputs.

Each reference is torchvision's own model class, run in a subprocess
(tests/references/torchvision_site.py says why and how), with random weights that keep
the signal alive (its outputs for two images must differ) and random normalization
statistics; its state_dict, saved to safetensors with no renaming, is passed
to dlc, and the logits must agree within 1e-4 relative to their scale. CI runs small
configurations (smaller inputs, and for AlexNet, VGG, ViT and ConvNeXt narrower
classifiers, channels or fewer layers, keeping every kind of key); DLC_FULL_REFERENCES=1 also runs every model at full size on 224x224.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime
import pytest

import dlc
from tests.conftest import SPECS, run_cli
from tests.references.torchvision_site import torchvision_reference

TOLERANCE = 1e-4  # max |dlc - torchvision| / max |torchvision|
FULL_SIZE = os.environ.get("DLC_FULL_REFERENCES") == "1"


class Case(NamedTuple):
    spec: str
    model: str  # a key of tests/references/torchvision_models.BUILDERS
    image: int
    overrides: dict[str, object]  # the spec's params for this configuration
    options: dict[str, object]  # torchvision constructor options


SMALL = {
    "resnet18": Case("cnn/resnet18.yaml", "resnet18", 64, {"classes": 10}, {"classes": 10}),
    "resnet50": Case("cnn/resnet50.yaml", "resnet50", 64, {"classes": 10}, {"classes": 10}),
    "alexnet": Case("cnn/alexnet.yaml", "alexnet", 64, {"hidden": 256, "classes": 10}, {"classes": 10}),
    "vgg16": Case("cnn/vgg16.yaml", "vgg16", 32, {"width": 8, "hidden": 128, "classes": 10}, {"classes": 10}),
    "vgg16_bn": Case(
        "cnn/vgg16_bn.yaml", "vgg16_bn", 32, {"width": 8, "hidden": 128, "classes": 10}, {"classes": 10}
    ),
    "googlenet": Case("cnn/googlenet.yaml", "googlenet", 64, {"classes": 10}, {"classes": 10}),
    "googlenet_transform_input": Case(
        "cnn/googlenet.yaml",
        "googlenet",
        64,
        {"classes": 10, "transform_input": True},
        {"classes": 10, "transform_input": True},
    ),
    "vit_b_16": Case(
        "attention/vit_b16.yaml",
        "vit_b_16",
        64,
        {"image": 64, "dim": 64, "heads": 4, "mlp": 128, "layers": 2, "classes": 10},
        {"image": 64, "classes": 10},
    ),
    "mobilenet_v2": Case("cnn/mobilenet_v2.yaml", "mobilenet_v2", 64, {"classes": 10}, {"classes": 10}),
    "efficientnet_b0": Case(
        "cnn/efficientnet_b0.yaml", "efficientnet_b0", 64, {"classes": 10}, {"classes": 10}
    ),
    "convnext_tiny": Case(
        "cnn/convnext_tiny.yaml",
        "convnext_tiny",
        64,
        {"dims": [24, 48, 96, 192], "depths": [1, 1, 2, 1], "classes": 10},
        {"classes": 10},
    ),
}
FULL = {
    name: Case(spec, model, 224, {}, {})
    for name, (spec, model) in {
        "resnet18": ("cnn/resnet18.yaml", "resnet18"),
        "resnet50": ("cnn/resnet50.yaml", "resnet50"),
        "alexnet": ("cnn/alexnet.yaml", "alexnet"),
        "vgg16": ("cnn/vgg16.yaml", "vgg16"),
        "vgg16_bn": ("cnn/vgg16_bn.yaml", "vgg16_bn"),
        "googlenet": ("cnn/googlenet.yaml", "googlenet"),
        "vit_b_16": ("attention/vit_b16.yaml", "vit_b_16"),
        "mobilenet_v2": ("cnn/mobilenet_v2.yaml", "mobilenet_v2"),
        "efficientnet_b0": ("cnn/efficientnet_b0.yaml", "efficientnet_b0"),
        "convnext_tiny": ("cnn/convnext_tiny.yaml", "convnext_tiny"),
    }.items()
}


def image(size: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)


def check_case(case: Case, size: str, folder: Path) -> float:
    """dlc with torchvision's state_dict against torchvision; the max relative error."""
    x = image(case.image)
    reference = torchvision_reference(case.model, size, x, folder, **case.options)
    overrides = {"image": case.image, **case.overrides}
    model = dlc.compile(SPECS / case.spec, overrides=overrides, weights=reference / "weights.safetensors")
    (actual,) = model.run({"image": x}, "cpu").values()
    expected = np.load(reference / "output.npy")
    # the two images must give different logits, or the comparison says little
    assert relative_to_scale(expected[0], expected[1]) > 1e-2, (
        "torchvision's output hardly depends on the input"
    )
    return relative_to_scale(expected, actual)


def relative_to_scale(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected|: the outputs' own scale, also below 1 (the
    small models' logits are ~0.1)."""
    assert expected.shape == actual.shape and np.abs(expected).max() > 0
    return float(np.abs(expected - actual).max() / np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torchvision_state_dict_loads_as_is_and_agrees(name: str, tmp_path: Path) -> None:
    assert check_case(SMALL[name], "small", tmp_path) <= TOLERANCE


@pytest.mark.skipif(not FULL_SIZE, reason="full-size torchvision models: set DLC_FULL_REFERENCES=1")
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_torchvision_state_dict_loads_as_is_and_agrees(name: str, tmp_path: Path) -> None:
    assert check_case(FULL[name], "full", tmp_path) <= TOLERANCE


def test_dlc_compile_weights_takes_a_torchvision_resnet50_state_dict(tmp_path: Path) -> None:
    """The user's path: torchvision's state_dict as safetensors, `dlc compile --weights`,
    ONNX Runtime; no renaming anywhere."""
    case = SMALL["resnet50"]
    x = image(case.image)
    reference = torchvision_reference(case.model, "small", x, tmp_path / "reference", **case.options)
    onnx_path = tmp_path / "resnet50.onnx"
    settings = [f"--set={key}={value}" for key, value in {"image": case.image, **case.overrides}.items()]
    result = run_cli(
        "compile",
        str(SPECS / case.spec),
        *settings,
        "--weights",
        str(reference / "weights.safetensors"),
        "-o",
        str(onnx_path),
    )
    assert result.code == 0, result.output
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"image": x})
    assert relative_to_scale(np.load(reference / "output.npy"), actual) <= TOLERANCE
