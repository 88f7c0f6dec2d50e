"""The error messages of issue 10 item 10, met while writing modern architectures, each
checked through the CLI: exit code 1, `file:line:col`, the message, no traceback."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.language.parity import write_spec

HEADER = """
dlc: 1
name: bad
inputs:
  x: {shape: [N, 8]}
layers:
"""


def validate(tmp_path, layers: str):
    path = write_spec(tmp_path, HEADER + layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    return path, result.output


def test_a_quoted_repeat_count_is_called_a_string(tmp_path) -> None:
    path, out = validate(tmp_path, '  - repeat: "2"\n    body: [relu]\n')
    assert f"{path}:7:13: error: `repeat` takes a count >= 0, got the string '2'" in out
    assert "hint: write `repeat: 2` without quotes" in out


def test_a_duplicate_id_is_a_duplicate_not_a_self_reference(tmp_path) -> None:
    path, out = validate(tmp_path, "  - linear: 8\n    id: h\n  - relu:\n    in: h\n    id: h\n")
    assert f"{path}:11:9: error: duplicate id 'h'" in out
    assert "takes its own output" not in out
    assert out.count("error:") == 1


def test_tie_and_share_inside_options_name_the_block(tmp_path) -> None:
    path, out = validate(
        tmp_path,
        "  - linear: 8\n    id: fc\n  - conv2d: {out: 4, kernel: 3, tie: fc}\n    in: x\n"
        "  - linear: {out: 8, share: fc}\n    in: x\n",
    )
    assert f"{path}:9:33: error: block 'conv2d' cannot tie a weight: only linear and embedding" in out
    assert f"{path}:11:22: error: `share` is not an option of block 'linear': it belongs to the layer" in out
    assert "stride" not in out


def test_templates_work_inside_time_distributed(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: per_step
        inputs:
          x: {shape: [N, T, 6]}
        blocks:
          ff:
            params: {width: int}
            body:
              - linear: "${width}"
                id: fc
              - relu
        layers:
          - time_distributed: {block: ff, options: {width: 5}}
            id: steps
        """,
    )
    result = run_cli("run", str(path), "--random-inputs", "--dim", "N=2", "--dim", "T=3")
    assert result.code == 0, result.output
    assert "[2, 3, 5]" in result.output or "(2, 3, 5)" in result.output
    bad = write_spec(tmp_path, path.read_text().replace("{width: 5}", "{widht: 5}"), "bad.yaml")
    result = run_cli("validate", str(bad))
    assert result.code == 1 and "Traceback" not in result.output
    assert f"{bad}:14:" in result.output and "unknown key 'widht' for template 'ff'" in result.output
    assert "did you mean 'width'?" in result.output


def test_an_unknown_block_is_not_offered_an_unrelated_family_block(tmp_path) -> None:
    path, out = validate(tmp_path, "  - clamp: {min: 0}\n")
    assert f"{path}:7:5: error: unknown block 'clamp'" in out
    assert "did you mean 'clip' (plugin core)?" in out
    assert "lstmp" not in out


def test_automatic_names_are_listed_as_candidates(tmp_path) -> None:
    path, out = validate(
        tmp_path,
        "  - less:\n    in: [x, x]\n  - where:\n    in: [less_0, x, x]\n  - relu:\n    in: wher_0\n"
        "  - relu:\n    in: zzz\n",
    )
    assert f"{path}:12:9: error: unknown layer 'wher_0' in `in`" in out and "did you mean 'where_0'?" in out
    assert f"{path}:14:9: error: unknown layer 'zzz' in `in`" in out
    assert "layers defined here: less_0, relu_0, relu_1, where_0, x" in out


def test_four_independent_mistakes_are_reported_at_once(tmp_path) -> None:
    path, out = validate(
        tmp_path,
        "  - clamp: {min: 0}\n    in: hiden\n"
        "  - linear: {out: 8, bais: false}\n    in: nothere\n"
        '  - repeat: "3"\n    body: [relu]\n'
        '  - linear: "${widht}"\n    in: x\n',
    )
    expected = [
        f"{path}:7:5: error: unknown block 'clamp'",
        f"{path}:8:9: error: unknown layer 'hiden' in `in`",
        f"{path}:9:22: error: unknown key 'bais' for block 'linear'",
        f"{path}:10:9: error: unknown layer 'nothere' in `in`",
        f"{path}:11:13: error: `repeat` takes a count >= 0, got the string '3'",
        f"{path}:13:13: error: unknown name 'widht'",
    ]
    for line in expected:
        assert line in out, line
    assert "6 errors" in out
