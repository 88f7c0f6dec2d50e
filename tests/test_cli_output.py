"""Output that loses nothing: tables never cut names or numbers, on a narrow terminal or
piped; `dlc run --json`; `dlc passes` in the same table style."""

from __future__ import annotations

import json

from tests.conftest import run_cli

# rich treats the output as a terminal of this width (the tests' stdout is a pipe).
NARROW_TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "60"}


def test_piped_summary_prints_every_name_and_number_whole() -> None:
    layers = json.loads(run_cli("summary", "specs/cnn/resnet50.yaml", "--json").stdout)
    result = run_cli("summary", "specs/cnn/resnet50.yaml")
    assert result.code == 0, result.output
    assert "…" not in result.stdout and "┃" not in result.stdout  # plain rows, no box
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:-1]}
    for layer in layers["layers"]:
        assert layer["name"] in rows, layer["name"]
        assert rows[layer["name"]][-2:] == [f"{layer['params']:,}", f"{layer['macs']:,}"]
    assert result.stdout.splitlines()[-1].split() == ["total", f"{layers['params']:,}", f"{layers['macs']:,}"]


def test_a_narrow_terminal_wraps_or_widens_but_never_truncates() -> None:
    result = run_cli("summary", "specs/cnn/resnet50.yaml", env=NARROW_TERMINAL)
    assert result.code == 0, result.output
    assert "┃" in result.stdout and "…" not in result.stdout
    assert "4,089,184,256" in result.stdout  # the MAC total, whole
    assert "25,557,032" in result.stdout
    run = run_cli(
        "run", "specs/cnn/resnet18.yaml", "--random-inputs", "--set", "image=64", env=NARROW_TERMINAL
    )
    assert run.code == 0, run.output
    assert "…" not in run.stdout and "float32" in run.stdout and "┃" in run.stdout
    # Where the terminal has room, short entries (shapes) stay on one line.
    wide = {**NARROW_TERMINAL, "COLUMNS": "100"}
    roomy = run_cli("run", "specs/cnn/resnet18.yaml", "--random-inputs", "--set", "image=64", env=wide)
    assert "[1, 3, 64, 64]" in roomy.stdout


def test_run_json_reports_providers_shapes_and_statistics() -> None:
    result = run_cli("run", "specs/mlp.yaml", "--random-inputs", "--dim", "N=3", "--json")
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["providers"] == ["CPUExecutionProvider"]
    assert report["inputs"]["x"]["shape"] == [3, 784] and report["inputs"]["x"]["dtype"] == "float32"
    logits = report["outputs"]["logits"]
    assert logits["shape"] == [3, 10]
    assert logits["min"] <= logits["mean"] <= logits["max"] and logits["std"] >= 0
    assert isinstance(report["run_ms"], float)


def test_passes_is_a_table_like_the_other_listings() -> None:
    names = [p["name"] for p in json.loads(run_cli("passes", "--json").stdout)]
    piped = run_cli("passes")
    lines = piped.stdout.splitlines()
    assert lines[1].split() == ["level", "pass", "plugin", "description"]
    assert [line.split()[1] for line in lines[2:]] == names
    drawn = run_cli("passes", env={**NARROW_TERMINAL, "COLUMNS": "200"})
    assert "┏" in drawn.stdout and "level" in drawn.stdout and "dead-code-elimination" in drawn.stdout
