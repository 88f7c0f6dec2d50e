"""What the CNN passes do to the zoo at -O2 (CI sizes of tests/spec_settings/cnn.yaml; the
same at full size): every batch norm of ResNet, VGG-BN and GoogLeNet folds, `--print-ir`
reports it, and the other rewrites decline with their reasons. Agreement of -O2 with -O0 on
the zoo is tests/test_specs.py's."""

from __future__ import annotations

from collections import Counter

import pytest

import dlc
from tests.conftest import SPECS, run_cli
from tests.test_specs import settings_for

from .helpers import compare, randomize, run_pipeline

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


@pytest.mark.parametrize("spec", ["resnet18.yaml", "resnet50.yaml", "vgg16_bn.yaml", "googlenet.yaml"])
def test_folded_zoo_agrees_with_o0_on_random_statistics(spec: str) -> None:
    """With torch's initial statistics (mean 0, variance 1) a batch norm is nearly the
    identity; random statistics and He-scaled weights make the fold matter. Within 1e-5
    relative to the output scale, ONNX Runtime and the ejected model.py."""
    model = dlc.compile(ZOO / spec, opt_level=0, overrides=settings_for(ZOO / spec)["set"])
    randomize(model)
    assert compare(model, run_pipeline(model)) <= 1e-5


def test_print_ir_reports_the_folds() -> None:
    result = run_cli(
        "compile", "specs/cnn/resnet18.yaml", "--set", "image=64", "--set", "width=8", "--print-ir"
    )
    assert result.code == 0, result.output
    assert "# pass fold-batch-norm: modified" in result.stdout
    assert "#   fold-batch-norm: fired 20x" in result.stdout
    assert "batch_norm(" not in result.stdout


def summary(notes: list[str]) -> dict[str, object]:
    """{rewrite: fired count} and {"<rewrite> declined": {reason: count}} from pass notes."""
    result: dict[str, object] = {}
    for note in notes:
        if ": fired " in note:
            rewrite, count = note.split(": fired ")
            result[rewrite] = int(count.removesuffix("x"))
            continue
        if "not rewritten (" not in note:
            continue  # other passes' notes, e.g. select-conv-algorithm's choices
        rewrite, reason = note.split("not rewritten (", 1)[1].removesuffix(")").split(": ", 1)
        result.setdefault(f"{rewrite} declined", Counter())[reason.split(":")[0]] += 1
    return {key: dict(value) if isinstance(value, Counter) else value for key, value in result.items()}


NOT_PAY = "fusing {} sibling convs does not pay"
EXPECTED = {
    "alexnet.yaml": {},
    "googlenet.yaml": {"fold-batch-norm": 57, "fuse-sibling-convs declined": {NOT_PAY.format(3): 9}},
    "inception_v1.yaml": {"fuse-sibling-convs declined": {NOT_PAY.format(3): 9}},
    "lenet5.yaml": {},
    "resnet18.yaml": {"fold-batch-norm": 20},
    "resnet50.yaml": {"fold-batch-norm": 53, "fuse-sibling-convs declined": {NOT_PAY.format(2): 1}},
    "text_cnn.yaml": {},
    "unet.yaml": {},
    "vgg16.yaml": {},
    "vgg16_bn.yaml": {"fold-batch-norm": 13},
    "wavenet.yaml": {
        "merge-conv-chain declined": {"the output of conv 'causal_layer' has other users": 2},
        "fuse-sibling-convs declined": {NOT_PAY.format(2): 100},  # filter/gate and dense/skip
    },
}


@pytest.mark.parametrize("spec", sorted(EXPECTED))
def test_what_the_passes_do_to_each_zoo_spec(spec: str) -> None:
    assert summary(notes_at_o2(spec)[1]) == EXPECTED[spec]
