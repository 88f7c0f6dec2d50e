"""The plugin manifest (`dlc.plugin_manifest`): plugins unchanged since they last loaded
are imported only when a spec needs them, and a manifest never serves a stale answer: a
plugin installed, edited or failing after the last run is seen at once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import dlc
from dlc.plugin_manifest import MANIFEST_FILE
from dlc.registry import load_registry
from tests.conftest import EXAMPLES, REPO, SPECS, run_cli
from tests.test_plugins import BROKEN_IMPORT, fake_distribution
from tests.test_specs import settings_for

BUILTIN_FAMILIES = {"dlc", "core", "cnn", "attention", "generative", "geometric", "recurrent"}

LATE_PLUGIN = """
from dlc.plugin_api import BlockConfig, BlockType, hookimpl

class Config(BlockConfig):
    pass

@hookimpl
def dlc_block_types():
    return [BlockType("{block}", Config, lambda ctx, config, inputs: ctx.op("relu", inputs[0]))]
"""


def spec_using(tmp_path: Path, block: str) -> Path:
    spec = tmp_path / f"uses_{block}.yaml"
    spec.write_text(f"dlc: 1\nname: uses\ninputs: {{x: {{shape: [N, 4]}}}}\nlayers:\n  - {block}\n")
    return spec


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory, for this process and the dlc processes it starts."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DLC_CACHE_DIR", str(folder))
    return folder


def manifest(cache: Path) -> dict:
    return json.loads((cache / MANIFEST_FILE).read_text())["plugins"]


def test_a_run_records_what_each_plugin_provides(cache: Path) -> None:
    assert run_cli("validate", "specs/mlp.yaml").code == 0
    plugins = manifest(cache)
    assert set(plugins) == BUILTIN_FAMILIES
    assert "conv2d" in plugins["cnn"]["provides"]["blocks"]
    assert "bottleneck" in plugins["cnn"]["provides"]["templates"]
    passes = plugins["cnn"]["passes"]  # each pass's level and the ops it needs
    assert sorted({level for level, _ in passes}) == [2, 3]  # -O2 passes and opt-in ones
    assert [2, ["add", "batch_norm", "mul"]] in passes and [2, ["conv"]] in passes


def test_a_warm_registry_imports_only_the_plugins_a_lookup_needs(cache: Path) -> None:
    cold = load_registry()
    assert not cold._deferred  # nothing recorded yet: every plugin imported
    warm = load_registry()
    assert set(warm._deferred) == BUILTIN_FAMILIES
    warm.block("conv2d")
    assert "cnn" not in warm._deferred and "attention" in warm._deferred
    assert {p.name: p.status for p in warm.plugins} == {p.name: p.status for p in cold.plugins}
    assert not warm._deferred  # listing the plugins loads them all


def test_deferred_plugins_keep_the_discovery_order_of_passes_and_providers(cache: Path) -> None:
    cold = load_registry()
    warm = load_registry()
    warm.block("lstm")  # recurrent first, then the rest: the order must not change
    warm.block("conv2d")
    assert [p.name for p in warm.passes] == [p.name for p in cold.passes]
    assert [p.plugin for p in warm.projections] == [p.plugin for p in cold.projections]
    assert [lib.path for lib in warm.template_libraries] == [lib.path for lib in cold.template_libraries]
    assert sorted(warm.templates()) == sorted(cold.templates())


def test_level_zero_loads_no_plugin_for_passes(cache: Path) -> None:
    load_registry()
    warm = load_registry()
    assert warm.passes_up_to(0) == []
    assert set(warm._deferred) == BUILTIN_FAMILIES
    assert [p.name for p in warm.passes_up_to(2)] == [p.name for p in load_registry().passes if p.level <= 2]


def test_optimizing_a_graph_imports_only_plugins_whose_passes_may_change_it(cache: Path) -> None:
    """-O2 leaves out passes that need ops the graph lacks (`PassInfo.needs_ops`), and a
    deferred plugin whose passes are all left out is not imported: an MLP needs neither the
    CNN folds nor the attention fusions. The pipeline is the same whichever plugins are
    loaded, so cold and warm runs print the same pass records."""
    cold = load_registry()
    mlp_ops = {"input", "parameter", "linear", "relu", "dropout"}
    warm = load_registry()
    chosen = [p.name for p in warm.passes_up_to(2, mlp_ops)]
    assert {"cnn", "attention"} <= set(warm._deferred)
    assert chosen == [p.name for p in cold.passes_up_to(2, mlp_ops)]
    assert "dead-code-elimination" in chosen and "fold-batch-norm" not in chosen
    assert "fuse-self-attention" not in chosen
    with_norm = [p.name for p in warm.passes_up_to(2, {*mlp_ops, "batch_norm"})]
    assert "cnn" not in warm._deferred and "fold-batch-norm" in with_norm
    assert "fold-pad-into-conv" not in with_norm  # no conv to fold a pad into
    model = dlc.compile(SPECS / "mlp.yaml", registry=load_registry())
    assert [r.name for r in model.pass_records] == chosen


def test_a_pass_without_needed_ops_may_change_any_graph() -> None:
    from dlc.passes.manager import PassInfo, graph_ops

    everywhere = PassInfo("p", lambda context: None, "")
    assert everywhere.may_change({"relu"}) and everywhere.may_change(set())
    convs_only = PassInfo("q", lambda context: None, "", needs_ops=frozenset({"conv"}))
    assert not convs_only.may_change({"relu"}) and convs_only.may_change({"conv", "relu"})
    assert convs_only.may_change(None)  # ops unknown: kept
    sampler = dlc.compile(SPECS / "generative" / "ddpm_cifar10.yaml", opt_level=0, sampling={"steps": 2})
    assert "conv" in graph_ops(sampler.graph)  # the U-Net's convs inside the sampler's loop body
    assert "conv" not in {node.op for node in sampler.graph}


SPEC_PATHS = sorted(SPECS.rglob("*.yaml"))


@pytest.mark.parametrize("path", SPEC_PATHS, ids=[str(p.relative_to(REPO)) for p in SPEC_PATHS])
def test_cold_and_warm_registries_compile_the_same_bytes(path: Path, cache: Path) -> None:
    overrides = settings_for(path)["set"]  # the CI sizes of tests/test_specs.py
    cold, warm = load_registry(), load_registry()
    assert warm._deferred
    for level in (0, 2):
        produced = [
            dlc.compile(path, opt_level=level, overrides=overrides, registry=registry)
            .onnx_model()
            .SerializeToString()
            for registry in (cold, warm)
        ]
        assert produced[0] == produced[1], f"-O{level}"


def test_a_plugin_installed_after_the_last_run_is_used(
    cache: Path, example_plugin_path: Path, tmp_path: Path
) -> None:
    spec = str(EXAMPLES / "swish_mlp.yaml")
    assert run_cli("validate", "specs/mlp.yaml").code == 0  # the manifest knows the built-ins only
    missing = run_cli("validate", spec)
    assert missing.code == 1 and "unknown block 'swish'" in missing.stderr
    env = {"PYTHONPATH": str(example_plugin_path)}  # now the plugin is installed
    first = run_cli("compile", spec, "-o", str(tmp_path / "first.onnx"), env=env)
    assert first.code == 0, first.output
    assert manifest(cache)["example"]["provides"]["blocks"] == ["swish"]
    second = run_cli("compile", spec, "-o", str(tmp_path / "second.onnx"), env=env)  # deferred now
    assert second.code == 0, second.output
    assert (tmp_path / "first.onnx").read_bytes() == (tmp_path / "second.onnx").read_bytes()
    assert run_cli("validate", spec).code == 1  # uninstalled again: its entry is dropped
    assert "example" not in manifest(cache)


def test_a_plugin_edited_after_the_last_run_is_imported_again(cache: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "late_plugin", LATE_PLUGIN.replace("{block}", "late_a"))
    env = {"PYTHONPATH": str(site)}
    assert run_cli("validate", str(spec_using(tmp_path, "late_a")), env=env).code == 0
    assert manifest(cache)["late_plugin"]["provides"]["blocks"] == ["late_a"]
    module = site / "late_plugin.py"
    module.write_text(LATE_PLUGIN.replace("{block}", "late_block_b"))
    os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 10**9))
    result = run_cli("validate", str(spec_using(tmp_path, "late_block_b")), env=env)
    assert result.code == 0, result.output
    gone = run_cli("validate", str(spec_using(tmp_path, "late_a")), env=env)
    assert gone.code == 1 and "unknown block 'late_a'" in gone.stderr


def test_a_failing_plugin_is_never_recorded_and_warns_every_run(cache: Path, tmp_path: Path) -> None:
    fake_distribution(tmp_path, "broken_import", BROKEN_IMPORT)
    env = {"PYTHONPATH": str(tmp_path)}
    for _ in range(2):
        result = run_cli("validate", "specs/mlp.yaml", env=env)
        assert result.code == 0
        assert result.stderr.count("plugin 'broken_import' failed to load") == 1
        assert "broken_import" not in manifest(cache)


def test_a_corrupt_manifest_is_ignored_and_rewritten(cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / MANIFEST_FILE).write_text("{not json")
    assert run_cli("validate", "specs/mlp.yaml").code == 0
    assert set(manifest(cache)) == BUILTIN_FAMILIES


def test_the_manifest_can_be_turned_off(cache: Path) -> None:
    assert run_cli("validate", "specs/mlp.yaml", env={"DLC_PLUGIN_CACHE": "0"}).code == 0
    assert not (cache / MANIFEST_FILE).exists()
