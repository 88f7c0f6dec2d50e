"""`dlc ntk`: the empirical NTK of a spec over given inputs, written as .npz and a heat map;
with `--during-training`, its relative change under gradient descent."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError
from dlc.analysis.commands import add_model_options, positive_int, require_spec, write_npz, write_png

if TYPE_CHECKING:
    import numpy as np


def cmd_ntk(args: argparse.Namespace) -> int:
    import numpy as np

    from dlc.analysis.model_function import as_input_tensors, compile_for_analysis, model_function
    from dlc.analysis.ntk import empirical_ntk
    from dlc.cli import _limits, _registry
    from dlc.runtime import read_inputs

    require_spec(args.spec, "ntk")
    if args.during_training and args.trainer == "train" and args.parameterization:
        raise AnalysisError(
            "--trainer train trains the spec as written; set `parameterization:` in the spec "
            "instead of --parameterization"
        )
    model = compile_for_analysis(
        args.spec,
        limits=_limits(args),
        weights=args.weights,
        seed=args.seed,
        overrides=_model_overrides(args),
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
        if x2 is not None:
            raise AnalysisError("--during-training follows the Gram matrix of --inputs; drop --inputs2")
        history, line = _during_training(args, function, x1, output)
        arrays.update(
            steps=np.array(history.steps), kernel_change=np.array(history.change), loss=np.array(history.loss)
        )
        report.append(line)
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


def _model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--set values for the spec's params (`training.` keys are dlc train's)."""
    from dlc.cli import _overrides

    return {k: v for k, v in _overrides(args.set).items() if not k.startswith("training.")}


def _during_training(args: argparse.Namespace, function: Any, points: Any, output: Path) -> tuple[Any, str]:
    """Train with the chosen trainer, measuring the kernel over `points`; returns the history
    and a line for the report."""
    from dlc.analysis import ntk_training
    from dlc.cli import _limits, _overrides, _registry
    from dlc.runtime import read_inputs

    if args.trainer == "gd":
        targets = _training_targets(read_inputs(args.inputs), args.inputs, args.targets)
        history = ntk_training.kernel_change_during_training(
            function,
            points,
            targets,
            steps=args.steps,
            learning_rate=args.lr,
            record_every=args.record_every,
            mode=args.mode,
            chunk=args.chunk,
        )
        line = (
            f"full-batch gradient descent, {args.steps} steps at lr {args.lr:g}: loss "
            f"{history.loss[0]:.4g} -> {history.loss[-1]:.4g}, "
            f"||K_t - K_0|| / ||K_0|| = {history.change[-1]:.4g}"
        )
        return history, line
    run_directory = Path(args.train_out) if args.train_out else output.with_name(output.stem + "_run")
    history, result = ntk_training.kernel_change_with_dlc_train(
        args.spec,
        read_inputs(args.inputs),
        run_directory,
        config_path=args.train_config,
        overrides=_overrides(args.set),
        registry=_registry(args),
        limits=_limits(args),
        output=args.outputs,
        record_every=args.record_every,
        mode=args.mode,
        chunk=args.chunk,
    )
    line = (
        f"dlc train ({result.progress.step} steps, run in {run_directory}): "
        f"||K_t - K_0|| / ||K_0|| = {history.change[-1]:.4g}"
    )
    return history, line


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


def add_ntk_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
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
    add_model_options(ntk)
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
        type=positive_int,
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
    ntk.add_argument(
        "--trainer",
        choices=("gd", "train"),
        default="gd",
        help="gd (default): full-batch gradient descent on the MSE to --targets; train: dlc train's "
        "loop with the spec's training section (or --train-config)",
    )
    ntk.add_argument("--train-config", help="--trainer train: a YAML file holding the training section")
    ntk.add_argument("--train-out", help="--trainer train: the run's directory (default <output>_run)")
    ntk.add_argument("--targets", default="y", help="the array of regression targets in --inputs (default y)")
    ntk.add_argument(
        "--steps", type=positive_int, default=100, help="training steps with --during-training (default 100)"
    )
    ntk.add_argument(
        "--lr", type=float, default=0.1, help="learning rate with --during-training (default 0.1)"
    )
    ntk.add_argument(
        "--record-every",
        type=positive_int,
        default=10,
        help="steps between kernel measurements (default 10)",
    )
    ntk.set_defaults(handler=cmd_ntk)
