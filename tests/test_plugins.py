"""Plugins: the example third-party package, failures rolled back, strictness, disabling,
and name clashes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlc.registry import load_registry
from dlc.testing import max_relative_error, op_parity
from tests.conftest import EXAMPLES, SPECS, run_cli
from tests.test_specs import settings_for


def fake_distribution(root: Path, module: str, source: str, entry_name: str | None = None) -> None:
    """A minimal installed distribution whose `dlc.plugins` entry point is `module`."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[dlc.plugins]\n{entry_name or module} = {module}\n")


BROKEN_IMPORT = "raise ImportError('needs libfoo, which is not installed')\n"

BROKEN_REGISTRATION = """
from pydantic import ConfigDict
from dlc.plugin_api import BlockConfig, BlockType, OpDef, hookimpl

class Config(BlockConfig):
    pass

@hookimpl
def dlc_block_types():
    return [BlockType("broken_block", Config, lambda ctx, config, inputs: inputs[0])]

@hookimpl
def dlc_ops():
    # no samples: every op must bring samples, so this plugin is rolled back
    return [OpDef("broken_op", None, None, None, lambda: [])]
"""

CLASHING = """
from dlc.plugin_api import BlockConfig, BlockType, hookimpl

class Config(BlockConfig):
    pass

@hookimpl
def dlc_block_types():
    return [BlockType("relu", Config, lambda ctx, config, inputs: ctx.op("relu", inputs[0]))]
"""


@pytest.fixture
def broken_plugins(tmp_path: Path) -> dict[str, str]:
    fake_distribution(tmp_path, "broken_import", BROKEN_IMPORT)
    fake_distribution(tmp_path, "broken_registration", BROKEN_REGISTRATION)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_example_plugin_is_listed_and_its_spec_compiles(example_plugin_path: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(example_plugin_path)}
    plugins = {p["name"]: p for p in json.loads(run_cli("plugins", "--json", env=env).stdout)}
    assert plugins["example"]["status"] == "loaded" and plugins["example"]["version"] == "0.1.0"
    assert plugins["example"]["provides"]["blocks"] == ["swish"]
    assert plugins["example"]["provides"]["templates"] == ["swish_mlp_block"]
    spec = str(EXAMPLES / "swish_mlp.yaml")
    assert run_cli("compile", spec, "-o", str(tmp_path / "s.onnx"), env=env).code == 0
    assert run_cli("compile", spec, "--target", "torch", "-o", str(tmp_path / "pkg"), env=env).code == 0
    summary = json.loads(run_cli("summary", spec, "--json", env=env).stdout)
    assert summary["params"] == 32 * 64 + 64 + 1 + 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_example_plugin_op_and_spec_parity(example_plugin_path: Path) -> None:
    sys.path.insert(0, str(example_plugin_path))
    try:
        registry = load_registry()
        op = registry.op("example.swish")
        for sample in op.samples():
            onnx_out, torch_out = op_parity(op, sample, registry)
            assert max_relative_error(onnx_out[0], torch_out[0]) <= 1e-5
        import dlc

        model = dlc.compile(EXAMPLES / "swish_mlp.yaml", registry=registry)
        x = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
        import torch

        with torch.no_grad():
            torch_out = model.torch_module()(torch.from_numpy(x)).numpy()
        assert max_relative_error(model.run({"x": x})["logits"], torch_out) <= 1e-5
    finally:
        sys.path.remove(str(example_plugin_path))


def test_without_the_plugin_the_spec_names_the_missing_block() -> None:
    result = run_cli("validate", str(EXAMPLES / "swish_mlp.yaml"))
    assert result.code == 1
    assert "unknown block 'swish'" in result.stderr


def test_broken_plugins_are_listed_as_failed_and_the_rest_works(broken_plugins, tmp_path) -> None:
    result = run_cli("plugins", "--json", env=broken_plugins)
    assert result.code == 0
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["broken_import"]["status"] == "failed"
    assert "needs libfoo" in plugins["broken_import"]["error"]
    assert plugins["broken_registration"]["status"] == "failed"
    assert "no sample inputs" in plugins["broken_registration"]["error"]
    assert plugins["core"]["status"] == "loaded"
    assert result.stderr.count("plugin 'broken_import' failed to load") == 1  # warned once
    for spec in sorted(SPECS.rglob("*.yaml")):
        smaller = [f"--set={key}={value}" for key, value in settings_for(spec)["set"].items()]  # CI sizes
        compiled = run_cli(
            "compile", str(spec), "-o", str(tmp_path / f"{spec.stem}.onnx"), *smaller, env=broken_plugins
        )
        assert compiled.code == 0, compiled.output


def test_a_spec_using_a_failed_plugins_block_names_the_plugin(broken_plugins, tmp_path) -> None:
    spec = tmp_path / "uses.yaml"
    spec.write_text("dlc: 1\nname: u\ninputs: {x: {shape: [2]}}\nlayers:\n  - broken_block\n")
    result = run_cli("validate", str(spec), env=broken_plugins)
    assert result.code == 1
    assert (
        "block 'broken_block' comes from plugin 'broken_registration', which failed to load" in result.stderr
    )
    assert "no sample inputs" in result.stderr
    assert f"{spec}:5:5" in result.stderr


def test_strict_plugins_turns_failures_into_errors(broken_plugins) -> None:
    result = run_cli("validate", "specs/mlp.yaml", "--strict-plugins", env=broken_plugins)
    assert result.code == 1
    assert "plugin 'broken_import' failed to load" in result.stderr
    assert "Traceback" not in result.output


def test_strict_plugins_before_the_command_is_honoured(broken_plugins) -> None:
    result = run_cli("--strict-plugins", "validate", "specs/mlp.yaml", env=broken_plugins)
    assert result.code == 1, result.output
    assert "plugin 'broken_import' failed to load" in result.stderr


def test_disabled_plugins_are_not_imported(broken_plugins) -> None:
    env = {**broken_plugins, "DLC_DISABLE_PLUGINS": "broken_import,broken_registration"}
    result = run_cli("plugins", "--json", env=env)
    statuses = {p["name"]: p["status"] for p in json.loads(result.stdout)}
    assert statuses["broken_import"] == statuses["broken_registration"] == "disabled"
    assert "failed" not in result.stderr
    assert run_cli("validate", "specs/mlp.yaml", "--strict-plugins", env=env).code == 0


def test_a_name_clash_is_an_error_only_where_used(tmp_path) -> None:
    fake_distribution(tmp_path, "clashing", CLASHING)
    env = {"PYTHONPATH": str(tmp_path)}
    assert run_cli("validate", "specs/residual_mlp.yaml", env=env).code == 0  # uses no relu
    result = run_cli("validate", "specs/mlp.yaml", env=env)
    assert result.code == 1
    assert "block 'relu' is provided by several plugins: 'core', 'clashing'" in result.stderr
