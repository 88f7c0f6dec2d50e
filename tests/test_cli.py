"""The `dlc` command as users run it: subprocesses, exit codes, outputs, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
from safetensors.numpy import load_file, save_file

from tests.conftest import REPO, SPECS, run_cli


def test_summary_json_reports_the_mlp_parameter_count() -> None:
    result = run_cli("summary", "specs/mlp.yaml", "--json")
    assert result.code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["params"] == 235_146
    assert isinstance(summary["macs"], int) and summary["macs"] == 784 * 256 + 256 * 128 + 128 * 10
    assert next(layer["name"] for layer in summary["layers"]) == "linear_0"


def test_summary_dims_scale_the_macs() -> None:
    one = json.loads(run_cli("summary", "specs/mlp.yaml", "--json").stdout)["macs"]
    four = json.loads(run_cli("summary", "specs/mlp.yaml", "--json", "--dim", "N=4").stdout)["macs"]
    assert four == 4 * one


def test_summary_table(tmp_path) -> None:
    result = run_cli("summary", "specs/residual_mlp.yaml")
    assert result.code == 0
    assert "stage.0.linear_0" in result.stdout and "total" in result.stdout


def test_compile_then_run_with_random_inputs(tmp_path) -> None:
    onnx_path = tmp_path / "mlp.onnx"
    result = run_cli("compile", str(SPECS / "mlp.yaml"), "-o", str(onnx_path))
    assert result.code == 0, result.output
    assert f"wrote {onnx_path}" in result.stdout
    onnx.checker.check_model(str(onnx_path), full_check=True)
    out = tmp_path / "out.npz"
    result = run_cli("run", str(onnx_path), "--random-inputs", "--dim", "N=4", "--output", str(out))
    assert result.code == 0, result.output
    assert "CPUExecutionProvider" in result.stdout
    with np.load(out) as arrays:
        assert arrays["logits"].shape == (4, 10)


def test_run_accepts_a_spec_and_an_inputs_file(tmp_path) -> None:
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=np.ones((2, 784), np.float32))
    out = tmp_path / "out.npz"
    result = run_cli(
        "run", "specs/mlp.yaml", "--inputs", str(inputs), "--output", str(out), "--provider", "cpu"
    )
    assert result.code == 0, result.output
    with np.load(out) as arrays:
        assert arrays["logits"].shape == (2, 10)


def test_torch_target_matches_onnx_within_1e5(tmp_path) -> None:
    assert run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "mlp.onnx")).code == 0
    result = run_cli("compile", "specs/mlp.yaml", "--target", "torch", "-o", str(tmp_path / "out"))
    assert result.code == 0, result.output
    script = f"""
import sys, numpy as np, torch
sys.path.insert(0, {str(tmp_path / "out")!r})
from model import load_model
from dlc.runtime import Session
x = np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32)
a = Session({str(tmp_path / "mlp.onnx")!r}, "cpu").run({{"x": x}})["logits"]
with torch.no_grad():
    b = load_model()(torch.from_numpy(x)).numpy()
print(float(np.abs(a - b).max()))
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    assert float(process.stdout) <= 1e-5


def test_print_ir_and_passes() -> None:
    result = run_cli("compile", "specs/mlp.yaml", "--print-ir", "-O0")
    assert result.code == 0
    assert "%dropout_0 = dropout(%relu_0) {p=0.1} : float32[N, 256]" in result.stdout
    optimized = run_cli("compile", "specs/mlp.yaml", "--print-ir")
    assert "dropout" not in optimized.stdout.split("# pass")[0]
    assert "# pass identity-removal: modified" in optimized.stdout


def test_seed_and_set(tmp_path) -> None:
    a = run_cli("compile", "specs/residual_mlp.yaml", "-o", str(tmp_path / "a.onnx"), "--set", "depth=1")
    b = run_cli(
        "compile",
        "specs/residual_mlp.yaml",
        "-o",
        str(tmp_path / "b.onnx"),
        "--set",
        "depth=1",
        "--seed",
        "3",
    )
    assert a.code == b.code == 0
    model = onnx.load(str(tmp_path / "a.onnx"))
    assert not any(t.name.startswith("stage.1.") for t in model.graph.initializer)
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "b.onnx").read_bytes()


def test_weights_round_trip_through_a_torch_package(tmp_path) -> None:
    assert (
        run_cli(
            "compile", "specs/mlp.yaml", "--target", "torch", "-o", str(tmp_path / "pkg"), "--seed", "5"
        ).code
        == 0
    )
    weights = tmp_path / "pkg" / "weights.safetensors"
    result = run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "w.onnx"), "--weights", str(weights))
    assert result.code == 0, result.output
    seeded = run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "s.onnx"), "--seed", "5")
    assert seeded.code == 0
    a = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "w.onnx")).graph.initializer}
    b = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "s.onnx")).graph.initializer}
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_weights_mismatches_are_listed_by_name(tmp_path) -> None:
    weights = load_file(str(_package(tmp_path) / "weights.safetensors"))
    del weights["linear_0.bias"]
    weights["extra.weight"] = np.zeros(3, np.float32)
    weights["logits.weight"] = np.zeros((3, 3), np.float32)
    bad = tmp_path / "bad.safetensors"
    save_file(weights, str(bad))
    result = run_cli("compile", "specs/mlp.yaml", "-o", str(tmp_path / "x.onnx"), "--weights", str(bad))
    assert result.code == 1
    assert "missing tensors: linear_0.bias" in result.stderr
    assert "unexpected tensors: extra.weight" in result.stderr
    assert "'logits.weight' has shape [3, 3], the model needs [10, 128]" in result.stderr
    assert not (tmp_path / "x.onnx").exists()
    assert "Traceback" not in result.output


def _package(tmp_path):
    directory = tmp_path / "pkg"
    assert run_cli("compile", "specs/mlp.yaml", "--target", "torch", "-o", str(directory)).code == 0
    return directory


def test_usage_errors_exit_2() -> None:
    assert run_cli("compile").code == 2
    assert run_cli("compile", "specs/mlp.yaml", "-O3").code == 2
    assert run_cli("run", "specs/mlp.yaml").code == 2
    assert run_cli("run", "specs/mlp.yaml", "--random-inputs", "--dim", "N=zero").code == 2
    assert run_cli("frobnicate").code == 2
    result = run_cli("compile", "specs/mlp.yaml", "--target", "tensorflow")
    assert result.code == 2 and "unknown target 'tensorflow'" in result.stderr


def test_user_errors_exit_1_without_traceback(tmp_path) -> None:
    for args in (
        ("validate", "specs/nope.yaml"),
        ("run", str(tmp_path / "nope.onnx"), "--random-inputs"),
        ("run", "specs/mlp.yaml", "--random-inputs", "--dim", "M=2"),
        ("compile", "specs/mlp.yaml", "--passes", "dead-code"),
    ):
        result = run_cli(*args)
        assert result.code == 1, (args, result.output)
        assert "Traceback" not in result.output
        assert "error" in result.stderr


def test_plugins_blocks_passes_schema_listings() -> None:
    plugins = json.loads(run_cli("plugins", "--json").stdout)
    assert {p["name"]: p["status"] for p in plugins}["core"] == "loaded"
    blocks = json.loads(run_cli("blocks", "--json").stdout)
    linear = next(b for b in blocks if b["name"] == "linear")
    assert linear["plugin"] == "core" and linear["options"]["out"]["required"]
    passes = json.loads(run_cli("passes", "--json").stdout)
    assert [p["name"] for p in passes][-1] == "dead-code-elimination"
    schema = json.loads(run_cli("schema").stdout)
    layer_kinds = schema["$defs"]["Layer"]["anyOf"]
    assert {"$ref": "#/$defs/block.linear"} in layer_kinds
    assert "linear" in schema["$defs"]["block.linear"]["properties"]


def test_schema_validates_the_shipped_specs_and_rejects_a_typo() -> None:
    import jsonschema
    import yaml

    schema = json.loads(run_cli("schema").stdout)
    for path in sorted(SPECS.rglob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load((SPECS / "mlp.yaml").read_text())
    bad["layres"] = bad.pop("layers")
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema accepted a misspelled top-level key")


def test_help_is_available_for_every_command() -> None:
    for command in ("validate", "compile", "summary", "run", "plugins", "blocks", "passes", "schema"):
        result = run_cli(command, "--help")
        assert result.code == 0 and "usage: dlc" in result.stdout
    assert REPO.exists()


def test_portable_is_recorded_in_the_model(tmp_path) -> None:
    for flag, expected in (((), "false"), (("--portable",), "true")):
        path = tmp_path / f"m{len(flag)}.onnx"
        assert run_cli("compile", "specs/mlp.yaml", "-o", str(path), *flag).code == 0
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert metadata["dlc.portable"] == expected


def test_summary_refuses_dims_that_empty_a_layer() -> None:
    result = run_cli("summary", "specs/cnn/text_cnn.yaml", "--json")
    assert result.code == 1
    assert "at N=1, T=1, layer" in result.stderr and "--dim T=64" in result.stderr
    assert (
        json.loads(run_cli("summary", "specs/cnn/text_cnn.yaml", "--json", "--dim", "T=50").stdout)["macs"]
        == 16_860_600
    )


def _buffered_environment() -> dict[str, str]:
    """Output to a pipe block-buffered, as for most users (this machine sets PYTHONUNBUFFERED)."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def test_the_command_exits_with_its_output_and_code_though_it_skips_the_teardown() -> None:
    # `dlc.cli.run` ends with os._exit; whatever was printed must have been flushed first.
    for args, code, stream, text in (
        (("validate", "specs/mlp.yaml"), 0, "stdout", "specs/mlp.yaml: ok (6 layers, 235,146 parameters)"),
        (("--version",), 0, "stdout", "dlc "),
        (("validate", "specs/nope.yaml"), 1, "stderr", "specs/nope.yaml"),
        (("frobnicate",), 2, "stderr", "invalid choice: 'frobnicate'"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "dlc", *args],
            cwd=REPO,
            env=_buffered_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, (args, result.stderr)
        assert text in getattr(result, stream), (args, result.stdout, result.stderr)


def test_the_command_still_waits_for_threads_and_runs_exit_handlers() -> None:
    script = (
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished'))).start()\n"
        "sys.argv = ['dlc', '--version']\n"
        "from dlc.cli import run\n"
        "run()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_buffered_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dlc ") and lines[1:] == ["thread finished", "exit handler ran"]
