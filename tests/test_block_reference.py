"""`dlc blocks NAME` and `dlc blocks --json`: a block's options with types, defaults, bounds
and descriptions, its ports, its plugin and an example, generated from the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlc.registry import default_registry
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    result = run_cli("blocks", "--json")
    assert result.code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_blocks_conv2d_prints_options_ports_plugin_and_example() -> None:
    result = run_cli("blocks", "conv2d")
    assert result.code == 0, result.output
    text = result.stdout
    assert text.startswith("conv2d (block, plugin cnn)")
    assert "inputs:  1\noutputs: out" in text
    assert "  out: int (required, >= 1)\n      Output channels; input channels are inferred." in text
    assert "  padding_mode: 'zeros' | 'reflect' | 'replicate' | 'circular' (default zeros)" in text
    assert "  bias: bool (default true)\n      Add a learned per-channel bias." in text
    assert text.rstrip().endswith("example:\n  - conv2d: {out: 16, kernel: 3}")


def test_multi_output_blocks_name_their_ports() -> None:
    text = run_cli("blocks", "lstm").stdout
    assert "outputs: out, h, c" in text and "shorthand: `- lstm: VALUE` sets `hidden`" in text


def test_json_carries_json_types_defaults_and_bounds(reference) -> None:
    conv = reference["conv2d"]
    assert conv["plugin"] == "cnn" and conv["kind"] == "block" and conv["outputs"] == ["out"]
    assert conv["options"]["stride"] == {
        "type": "int | list[int]",
        "required": False,
        "default": 1,
        "constraints": [">= 1"],  # checked by a validator, declared for the schema
        "description": "Step between windows: one int, or one per dim.",
    }
    assert conv["options"]["kernel"]["constraints"] == [">= 1"]
    assert conv["options"]["bias"]["default"] is True
    assert conv["options"]["out"]["constraints"] == [">= 1"]
    assert reference["batch_norm"]["options"]["eps"]["default"] == 1e-05
    assert reference["linear"]["options"]["tie"]["default"] is None
    assert reference["basic_block"]["kind"] == "template"
    assert reference["basic_block"]["options"]["stride"]["default"] == 1


def test_every_core_and_cnn_option_has_a_description(reference) -> None:
    undocumented = [
        f"{name}.{option}"
        for name, entry in reference.items()
        if entry["kind"] == "block" and entry["plugin"] in ("core", "cnn")
        for option, info in entry["options"].items()
        if not info["description"]
    ]
    assert undocumented == []


def test_every_blocks_example_is_a_valid_layer(reference) -> None:
    registry = default_registry()
    for name, entry in reference.items():
        (layer,) = yaml.safe_load(entry["example"])
        layer = {name: None} if isinstance(layer, str) else layer
        assert name in layer, entry["example"]
        if entry["kind"] == "block":
            options = layer[name] or {}
            registry.block(name).config.model_validate(options)  # raises when the example is wrong


def test_an_unknown_block_suggests_the_closest() -> None:
    result = run_cli("blocks", "lienar")
    assert result.code == 1
    assert "unknown block 'lienar'" in result.stderr and "did you mean 'linear'?" in result.stderr


def test_plugin_blocks_are_documented_too(example_plugin_path: Path) -> None:
    result = run_cli("blocks", "swish", env={"PYTHONPATH": str(example_plugin_path)})
    assert result.code == 0, result.output
    assert result.stdout.startswith("swish (block, plugin example)")
    assert "example:\n  - swish" in result.stdout
