"""`dlc schema` is strict enough for an editor: every spec in `specs/` passes it, and each
broken spec below (each with one mistake a user makes) fails it, checked with the
`jsonschema` package as yaml-language-server would."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import SPECS, run_cli

BASE = """
dlc: 1
name: broken
inputs:
  x: {shape: [N, 3, 32, 32]}
layers:
"""

TEMPLATE_BASE = """
dlc: 1
name: broken
inputs:
  x: {shape: [N, 3, 32, 32]}
blocks:
  conv_block:
    params: {out: int}
    body:
      - conv2d: {out: "${out}", kernel: 3, padding: 1}
      - relu
layers:
"""

# What is wrong -> a spec with that one mistake.
BROKEN: dict[str, str] = {
    "misspelled option of a known block": BASE + "  - conv2d: {out: 8, kernal: 3}\n",
    "`in:` inside a block's options": BASE + "  - conv2d: {out: 8, kernel: 3, in: x}\n",
    "`in:` inside a template call's arguments": BASE + "  - basic_block: {planes: 3, in: x}\n",
    "string repeat count": BASE + '  - repeat: "3"\n    body: [relu]\n',
    "negative repeat count": BASE + "  - repeat: -1\n    body: [relu]\n",
    "negative kernel": BASE + "  - conv2d: {out: 8, kernel: -3}\n",
    "negative kernel in a per-dim list": BASE + "  - conv2d: {out: 8, kernel: [3, -1]}\n",
    "zero stride of a pool": BASE + "  - max_pool2d: {kernel: 2, stride: 0}\n",
    "zero output channels": BASE + "  - conv2d: {out: 0, kernel: 3}\n",
    "unknown block name": BASE + "  - conv2dd: {out: 8, kernel: 3}\n",
    "unknown block name, bare": BASE + "  - rellu\n",
    "two blocks in one layer": BASE + "  - relu:\n    gelu:\n",
    "misspelled plugin template argument": BASE + "  - basic_block: {planes: 64, strid: 2}\n",
    "missing required template argument": BASE + "  - basic_block: {stride: 2}\n",
    "template argument of the wrong type": BASE + "  - basic_block: {planes: many}\n",
    "unknown key in a repeat": BASE + "  - repeat: 2\n    bodyy: [relu]\n",
    "repeat without a body": BASE + "  - repeat: 2\n",
    "unknown residual shortcut": BASE + "  - residual: {body: [relu], shortcut: sometimes}\n",
    "option of the wrong type": BASE + "  - flatten: {start: one}\n",
    "misspelled top-level key": BASE.replace("layers:", "layres:") + "  - relu\n",
    "`in:` at the top level": BASE + "  - relu\nin: x\n",
    "unknown spec format version": BASE.replace("dlc: 1", "dlc: 2") + "  - relu\n",
    "unknown input dtype": BASE.replace("[N, 3, 32, 32]}", "[N, 3, 32, 32], dtype: float33}") + "  - relu\n",
    "layer id that is not a name": BASE + "  - relu:\n    id: my layer\n",
    "empty layer list": BASE + "  []\n",
    "misspelled option inside a spec template's body": TEMPLATE_BASE.replace("padding: 1", "paddin: 1")
    + "  - conv_block: {out: 8}\n",
    "two template names in one layer": TEMPLATE_BASE + "  - conv_block: {out: 8}\n    other_block:\n",
    "repeat key on a block layer": TEMPLATE_BASE + "  - linear: {out: 3}\n    as: i\n",
    "misspelled option of a known block, beside spec templates": TEMPLATE_BASE
    + "  - conv2d: {out: 8, kernal: 3}\n",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = run_cli("schema")
    assert result.code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(SPECS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(SPECS)))
def test_every_shipped_spec_passes(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in validator.iter_errors(yaml.safe_load(path.read_text()))
    ]
    assert not errors, errors


def test_valid_specs_with_their_own_templates_pass(validator: jsonschema.Draft202012Validator) -> None:
    spec = TEMPLATE_BASE + (
        "  - conv_block: {out: 8}\n"
        "  - conv_block: 8\n"  # the shorthand of the only parameter
        "  - conv_block:\n      out: 8\n    id: second\n    in: x\n"
        "  - repeat: 2\n    as: i\n    body:\n      - conv_block: {out: '${8 * (i + 1)}'}\n"
        "  - residual: [conv_block]\n"
    )
    assert not list(validator.iter_errors(yaml.safe_load(spec)))


def test_the_spec_cases_are_valid_yaml_and_at_least_eighteen() -> None:
    assert len(BROKEN) >= 18
    for text in BROKEN.values():
        assert isinstance(yaml.safe_load(text), dict)


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_broken_spec_is_a_schema_error(validator: jsonschema.Draft202012Validator, mistake: str) -> None:
    assert list(validator.iter_errors(yaml.safe_load(BROKEN[mistake]))), f"schema accepted: {mistake}"


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_broken_spec_is_also_refused_by_dlc(tmp_path: Path, mistake: str) -> None:
    """The schema flags nothing dlc itself accepts: each broken spec fails `dlc validate`."""
    spec = tmp_path / "broken.yaml"
    spec.write_text(BROKEN[mistake])
    result = run_cli("validate", str(spec))
    assert result.code == 1, (mistake, result.output)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "library", sorted((SPECS.parent / "plugins").rglob("templates.yaml")), ids=lambda p: p.parent.name
)
def test_plugin_template_libraries_pass_as_template_definitions(
    validator: jsonschema.Draft202012Validator, library: Path
) -> None:
    """The plugins' own templates are written in the same language: their bodies check too."""
    schema = validator.schema
    library_schema = {
        "$defs": schema["$defs"],
        "type": "object",
        "properties": {"doc": {"type": "string"}, "blocks": schema["properties"]["blocks"]},
        "additionalProperties": False,
    }
    data = yaml.safe_load(library.read_text())
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft202012Validator(library_schema).iter_errors(data)
    ]
    assert not errors, errors
