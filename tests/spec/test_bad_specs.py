"""Bad specs as a user meets them: `dlc validate` in a subprocess. Each case checks the
message, the file:line:col, the YAML path, the hint, exit code 1 and that no traceback is
printed. The specs are written out from the table below."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from tests.conftest import run_cli

HEADER = """\
dlc: 1
name: bad
inputs:
  x: {shape: [N, 16]}
"""


@dataclass(frozen=True)
class Bad:
    name: str
    text: str
    line: int | None  # None: the error concerns the file as a whole
    column: int | None
    message: str
    path: str | None = None
    hint: str | None = None
    args: tuple[str, ...] = ()
    full: bool = False  # `text` is the whole file (no HEADER)


CASES = [
    Bad(
        "yaml-syntax",
        "layers:\n  - linear: {out: 10\n  - relu\n",
        6,
        13,
        "YAML syntax error",
    ),
    Bad(
        "unknown-block",
        "layers:\n  - relu\n  - lienar: 10\n",
        7,
        5,
        "unknown block 'lienar'",
        "layers[1].lienar",
        "did you mean 'linear' (plugin core)?",
    ),
    Bad(
        "misspelled-key",
        "layers:\n  - linear: {outt: 10}\n",
        6,
        14,
        "unknown key 'outt' for block 'linear'",
        "layers[0].linear.outt",
        "did you mean 'out'?",
    ),
    Bad(
        "wrong-type",
        "layers:\n  - linear: {out: ten}\n",
        6,
        19,
        "invalid 'out' of block 'linear'",
        "layers[0].linear.out",
        None,
    ),
    Bad(
        "bad-expression",
        'params: {w: 4}\nlayers:\n  - linear: "${w *}"\n',
        7,
        13,
        "invalid expression 'w *'",
        "layers[0].linear",
    ),
    Bad(
        "unknown-name-in-expression",
        'params: {width: 4}\nlayers:\n  - linear: "${widht}"\n',
        7,
        13,
        "unknown name 'widht'",
        "layers[0].linear",
        "did you mean 'width'?",
    ),
    Bad(
        "unknown-in",
        "layers:\n  - linear: 8\n    id: a\n  - relu:\n    in: b\n",
        9,
        9,
        "unknown layer 'b' in `in`",
        "layers[1].in",
    ),
    Bad(
        "cycle",
        "layers:\n  - linear: 8\n    id: a\n    in: b\n  - linear: 8\n    id: b\n    in: a\n",
        8,
        9,
        "layers form a cycle: a -> b -> a",
        "layers[0].in",
    ),
    Bad(
        "shape-mismatch",
        "layers:\n  - linear: 8\n    id: a\n  - linear: 4\n    id: b\n  - add:\n    in: [a, b]\n",
        10,
        5,
        "shapes [N, 8] and [N, 4] do not match",
        "layers[2]",
    ),
    Bad(
        "missing-output",
        "layers:\n  - linear: 8\noutputs: [logits]\n",
        7,
        11,
        "unknown layer 'logits' in `outputs`",
        "outputs[0]",
    ),
    Bad(
        "missing-version",
        "name: bad\ninputs:\n  x: {shape: [4]}\nlayers: [relu]\n",
        1,
        1,
        "missing `dlc: 1`",
        full=True,
    ),
    Bad(
        "wrong-version",
        "dlc: 2\nname: bad\ninputs:\n  x: {shape: [4]}\nlayers: [relu]\n",
        1,
        6,
        "unsupported spec format version 2",
        "dlc",
        "write `dlc: 1`",
        full=True,
    ),
    Bad(
        "unknown-top-level-key",
        "layer:\n  - relu\n",
        5,
        1,
        "unknown key 'layer'",
        "layer",
        "did you mean 'layers'?",
    ),
    Bad(
        "duplicate-id",
        "layers:\n  - linear: 8\n    id: a\n  - linear: 8\n    id: a\n",
        9,
        9,
        "duplicate id 'a'",
        "layers[1].id",
    ),
    Bad("duplicate-yaml-key", "layers:\n  - linear: {out: 8, out: 9}\n", 6, 22, "duplicate key 'out'"),
    Bad(
        "template-unknown-param",
        'blocks:\n  wide:\n    params: {dim: int}\n    body: [{linear: "${dim}"}]\nlayers:\n  - wide: {dmi: 4}\n',
        10,
        12,
        "unknown key 'dmi' for template 'wide'",
        "layers[0].wide.dmi",
        "did you mean 'dim'?",
    ),
    Bad(
        "template-missing-param",
        'blocks:\n  wide:\n    params: {dim: int, act: str}\n    body: [{linear: "${dim}"}]\nlayers:\n  - wide: {act: relu}\n',
        10,
        11,
        "missing required key 'dim' of template 'wide'",
        "layers[0].wide",
    ),
    Bad(
        "repeat-count",
        "layers:\n  - repeat: -1\n    body: [relu]\n",
        6,
        13,
        "`repeat` takes a count >= 0",
        "layers[0].repeat",
    ),
    Bad(
        "bad-dim",
        "dlc: 1\nname: bad\ninputs:\n  x: {shape: [N, -3]}\nlayers: [relu]\n",
        4,
        18,
        "dims must be positive ints",
        "inputs.x.shape[1]",
        full=True,
    ),
    Bad(
        "bad-dim-expression",
        'dlc: 1\nname: bad\ninputs:\n  x: {shape: [N, "${size - 4}"]}\nparams: {size: 4}\nlayers: [relu]\n',
        4,
        18,
        "a dimension must be positive, got 0",
        "inputs.x.shape[1]",
        full=True,
    ),
    Bad(
        "unknown-dtype",
        "dlc: 1\nname: bad\ninputs:\n  x: {shape: [N], dtype: float33}\nlayers: [relu]\n",
        4,
        26,
        "invalid 'dtype'",
        "inputs.x.dtype",
        full=True,
    ),
    Bad("empty-layers", "layers: []\n", 5, 9, "invalid 'layers'", "layers"),
    Bad(
        "two-blocks-in-one-layer",
        "layers:\n  - linear: 8\n    relu:\n",
        7,
        5,
        "a layer holds one block",
        "layers[0].relu",
    ),
    Bad("division-by-zero", 'params: {w: 4}\nlayers:\n  - linear: "${w // 0}"\n', 7, 13, "division by zero"),
    Bad(
        "identity-shortcut-mismatch",
        "layers:\n  - residual:\n      body: [{linear: 8}]\n      shortcut: identity\n",
        8,
        17,
        "cannot be added",
        "layers[0].residual.shortcut",
    ),
    Bad(
        "merge-needs-inputs",
        "layers:\n  - linear: 8\n  - add\n",
        7,
        5,
        "block 'add' takes at least 2 input(s), got 1",
        "layers[1]",
        "in: [a, b]",
    ),
    Bad(
        "unknown-set-param",
        "params: {width: 4}\nlayers: [relu]\n",
        None,
        None,
        "the spec has no param 'widht'",
        hint="did you mean 'width'?",
        args=("--set", "widht=8"),
    ),
    Bad(
        "inner-repeat-reference",
        "layers:\n  - repeat: 2\n    id: stage\n    body:\n      - linear: 8\n"
        "        id: inner\n      - relu\n  - relu:\n    in: inner\n",
        13,
        9,
        "unknown layer 'inner'",
        "layers[1].in",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_spec_is_reported_with_location(case: Bad, tmp_path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(case.text if case.full else HEADER + textwrap.dedent(case.text))
    result = run_cli("validate", str(path), *case.args)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    location = f"{path}" + (f":{case.line}" if case.line else "") + (f":{case.column}" if case.column else "")
    assert f"{location}: error" in result.stderr, result.stderr
    assert case.message in result.stderr, result.stderr
    if case.path:
        assert f"(at {case.path})" in result.stderr, result.stderr
    if case.hint:
        assert case.hint in result.stderr, result.stderr


def test_all_errors_are_reported_at_once(tmp_path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        HEADER
        + "params: {width: 8}\n"
        + "layers:\n"
        + "  - linear: {outt: 10}\n"  # line 7
        + "  - lienar: 10\n"  # line 8
        + '  - linear: "${widht}"\n'  # line 9
        + "outputs: [nope]\n"  # line 10
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    for line in (7, 8, 9, 10):
        assert f"{path}:{line}:" in result.stderr, result.stderr
    assert "4 errors" in result.stderr


def test_a_valid_spec_validates(tmp_path) -> None:
    result = run_cli("validate", "specs/mlp.yaml")
    assert result.code == 0, result.output
    assert "235,146 parameters" in result.stdout
