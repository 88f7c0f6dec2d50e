"""The analysis commands of the `dlc` command line: `dlc ntk` and `dlc attack`. `dlc.cli`
registers them (`add_commands`); each handler parses nothing itself and delegates to the
analysis modules, which import torch only when a command runs."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError

if TYPE_CHECKING:
    import numpy as np

SPEC_SUFFIXES = (".yaml", ".yml")


def write_npz(arrays: Mapping[str, np.ndarray], destination: Path) -> Path:
    """Stage the archive beside `destination`, then move it into place."""
    import numpy as np

    from dlc.emit.files import publish, staging_directory

    with staging_directory(destination) as staging:
        staged = staging / "arrays.npz"
        np.savez(staged, **arrays)
        return publish(staged, destination)


def write_png(draw: Callable[[Path], Path], destination: Path) -> Path:
    from dlc.emit.files import publish, staging_directory

    with staging_directory(destination) as staging:
        return publish(draw(staging / "picture.png"), destination)


def _require_spec(path: str, command: str) -> None:
    if Path(path).suffix not in SPEC_SUFFIXES:
        raise AnalysisError(
            f"dlc {command} needs a spec (.yaml): the gradients come from its torch target, "
            f"and {path} is not one",
            hint=f"give the spec the model was compiled from: dlc {command} SPEC.yaml --weights W",
        )


# -- dlc ntk -------------------------------------------------------------------------------


def cmd_ntk(args: argparse.Namespace) -> int:
    import numpy as np

    from dlc.analysis.model_function import as_input_tensors, compile_for_analysis, model_function
    from dlc.analysis.ntk import empirical_ntk
    from dlc.cli import _limits, _overrides, _registry
    from dlc.runtime import read_inputs

    _require_spec(args.spec, "ntk")
    model = compile_for_analysis(
        args.spec,
        limits=_limits(args),
        weights=args.weights,
        seed=args.seed,
        overrides=_overrides(args.set),
        parameterization=args.parameterization,
        registry=_registry(args),
    )
    function = model_function(model, args.outputs)
    x1 = as_input_tensors(function, read_inputs(args.inputs), args.inputs)
    x2 = as_input_tensors(function, read_inputs(args.inputs2), args.inputs2) if args.inputs2 else None
    output = Path(args.output) if args.output else Path(f"{Path(args.spec).stem}_ntk.npz")
    start = time.perf_counter()
    kernel = empirical_ntk(function, x1, x2, mode=args.mode, chunk=args.chunk, method=args.method)
    elapsed = time.perf_counter() - start
    arrays: dict[str, np.ndarray] = {"kernel": kernel}
    report = [
        f"NTK of '{function.output}' ({args.mode}, {function.parameter_count:,} parameters): "
        f"shape {list(kernel.shape)} in {elapsed:.2f} s"
    ]
    if args.during_training:
        from dlc.analysis.ntk_training import kernel_change_during_training

        if x2 is not None:
            raise AnalysisError("--during-training follows the Gram matrix of --inputs; drop --inputs2")
        targets = _training_targets(read_inputs(args.inputs), args.inputs, args.targets)
        history = kernel_change_during_training(
            function,
            x1,
            targets,
            steps=args.steps,
            learning_rate=args.lr,
            record_every=args.record_every,
            mode=args.mode,
            chunk=args.chunk,
        )
        arrays.update(
            steps=np.array(history.steps), kernel_change=np.array(history.change), loss=np.array(history.loss)
        )
        report.append(
            f"full-batch gradient descent, {args.steps} steps at lr {args.lr:g}: loss "
            f"{history.loss[0]:.4g} -> {history.loss[-1]:.4g}, "
            f"||K_t - K_0|| / ||K_0|| = {history.change[-1]:.4g}"
        )
    written = [write_npz(arrays, output)]
    picture = _kernel_picture(kernel, args.mode)
    if picture is not None:
        from dlc.analysis.plots import kernel_heat_map

        title = f"{model.name}: NTK of {function.output} ({args.mode})"
        written.append(write_png(lambda p: kernel_heat_map(picture, p, title), output.with_suffix(".png")))
    if args.during_training:
        from dlc.analysis.plots import kernel_change_curve

        title = f"{model.name}: relative kernel change"
        written.append(
            write_png(
                lambda p: kernel_change_curve(history.steps, history.change, p, title),
                output.with_name(output.stem + "_change.png"),
            )
        )
    for line in report:
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _kernel_picture(kernel: np.ndarray, mode: str) -> np.ndarray | None:
    """The [N1, N2] matrix to draw: the kernel traced over outputs."""
    import numpy as np

    if mode == "trace":
        return kernel
    if mode == "per-output":
        return kernel.sum(-1)
    return np.trace(kernel, axis1=2, axis2=3)


def _training_targets(arrays: Mapping[str, np.ndarray], path: str, name: str) -> np.ndarray:
    import numpy as np

    if name not in arrays:
        raise AnalysisError(
            f"--during-training fits the targets in {path}, but it has no array '{name}'",
            hint=f"add the regression targets as '{name}' (one row per sample), or name them with --targets",
        )
    return np.asarray(arrays[name], dtype=np.float32)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _add_weights_and_seed(parser: argparse.ArgumentParser) -> None:
    from dlc.cli import _seed

    parser.add_argument(
        "--weights", help="trained weights (.safetensors, or a PyTorch state_dict); default: the seeded init"
    )
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the weight initialization (default 0)")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    _add_weights_and_seed(parser)
    parser.add_argument("--outputs", metavar="NAME", help="the model output to analyse (default: the first)")


# -- dlc attack ----------------------------------------------------------------------------


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
        _require_spec(args.spec, "attack --spec")
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


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


# -- dlc summary --robustness -------------------------------------------------------------


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

    _add_weights_and_seed(summary)
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
        "--robustness-steps", type=_positive_int, default=10, help="ascent steps of --robustness (default 10)"
    )


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register `dlc ntk` and `dlc attack` on the `dlc` subcommand parsers."""
    from dlc.analysis.choices import NTK_METHODS as METHODS
    from dlc.analysis.choices import NTK_MODES as MODES

    ntk = commands.add_parser(
        "ntk", parents=parents, help="the empirical neural tangent kernel of a spec over given inputs"
    )
    ntk.add_argument("spec", help="the spec file (YAML)")
    ntk.add_argument(
        "--inputs", required=True, help="an .npz file with one array per model input (samples on axis 0)"
    )
    ntk.add_argument(
        "--inputs2", help="a second set of inputs: the kernel between --inputs and these (default: --inputs)"
    )
    _add_model_options(ntk)
    ntk.add_argument(
        "--mode",
        choices=MODES,
        default="trace",
        help="full: K[i, j, a, b]; per-output: K[i, j, a, a]; trace (default): summed over outputs",
    )
    ntk.add_argument(
        "--parameterization",
        choices=("standard", "ntk"),
        help="override the spec's `parameterization:` (ntk: unit-normal weights scaled by 1/sqrt(fan_in))",
    )
    ntk.add_argument(
        "--chunk",
        type=_positive_int,
        metavar="N",
        help="samples per block: only a block's Jacobian is held in memory (default: what fits in 256 MB)",
    )
    ntk.add_argument(
        "--method",
        choices=METHODS,
        default="jacobian",
        help="jacobian (default): Jacobian blocks by vjp, contracted; products: vjp then jvp "
        "(NTK-vector products)",
    )
    ntk.add_argument(
        "-o", "--output", help="the .npz to write (default <spec>_ntk.npz; the heat map beside it as .png)"
    )
    ntk.add_argument(
        "--during-training",
        action="store_true",
        help="also train on --inputs (full-batch gradient descent, MSE) and record ||K_t - K_0|| / ||K_0||",
    )
    ntk.add_argument("--targets", default="y", help="the array of regression targets in --inputs (default y)")
    ntk.add_argument(
        "--steps", type=_positive_int, default=100, help="training steps with --during-training (default 100)"
    )
    ntk.add_argument(
        "--lr", type=float, default=0.1, help="learning rate with --during-training (default 0.1)"
    )
    ntk.add_argument(
        "--record-every",
        type=_positive_int,
        default=10,
        help="steps between kernel measurements (default 10)",
    )
    ntk.set_defaults(handler=cmd_ntk)

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
    _add_model_options(attack)
    attack.add_argument(
        "--data",
        required=True,
        help="labelled inputs: an .npz with the model input's array and labels y, or 'digits' "
        "(scikit-learn's test split, scaled to [0, 1])",
    )
    attack.add_argument("--attack", choices=ATTACKS, default="pgd", help="the attack (default pgd)")
    attack.add_argument(
        "--eps",
        type=_number,
        required=True,
        help="the budget: ||delta|| <= eps (L_inf for fgsm/pgd, L2 for pgd-l2/cw)",
    )
    attack.add_argument("--steps", type=_positive_int, help="ascent steps (default 10; fgsm is one step)")
    attack.add_argument("--step-size", type=_number, help="step size (default 2.5 eps / steps)")
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
        "--kappa", type=_number, default=0.0, help="cw: the confidence margin kappa (default 0)"
    )
    attack.add_argument("--limit", type=_positive_int, metavar="N", help="attack only the first N samples")
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
