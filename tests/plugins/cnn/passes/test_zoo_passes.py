"""What the CNN passes do to the zoo at -O2 (CI sizes of tests/spec_settings/cnn.yaml): every
batch norm of ResNet, VGG-BN and GoogLeNet folds, and `--print-ir` reports it. Agreement of
-O2 with -O0 on the zoo is tests/test_specs.py's."""

from __future__ import annotations

import pytest

import dlc
from tests.conftest import SPECS, run_cli
from tests.test_specs import settings_for

ZOO = SPECS / "cnn"


def notes_at_o2(spec: str) -> tuple[dlc.CompiledModel, list[str]]:
    model = dlc.compile(ZOO / spec, overrides=settings_for(ZOO / spec)["set"])
    return model, [note for record in model.pass_records for note in record.notes]


@pytest.mark.parametrize(
    ("spec", "norms"),
    [("resnet18.yaml", 20), ("resnet50.yaml", 53), ("vgg16_bn.yaml", 13), ("googlenet.yaml", 57)],
)
def test_every_batch_norm_of_the_zoo_folds(spec: str, norms: int) -> None:
    model, notes = notes_at_o2(spec)
    assert f"fold-batch-norm: fired {norms}x" in notes
    assert not any(n.op == "batch_norm" for n in model.graph)
    assert not any("fold-batch-norm" in note and "not rewritten" in note for note in notes)


def test_print_ir_reports_the_folds() -> None:
    result = run_cli(
        "compile", "specs/cnn/resnet18.yaml", "--set", "image=64", "--set", "width=8", "--print-ir"
    )
    assert result.code == 0, result.output
    assert "# pass fold-batch-norm: modified" in result.stdout
    assert "#   fold-batch-norm: fired 20x" in result.stdout
    assert "batch_norm(" not in result.stdout
