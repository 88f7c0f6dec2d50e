"""`dlc attack`: adversarial examples against a classifier spec, evaluated in torch and on
the ONNX model; and the `robustness` section of `dlc summary --robustness`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError
from dlc.analysis.commands import (
    SPEC_SUFFIXES,
    add_model_options,
    add_weights_and_seed,
    number,
    positive_int,
    require_spec,
    write_npz,
    write_png,
)

if TYPE_CHECKING:
    import numpy as np


def cmd_attack(args: argparse.Namespace) -> int:
    import json
    import tempfile

    import dlc
    from dlc.analysis.attacks import AttackConfig
    from dlc.analysis.model_function import compile_for_analysis, model_function
    from dlc.analysis.robustness import evaluate_on_onnx, load_labelled_data, run_attack
    from dlc.cli import _limits, _overrides, _registry
    from dlc.runtime import Session

    source = Path(args.model)
    deployed: Any
    if source.suffix in SPEC_SUFFIXES:
        if args.spec:
            raise AnalysisError("give the spec once: as the model, or with --spec for an .onnx model")
        spec = str(source)
    else:
        if not args.spec:
            raise AnalysisError(
                f"{source} is an ONNX model, which has no gradients: gradient attacks run on the torch "
                "target of its spec",
                hint=f"give the spec it was compiled from: dlc attack {source} --spec SPEC.yaml --weights W",
            )
        require_spec(args.spec, "attack --spec")
        spec = args.spec
    config = AttackConfig(
        args.attack,
        args.eps,
        steps=args.steps,
        step_size=args.step_size,
        target=args.targeted,
        random_start=args.random_start,
        bounds=None,  # set below, once the data is known
        kappa=args.kappa,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="dlc-attack-") as scratch:
        weights = args.weights
        if weights is None and source.suffix not in SPEC_SUFFIXES:
            weights = _weights_of_onnx(source, spec, args, Path(scratch))
        model = compile_for_analysis(
            spec,
            weights=weights,
            seed=args.seed,
            overrides=_overrides(args.set),
            registry=_registry(args),
            limits=_limits(args),
        )
    function = model_function(model, args.outputs)
    data = load_labelled_data(args.data, function, args.limit)
    config = _with_bounds(config, args.bounds, data.inputs)
    result = run_attack(function, data, config)
    if source.suffix in SPEC_SUFFIXES:
        deployed = dlc.compile(
            spec,
            seed=args.seed,
            weights=args.weights,
            overrides=_overrides(args.set),
            registry=_registry(args),
        ).onnx_model()
    else:
        deployed = source
    session = Session(deployed, args.provider)
    evaluate_on_onnx(result, session, function, str(source) if deployed is source else f"{spec} at -O2")
    output = Path(args.output) if args.output else Path(f"{Path(spec).stem}_{args.attack}.npz")
    written = [write_npz(result.arrays(), output)]
    from dlc.analysis.plots import adversarial_grid

    report = result.report
    title = f"{model.name}: {args.attack} eps={args.eps:g} ({report.norm})"
    written.append(
        write_png(
            lambda p: adversarial_grid(
                result.inputs,
                result.adversarial,
                result.labels,
                result.clean_predictions,
                result.adversarial_predictions,
                p,
                title,
            ),
            output.with_suffix(".png"),
        )
    )
    if args.json:
        print(json.dumps({**report.to_json(), "written": [str(p) for p in written]}, indent=2))
        return 0
    goal = f"targeted at class {report.target}" if report.target is not None else "untargeted"
    print(
        f"{report.attack} ({goal}, {report.norm} eps {report.eps:g}, {report.steps} steps of "
        f"{report.step_size:.4g}) on {report.samples} samples of {data.source}"
    )
    print(
        f"  torch: clean accuracy {report.clean_accuracy:.2%}, robust accuracy {report.robust_accuracy:.2%}, "
        f"attack success {report.success_rate:.2%}"
    )
    onnx = report.onnx
    print(
        f"  ONNX Runtime ({', '.join(onnx['providers'])}): clean accuracy {onnx['clean_accuracy']:.2%}, "
        f"robust accuracy {onnx['robust_accuracy']:.2%}, same predictions as torch on "
        f"{onnx['agreement_with_torch']:.2%} of the adversarial examples"
    )
    budget = "all within the budget" if report.within_budget else "SOME OUTSIDE THE BUDGET"
    print(
        f"  perturbations: L_inf max {report.linf_max:.4g} (mean {report.linf_mean:.4g}), "
        f"L2 max {report.l2_max:.4g} (mean {report.l2_mean:.4g}); {budget}"
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _weights_of_onnx(source: Path, spec: str, args: argparse.Namespace, scratch: Path) -> Path | None:
    """Without --weights, an .onnx model's own initializers (written to `scratch`), when they
    are exactly the spec's parameters (a model compiled from the spec without folding
    passes); else None: the seeded init, which the clean-score check then tells apart from
    the deployed model."""
    import dlc
    from dlc.analysis.robustness import onnx_initializers
    from dlc.cli import _overrides, _registry

    initializers = onnx_initializers(source)
    lowered = dlc.compile(spec, opt_level=0, overrides=_overrides(args.set), registry=_registry(args))
    expected = {n.attrs.name: tuple(int(d) for d in n.output.type.shape) for n in lowered.graph.parameters()}
    if {k: tuple(v.shape) for k, v in initializers.items() if k in expected} != expected:
        return None
    import numpy as np
    from safetensors.numpy import save_file

    path = scratch / "weights.safetensors"
    save_file({k: np.ascontiguousarray(initializers[k]) for k in expected}, str(path))
    return path


def _with_bounds(config: Any, text: str, inputs: np.ndarray) -> Any:
    """`--bounds`: `auto` clips to [0, 1] when the data lies there (images), else not at all."""
    import dataclasses

    import numpy as np

    if text == "none":
        bounds = None
    elif text == "auto":
        inside = inputs.size == 0 or (float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0)
        bounds = (0.0, 1.0) if inside else None
    else:
        low, sep, high = text.partition(",")
        try:
            bounds = (float(low), float(high)) if sep else None
        except ValueError:
            bounds = None
        if bounds is None or not all(np.isfinite(bounds)):
            raise AnalysisError(f"--bounds takes auto, none or LOW,HIGH (e.g. 0,1), got '{text}'")
    return dataclasses.replace(config, bounds=bounds)


def robustness_section(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """`dlc summary --robustness DATA`: one attack at each budget of --robustness-eps, on
    the model as compiled for the summary (-O0, with --weights)."""
    from dlc.analysis.attacks import AttackConfig
    from dlc.analysis.model_function import model_function
    from dlc.analysis.robustness import load_labelled_data, run_attack

    budgets = _budgets(args.robustness_eps)
    function = model_function(model)
    data = load_labelled_data(args.robustness, function)
    steps = None if args.robustness_attack == "fgsm" else args.robustness_steps  # fgsm: one step
    reports = []
    for eps in budgets:
        config = _with_bounds(
            AttackConfig(args.robustness_attack, eps, steps=steps, seed=args.seed),
            "auto",
            data.inputs,
        )
        reports.append(run_attack(function, data, config).report)
    first = reports[0]
    return {
        "data": data.source,
        "samples": first.samples,
        "output": function.output,
        "attack": first.attack,
        "norm": first.norm,
        "steps": first.steps,
        "bounds": first.bounds,
        "clean_accuracy": first.clean_accuracy,
        "budgets": [
            {
                "eps": r.eps,
                "robust_accuracy": r.robust_accuracy,
                "success_rate": r.success_rate,
                "linf_max": r.linf_max,
                "l2_max": r.l2_max,
                "within_budget": r.within_budget,
            }
            for r in reports
        ],
    }


def print_robustness(section: Mapping[str, Any]) -> None:
    print(
        f"robustness ({section['attack']}, {section['norm']}, {section['steps']} steps) on "
        f"{section['samples']} samples of {section['data']}: clean accuracy {section['clean_accuracy']:.2%}"
    )
    for entry in section["budgets"]:
        print(
            f"  eps {entry['eps']:g}: robust accuracy {entry['robust_accuracy']:.2%}, "
            f"attack success {entry['success_rate']:.2%}"
        )


def _budgets(text: str) -> list[float]:
    try:
        budgets = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AnalysisError(
            f"--robustness-eps takes budgets separated by commas, e.g. 0.03,0.1; got '{text}'"
        ) from None
    if not budgets:
        raise AnalysisError("--robustness-eps needs at least one budget")
    return budgets


def add_summary_options(summary: argparse.ArgumentParser) -> None:
    """`dlc summary`'s options for a `robustness` section (and the weights it needs)."""
    from dlc.analysis.choices import ATTACKS

    add_weights_and_seed(summary)
    summary.add_argument(
        "--robustness",
        metavar="DATA",
        help="add a robustness section: attack the classifier on DATA (.npz with labels y, or digits)",
    )
    summary.add_argument(
        "--robustness-attack", choices=ATTACKS, default="pgd", help="the attack of --robustness (default pgd)"
    )
    summary.add_argument(
        "--robustness-eps",
        default="0.03,0.1",
        metavar="E1,E2",
        help="the budgets of --robustness, comma-separated (default 0.03,0.1)",
    )
    summary.add_argument(
        "--robustness-steps", type=positive_int, default=10, help="ascent steps of --robustness (default 10)"
    )


def add_attack_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from dlc.analysis.choices import ATTACKS

    attack = commands.add_parser(
        "attack",
        parents=parents,
        help="adversarial examples against a classifier spec; clean and robust accuracy in torch and ONNX",
    )
    attack.add_argument(
        "model", help="the classifier's spec (YAML), or a compiled .onnx model together with --spec"
    )
    attack.add_argument(
        "--spec",
        help="with an .onnx model: the spec it was compiled from (its gradients); its weights are the "
        "model's initializers when their names are the spec's, else give --weights",
    )
    add_model_options(attack)
    attack.add_argument(
        "--data",
        required=True,
        help="labelled inputs: an .npz with the model input's array and labels y, or 'digits' "
        "(scikit-learn's test split, scaled to [0, 1])",
    )
    attack.add_argument("--attack", choices=ATTACKS, default="pgd", help="the attack (default pgd)")
    attack.add_argument(
        "--eps",
        type=number,
        required=True,
        help="the budget: ||delta|| <= eps (L_inf for fgsm/pgd, L2 for pgd-l2/cw)",
    )
    attack.add_argument("--steps", type=positive_int, help="ascent steps (default 10; fgsm is one step)")
    attack.add_argument("--step-size", type=number, help="step size (default 2.5 eps / steps)")
    attack.add_argument(
        "--targeted", type=int, metavar="LABEL", help="a targeted attack: make the model predict this class"
    )
    attack.add_argument(
        "--random-start", action="store_true", help="start at a random point of the ball (seeded)"
    )
    attack.add_argument(
        "--bounds",
        default="auto",
        help="clip examples to LOW,HIGH, or none; auto (default): 0,1 when the data lies there",
    )
    attack.add_argument(
        "--kappa", type=number, default=0.0, help="cw: the confidence margin kappa (default 0)"
    )
    attack.add_argument("--limit", type=positive_int, metavar="N", help="attack only the first N samples")
    from dlc.runtime.providers import PROVIDER_CHOICES

    attack.add_argument(
        "--provider",
        default="auto",
        choices=PROVIDER_CHOICES,
        help="ONNX Runtime provider for the transfer check",
    )
    attack.add_argument(
        "-o",
        "--output",
        help="the .npz of examples to write (default <spec>_<attack>.npz; the picture as .png)",
    )
    attack.add_argument("--json", action="store_true", help="print the report as JSON")
    attack.set_defaults(handler=cmd_attack)
