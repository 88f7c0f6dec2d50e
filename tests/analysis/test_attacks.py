"""Adversarial attacks (`dlc.analysis.attacks`, `dlc attack`): parity with torchattacks 3.3
on the same model, inputs and random start; the budget holds for every example; a trained
digits classifier's robust accuracy falls with eps; the command line's report, files and
errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchattacks

from dlc.analysis.attacks import AttackConfig, adversarial_examples, perturbation_norms
from dlc.analysis.model_function import compile_for_analysis, model_function
from dlc.analysis.robustness import load_labelled_data, run_attack
from tests.analysis.conftest import DIGITS_SPEC, TrainedDigits
from tests.conftest import run_cli

PARITY = 1e-6  # max |difference| with torchattacks, in input units


class Logits(torch.nn.Module):
    """The dlc module's first output (its logits), as torchattacks expects a classifier."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[0]


@pytest.fixture(scope="module")
def digits(trained_digits: TrainedDigits):
    function = model_function(compile_for_analysis(DIGITS_SPEC, weights=trained_digits.weights))
    data = load_labelled_data("digits", function, limit=64)
    return function, data


def _reference(name: str, model: torch.nn.Module, target: int | None, **options):
    attack = {"fgsm": torchattacks.FGSM, "pgd": torchattacks.PGD, "pgd-l2": torchattacks.PGDL2}[name](
        model, **options
    )
    if target is not None:
        attack.set_mode_targeted_by_function(lambda images, labels: torch.full_like(labels, target))
    return attack


CASES = [
    ("fgsm", {"eps": 0.1}),
    ("pgd", {"eps": 0.1, "alpha": 0.02, "steps": 7, "random_start": True}),
    ("pgd", {"eps": 0.05, "alpha": 0.01, "steps": 5, "random_start": False}),
    ("pgd-l2", {"eps": 0.8, "alpha": 0.2, "steps": 7, "random_start": True}),
]


@pytest.mark.parametrize(("name", "options"), CASES)
@pytest.mark.parametrize("target", [None, 3])
def test_attacks_agree_with_torchattacks(digits, name: str, options: dict, target: int | None) -> None:
    function, data = digits
    images, labels = torch.from_numpy(data.inputs), torch.from_numpy(data.labels)
    seed = 5
    torch.manual_seed(seed)  # torchattacks draws its random start from the global generator
    expected = _reference(name, Logits(function.module), target, **options)(images, labels)
    config = AttackConfig(
        name,
        options["eps"],
        steps=options.get("steps"),
        step_size=options.get("alpha"),
        target=target,
        random_start=options.get("random_start", False),
        seed=seed,
    )
    ours = adversarial_examples(lambda x: function.forward((x,)), images, labels, config)
    assert float((ours - expected).abs().max()) <= PARITY
    assert not torch.equal(ours, images)


def test_an_injected_start_gives_torchattacks_random_start_result(digits) -> None:
    function, data = digits
    images, labels = torch.from_numpy(data.inputs), torch.from_numpy(data.labels)
    torch.manual_seed(11)
    start = torch.clamp(images + torch.empty_like(images).uniform_(-0.1, 0.1), 0, 1)
    torch.manual_seed(11)
    expected = torchattacks.PGD(Logits(function.module), eps=0.1, alpha=0.03, steps=4, random_start=True)(
        images, labels
    )
    config = AttackConfig("pgd", 0.1, steps=4, step_size=0.03, seed=999)
    ours = adversarial_examples(lambda x: function.forward((x,)), images, labels, config, start=start)
    assert float((ours - expected).abs().max()) <= PARITY


@pytest.mark.parametrize(
    "config",
    [
        AttackConfig("fgsm", 0.1),
        AttackConfig("pgd", 0.03, steps=5, random_start=True),
        AttackConfig("pgd", 0.1, steps=5, step_size=0.5),  # steps far larger than the ball
        AttackConfig("pgd-l2", 0.5, steps=5, random_start=True),
        AttackConfig("cw", 0.5, steps=5, kappa=1.0),
        AttackConfig("cw", 0.5, steps=5, target=2),
        AttackConfig("pgd", 0.1, steps=5, target=7, bounds=None),
    ],
    ids=lambda c: f"{c.attack}-{c.eps}-{c.target}-{c.bounds}",
)
def test_every_adversarial_example_respects_its_budget(digits, config: AttackConfig) -> None:
    function, data = digits
    result = run_attack(function, data, config)
    norms = perturbation_norms(data.inputs, result.adversarial)[config.norm]
    assert (norms <= config.eps).all(), norms.max() - config.eps  # exact: float64 of the stored float32
    assert result.report.within_budget
    if config.bounds is not None:
        assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0
    assert result.report.robust_accuracy < result.report.clean_accuracy


def test_robust_accuracy_falls_monotonically_with_eps(digits, trained_digits: TrainedDigits) -> None:
    function, data = digits
    assert trained_digits.test_accuracy >= 0.93
    budgets = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    accuracy = [
        run_attack(function, data, AttackConfig("pgd", eps, steps=10)).report.robust_accuracy
        for eps in budgets
    ]
    assert accuracy[0] >= 0.9  # eps 0: the clean accuracy
    assert all(later <= earlier for earlier, later in itertools.pairwise(accuracy)), accuracy
    assert accuracy[-1] <= 0.1, accuracy


def test_targeted_attacks_reach_their_target(digits) -> None:
    function, data = digits
    for attack in ("pgd", "cw"):
        report = run_attack(
            function, data, AttackConfig(attack, 0.3 if attack == "pgd" else 2.0, steps=20, target=4)
        ).report
        assert report.success_rate >= 0.8, (attack, report)


def test_cli_attack_reports_torch_and_onnx_and_writes_examples(
    trained_digits: TrainedDigits, tmp_path: Path
) -> None:
    output = tmp_path / "adv.npz"
    result = run_cli(
        "attack",
        str(DIGITS_SPEC),
        "--weights",
        str(trained_digits.weights),
        "--data",
        "digits",
        "--attack",
        "pgd",
        "--eps",
        "0.1",
        "--steps",
        "5",
        "--random-start",
        "--limit",
        "100",
        "-o",
        str(output),
        "--json",
    )
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 100 and report["within_budget"]
    assert report["robust_accuracy"] < report["clean_accuracy"]
    assert report["linf_max"] <= 0.1
    assert report["onnx"]["agreement_with_torch"] >= 0.99  # the examples transfer to the deployed file
    assert abs(report["onnx"]["robust_accuracy"] - report["robust_accuracy"]) <= 0.01
    with np.load(output) as arrays:
        assert arrays["adversarial"].shape == (100, 1, 8, 8)
        assert np.abs(arrays["adversarial"].astype(np.float64) - arrays["original"]).max() <= 0.1
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_cli_attack_on_an_onnx_file_with_its_spec(trained_digits: TrainedDigits, tmp_path: Path) -> None:
    onnx_file = tmp_path / "digits.onnx"
    compiled = run_cli(
        "compile", str(DIGITS_SPEC), "--weights", str(trained_digits.weights), "-o", str(onnx_file)
    )
    assert compiled.code == 0, compiled.output
    result = run_cli(
        "attack",
        str(onnx_file),
        "--spec",
        str(DIGITS_SPEC),
        "--weights",
        str(trained_digits.weights),
        "--data",
        "digits",
        "--attack",
        "fgsm",
        "--eps",
        "0.05",
        "--limit",
        "50",
        "-o",
        str(tmp_path / "a.npz"),
    )
    assert result.code == 0, result.output
    assert "ONNX Runtime (CPUExecutionProvider)" in result.stdout
    assert "all within the budget" in result.stdout
    # Without --weights, the file's initializers (named as the spec's parameters) are the weights.
    own = run_cli(
        "attack",
        str(onnx_file),
        "--spec",
        str(DIGITS_SPEC),
        "--data",
        "digits",
        "--attack",
        "fgsm",
        "--eps",
        "0.05",
        "--limit",
        "50",
        "-o",
        str(tmp_path / "b.npz"),
    )
    assert own.code == 0, own.output
    assert own.stdout.splitlines()[1:3] == result.stdout.splitlines()[1:3]  # the same accuracies
    # Weights that are not the deployed model's: the transfer figures would mean nothing.
    untrained = tmp_path / "untrained.onnx"
    assert run_cli("compile", str(DIGITS_SPEC), "--seed", "7", "-o", str(untrained)).code == 0
    other = run_cli(
        "attack",
        str(untrained),
        "--spec",
        str(DIGITS_SPEC),
        "--weights",
        str(trained_digits.weights),
        "--data",
        "digits",
        "--eps",
        "0.05",
        "--limit",
        "20",
        "-o",
        str(tmp_path / "c.npz"),
    )
    assert other.code == 1 and "computes other scores than the spec's torch target" in other.stderr
    assert "--weights W" in other.stderr and not (tmp_path / "c.npz").exists()


def test_cli_attack_bad_input_is_a_clear_error(trained_digits: TrainedDigits, tmp_path: Path) -> None:
    onnx_file = tmp_path / "digits.onnx"
    onnx_file.write_bytes(b"not really a model")
    weights = str(trained_digits.weights)
    no_spec = run_cli("attack", str(onnx_file), "--data", "digits", "--eps", "0.1")
    assert no_spec.code == 1
    assert (
        "is an ONNX model, which has no gradients" in no_spec.stderr and "--spec SPEC.yaml" in no_spec.stderr
    )
    negative = run_cli("attack", str(DIGITS_SPEC), "--weights", weights, "--data", "digits", "--eps", "-0.1")
    assert negative.code == 1 and "the budget --eps must be a finite number >= 0, got -0.1" in negative.stderr
    features = run_cli(
        "attack",
        str(DIGITS_SPEC),
        "--weights",
        weights,
        "--data",
        "digits",
        "--eps",
        "0.1",
        "--outputs",
        "features",
    )
    assert features.code == 1
    assert (
        "output 'features' has shape ['N', 8, 4, 4]: accuracy needs class scores [N, classes]"
        in features.stderr
    )
    np.savez(tmp_path / "unlabelled.npz", image=np.zeros((4, 1, 8, 8), np.float32))
    unlabelled = run_cli(
        "attack", str(DIGITS_SPEC), "--data", str(tmp_path / "unlabelled.npz"), "--eps", "0.1"
    )
    assert unlabelled.code == 1 and "has no labels" in unlabelled.stderr
    target = run_cli("attack", str(DIGITS_SPEC), "--data", "digits", "--eps", "0.1", "--targeted", "12")
    assert target.code == 1 and "--targeted 12 is no class of the 10" in target.stderr
    for result in (no_spec, negative, features, unlabelled, target):
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_summary_json_has_a_robustness_section_when_asked(trained_digits: TrainedDigits) -> None:
    spec, weights = str(DIGITS_SPEC), str(trained_digits.weights)
    plain = run_cli("summary", spec, "--json")
    assert plain.code == 0 and "robustness" not in json.loads(plain.stdout)
    result = run_cli(
        "summary",
        spec,
        "--json",
        "--weights",
        weights,
        "--robustness",
        "digits",
        "--robustness-eps",
        "0.05,0.2",
        "--robustness-steps",
        "5",
    )
    assert result.code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["params"] == 1370
    section = summary["robustness"]
    assert section["attack"] == "pgd" and section["norm"] == "linf" and section["samples"] == 360
    assert section["clean_accuracy"] == pytest.approx(trained_digits.test_accuracy)
    first, second = section["budgets"]
    assert first["eps"] == 0.05 and second["eps"] == 0.2
    assert section["clean_accuracy"] > first["robust_accuracy"] > second["robust_accuracy"]
    assert first["within_budget"] and second["within_budget"] and second["linf_max"] <= 0.2
    bad = run_cli("summary", spec, "--robustness", "digits", "--robustness-eps", "0.1,x")
    assert bad.code == 1 and "--robustness-eps takes budgets separated by commas" in bad.stderr
