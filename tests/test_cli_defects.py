"""Small command-line defects (issue 11, item 9): usage errors exit 2, errors name the
option that caused them, and messages say what an option takes."""

from __future__ import annotations

import argparse
import re

from dlc.cli import build_parser
from tests.conftest import EXAMPLES, REPO, run_cli


def test_set_without_equals_is_a_usage_error_like_a_bad_dim() -> None:
    result = run_cli("validate", "specs/mlp.yaml", "--set", "width")
    assert result.code == 2, result.output
    assert "--set expects KEY=VALUE" in result.stderr and "'width'" in result.stderr
    assert run_cli("summary", "specs/mlp.yaml", "--dim", "N=abc").code == 2


def test_a_set_value_that_breaks_the_spec_is_named() -> None:
    result = run_cli("validate", "specs/residual_mlp.yaml", "--set", "width=abc")
    assert result.code == 1
    assert "specs/residual_mlp.yaml:24:13: error: invalid 'out' of block 'linear'" in result.stderr
    assert "note: the value comes from --set width=abc" in result.stderr
    # A value used deeper (inside a template, through another name) still names --set.
    deep = run_cli("validate", "specs/cnn/resnet18.yaml", "--set", "width=-4")
    assert deep.code == 1 and "--set width=-4" in deep.stderr


def test_torch_target_refuses_an_onnx_file_name(tmp_path) -> None:
    output = tmp_path / "x.onnx"
    result = run_cli("compile", "specs/mlp.yaml", "--target", "torch", "-o", str(output))
    assert result.code == 2, result.output
    assert "--target torch writes a directory" in result.stderr
    assert not output.exists()


def test_inputs_given_a_spec_says_what_inputs_takes() -> None:
    result = run_cli("run", "specs/mlp.yaml", "--inputs", "specs/mlp.yaml")
    assert result.code == 1
    assert "--inputs takes an .npz archive with one array per model input" in result.stderr
    assert "allow_pickle" not in result.stderr
    assert "dlc run specs/mlp.yaml --random-inputs" in result.stderr


def test_run_on_a_spec_without_a_yaml_name_suggests_running_the_spec(tmp_path) -> None:
    spec = tmp_path / "model.txt"
    spec.write_text((REPO / "specs" / "mlp.yaml").read_text())
    result = run_cli("run", str(spec), "--random-inputs")
    assert result.code == 1
    assert "is not an ONNX model; it looks like a dlc spec" in result.stderr
    assert "dlc run model.yaml --random-inputs" in result.stderr
    other = tmp_path / "junk.onnx"
    other.write_bytes(b"\x00\x01 not a model")
    plain = run_cli("run", str(other), "--random-inputs")
    assert plain.code == 1 and "looks like a dlc spec" not in plain.stderr


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_text() -> None:
    for name, subparser in _subcommands().items():
        for action in subparser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"dlc {name} {action.option_strings[0]} has no help text"


def test_the_readme_command_table_lists_every_command_and_flag() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Command line") :].split("\n\n")[1]
    for name, subparser in _subcommands().items():
        rows = [line for line in table.splitlines() if re.match(rf"\| `dlc {name}\b", line)]
        assert rows, f"the README's command table has no row for `dlc {name}`"
        for action in subparser._actions:
            flags = [o for o in action.option_strings if o.startswith("--") or len(o) == 2]
            if not flags or action.dest in ("help", "strict_plugins", "verbose"):
                continue
            assert any(flag in row for row in rows for flag in flags), f"dlc {name}: {flags} missing"


def test_tests_leave_no_build_output_in_the_tree(example_plugin_path) -> None:
    """The example plugin was just pip-installed (the fixture): nothing built in the tree."""
    assert example_plugin_path.is_dir()
    leftovers = [
        *EXAMPLES.rglob("build"),
        *EXAMPLES.rglob("*.egg-info"),
        *(REPO / "compiler").rglob("*.egg-info"),
    ]
    assert (REPO / "build").exists() is False and leftovers == []
