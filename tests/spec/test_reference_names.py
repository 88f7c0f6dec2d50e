"""Names that reproduce reference state_dict keys: all-digit ids (`features.0.0`),
`repeat` with `start:` and a `name:` pattern, and a residual shortcut's `name:`; their
misuse reported through the CLI with a location."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.plugins.cnn.references import save_state_dict
from tests.spec.test_lowering import compile_text, param_names

HEADER = """\
dlc: 1
name: t
inputs:
  x: {shape: [N, 4]}
"""


def with_header(layers: str) -> str:
    return HEADER + textwrap.dedent(layers)


def test_an_id_may_be_all_digits_written_as_an_int_or_a_string() -> None:
    model = compile_text(
        with_header(
            """
        blocks:
          seq:
            body:
              - linear: 8
                id: 0
              - relu
              - linear: 3
                id: "2"
        layers:
          - seq:
            id: features
          - linear: 2
            id: "${1 + 2}"
          - add:
            in: ["3", "3"]
        """
        )
    )
    assert param_names(model) == [
        "features.0.weight",
        "features.0.bias",
        "features.2.weight",
        "features.2.bias",
        "3.weight",
        "3.bias",
    ]


def test_repeat_start_and_name_pattern_name_iterations_under_the_id() -> None:
    model = compile_text(
        with_header(
            """
        layers:
          - repeat: 2
            as: i
            start: 1
            name: "denselayer${i}"
            id: denseblock1
            body:
              - linear: "${4 * i}"
                id: fc
              - relu
        """
        )
    )
    assert param_names(model) == [
        "denseblock1.denselayer1.fc.weight",
        "denseblock1.denselayer1.fc.bias",
        "denseblock1.denselayer2.fc.weight",
        "denseblock1.denselayer2.fc.bias",
    ]
    assert model.lowered.graph.outputs["denseblock1"].type.shape[1] == 8


def test_a_named_repeat_without_id_names_its_iterations_in_the_enclosing_scope() -> None:
    """torchvision's flat nn.Sequential: `features.0`, then a repeat giving `features.1..3`,
    then `features.4`; the repeat's iterations are numbered on from `start`."""
    model = compile_text(
        with_header(
            """
        blocks:
          features:
            body:
              - linear: 4
                id: 0
              - repeat: 3
                as: k
                start: 1
                name: "${k}"
                body:
                  - linear: 4
              - linear: 2
                id: 4
        layers:
          - features:
            id: features
        """
        )
    )
    assert param_names(model) == [f"features.{i}.{p}" for i in range(5) for p in ("weight", "bias")]


def test_flat_repeats_name_their_layers_in_the_enclosing_scope_by_computed_ids() -> None:
    """VGG's features: nested loops appending to one nn.Sequential (conv, ReLU per conv, a
    pool per stage); auto-named layers stay unique across iterations."""
    model = compile_text(
        with_header(
            """
        params: {convs: [1, 2]}
        layers:
          - repeat: 2
            as: s
            flat: true
            body:
              - repeat: "${convs[s]}"
                as: j
                flat: true
                body:
                  - linear: 4
                    id: "${2 * sum(convs[:s]) + s + 2 * j}"
                  - relu
              - dropout: 0.5
        """
        )
    )
    assert param_names(model) == [f"{i}.{p}" for i in (0, 3, 5) for p in ("weight", "bias")]
    assert len({layer.name for layer in model.lowered.layers}) == len(model.lowered.layers)


def test_a_layer_after_a_flat_repeat_can_take_one_of_its_layers_by_id() -> None:
    """Flat iterations are written out in the enclosing sequence, so their ids are visible
    there (PointNet's feature transform reads the last activation of a flat MLP loop); this
    used to drop the layer and everything after it, outputs included, without an error."""
    model = compile_text(
        with_header(
            """
        layers:
          - repeat: 2
            as: i
            flat: true
            body:
              - linear: 4
                id: "${f'fc{i + 1}'}"
              - relu:
                id: "${f'act{i + 1}'}"
          - linear: 4
            id: side
            in: act1
          - add:
            in: [act2, side]
          - linear: 2
            id: head
        outputs: [head]
        """
        )
    )
    assert param_names(model)[-2:] == ["head.weight", "head.bias"]
    assert list(model.graph.outputs) == ["head"]


def test_a_torch_sequential_state_dict_loads_into_digit_ids(tmp_path: Path) -> None:
    reference = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 2)
    )
    weights = save_state_dict(reference.eval(), tmp_path / "w.safetensors")
    model = compile_text(
        with_header(
            """
        blocks:
          pair:
            body:
              - linear: 8
                id: 0
              - tanh
        layers:
          - linear: 8
            id: 0
          - relu
          - pair:
            id: 2
          - linear: 2
            id: 3
        """
        ),
        weights=weights,
    )
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert max_relative_error(expected, model.run({"x": x}, "cpu")["3"]) <= 1e-6


def test_a_residual_shortcut_takes_the_name_of_torchvisions_downsample() -> None:
    model = compile_text(
        with_header(
            """
        layers:
          - residual:
              body: [{linear: 6}]
              name: downsample
              projection:
                - linear: {out: 6, bias: false}
                  id: 0
                - layer_norm:
                  id: 1
            id: block
        """
        )
    )
    assert [n for n in param_names(model) if "downsample" in n] == [
        "block.downsample.0.weight",
        "block.downsample.1.weight",
        "block.downsample.1.bias",
    ]


BAD = [
    (
        "layers:\n  - repeat: 2\n    flat: true\n    body:\n      - linear: 4\n        id: fc\n",
        10,
        13,
        "duplicate id 'fc'",
    ),
    (
        "layers:\n  - repeat: 2\n    flat: yes please\n    body: [relu]\n",
        7,
        11,
        "`flat` takes true or false",
    ),
    (
        "layers:\n  - linear: 4\n    id: features.0\n",
        7,
        9,
        "`id` must be a name (letters, digits, _), got 'features.0'",
    ),
    ("layers:\n  - linear: 4\n    id: -1\n", 7, 9, "`id` must be a name (letters, digits, _), got -1"),
    (
        "layers:\n  - repeat: 2\n    start: one\n    body: [relu]\n",
        7,
        12,
        "`start` takes an int, got 'one'",
    ),
    (
        'layers:\n  - repeat: 2\n    as: i\n    name: "block.${i}"\n    body: [relu]\n',
        8,
        11,
        "`name` must give a name (letters, digits, _), got 'block.0'",
    ),
    (
        'layers:\n  - repeat: 2\n    name: "same"\n    id: r\n    body: [relu]\n',
        7,
        11,
        "`name` gives 'same', a name already used in this scope",
    ),
    (
        'layers:\n  - linear: 4\n    id: "1"\n  - repeat: 2\n    as: i\n    name: "${i}"\n    body: [relu]\n',
        10,
        11,
        "`name` gives '1', a name already used in this scope",
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD)
def test_misused_reference_names_are_located_errors(
    text: str, line: int, column: int, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + textwrap.dedent(text))
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:{line}:{column}: error" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
