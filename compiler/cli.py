"""The `dlc` command line.

Exit codes: 0 success, 1 a dlc error (bad spec, shapes, weights, runtime...), 2 bad
command-line usage, 3 an internal error (a bug: set DLC_DEBUG=1 for the traceback),
130 interrupted. Errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from dlc import progress
from dlc.errors import DlcError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3
SPEC_SUFFIXES = (".yaml", ".yml")


class UsageError(Exception):
    """Bad command-line usage found after parsing (exit code 2)."""


def _dims(values: Sequence[str]) -> dict[str, int]:
    from dlc.limits import dim_problem

    dims = {}
    for text in values:
        name, sep, size = text.partition("=")
        # A size is digits, or a power such as 2**20; both kept short enough to compute.
        base, _, exponent = size.strip().replace("_", "").partition("**")
        if (
            not sep
            or not name.strip().isidentifier()
            or not base.isdigit()
            or len(base) > 30
            or not (exponent.isdigit() and len(exponent) <= 3 if exponent else "**" not in size)
        ):
            raise UsageError(f"--dim expects NAME=SIZE with a positive size, e.g. N=4; got '{text}'")
        value = int(base) ** int(exponent) if exponent else int(base)
        problem = dim_problem(value)
        if problem is not None:
            raise UsageError(f"--dim {text}: {problem}")
        dims[name.strip()] = value
    return dims


def _count(text: str) -> int:
    """A positive count from the command line: ``1000000``, ``1_000_000`` or ``1e6``."""
    try:
        value = float(text) if any(c in text.lower() for c in ".e") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive count such as 1e10, got '{text}'") from None
    if value != value or value < 1 or value > 1e18 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a positive count such as 1e10, got '{text}'")
    return int(value)


def _limits(args: argparse.Namespace):
    from dlc.limits import Limits

    return Limits(max_params=args.max_params, max_nodes=args.max_nodes)


def _seed(text: str) -> int:
    """A --seed value: an integer from 0 to 2**63 - 1 (what numpy and torch both accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, got {text}")
    return value


def _overrides(values: Sequence[str]) -> dict[str, Any]:
    from dlc.spec.loader import parse_override

    for text in values:
        key, sep, _ = text.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, e.g. width=64; got '{text}'")
    return dict(parse_override(text) for text in values)


def _sampling(args: argparse.Namespace) -> dict[str, Any] | None:
    """The sampler options given (`--sampler`, `--steps`, ...), or None to compile the network."""
    given = {key: getattr(args, key, None) for key in ("sampler", "steps", "eta", "schedule")}
    if not any(value is not None for value in given.values()):
        return None
    return {key: value for key, value in given.items() if value is not None and value != "spec"}


def _registry(args: argparse.Namespace):
    from dlc.registry import default_registry

    return default_registry(strict=args.strict_plugins)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# -- commands --------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    import dlc

    model = dlc.compile(
        args.spec,
        opt_level=0,
        overrides=_overrides(args.set),
        registry=_registry(args),
        limits=_limits(args),
    )
    summary = model.summary()
    print(f"{args.spec}: ok ({len(summary.layers)} layers, {summary.params:,} parameters)")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    import dlc

    registry = _registry(args)
    try:
        target = registry.target(args.target)
    except KeyError:
        raise UsageError(
            f"unknown target '{args.target}' (available: {', '.join(registry.target_names)})"
        ) from None
    if target.name != "onnx" and args.output and Path(args.output).suffix == ".onnx":
        stem = Path(args.output).with_suffix("")
        raise UsageError(
            f"--target {target.name} writes a directory, but -o {args.output} names an ONNX file: "
            f"drop --target {target.name} for ONNX, or name the directory (e.g. -o {stem}_{target.name})"
        )
    passes = [p.strip() for p in args.passes.split(",") if p.strip()] if args.passes is not None else None
    start = time.perf_counter()
    with progress.task(f"compiling {args.spec}"):
        model = dlc.compile(
            args.spec,
            opt_level=args.opt_level,
            passes=passes,
            seed=args.seed,
            weights=args.weights,
            overrides=_overrides(args.set),
            registry=registry,
            portable=args.portable,
            pass_options={"conv_algo": args.conv_algo},
            limits=_limits(args),
            direction=args.direction,
            sampling=_sampling(args),
        )
    if args.print_ir:
        print(model.graph)
        for record in model.pass_records:
            change = "modified" if record.modified else "no change"
            print(f"# pass {record.name}: {change} ({record.seconds * 1e3:.1f} ms)")
            for note in record.notes:
                print(f"#   {note}")
    if args.print_ir and args.output is None:
        return 0
    output = Path(args.output) if args.output else Path(target.default_output(Path(args.spec).stem))
    written = model.save(output, target=target.name)
    elapsed = time.perf_counter() - start
    size = sum(p.stat().st_size for p in written if p.is_file())
    files = ", ".join(str(p) for p in written)
    level = f"-O{args.opt_level}" if passes is None else f"passes {','.join(passes) or 'none'}"
    print(f"wrote {files} ({size / 1e6:.2f} MB, {level}) in {elapsed:.2f} s")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import dlc

    model = dlc.compile(
        args.spec,
        opt_level=0,
        seed=args.seed,
        weights=args.weights,
        overrides=_overrides(args.set),
        registry=_registry(args),
        limits=_limits(args),
        sampling=_sampling(args),
    )
    summary = model.summary(_dims(args.dim))
    sampler = model.sampler
    report = summary.to_json()
    if sampler is not None:
        per_step, total = sampler.macs(_dims(args.dim))
        report["sampler"] = {
            "sampler": sampler.section.sampler,
            "steps": sampler.plan.steps,
            "macs_per_step": per_step,
            "macs": total,
        }
    if args.robustness:
        from dlc.analysis.attack_command import robustness_section

        report["robustness"] = robustness_section(model, args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from dlc.tables import print_table

        print_table(_console(), *summary.table())
        if sampler is not None:
            print(sampler.describe(_dims(args.dim)))
        if args.robustness:
            from dlc.analysis.attack_command import print_robustness

            print_robustness(report["robustness"])
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    import dlc
    from dlc.drawing.render import FORMATS, render
    from dlc.drawing.structure import ir_picture, spec_picture
    from dlc.emit.files import write_bytes_atomically

    output = Path(args.output) if args.output else Path(Path(args.spec).stem + ".html")
    if output.suffix not in FORMATS:
        raise UsageError(f"-o {output}: the suffix names the format, one of {', '.join(FORMATS)}")
    level = args.opt_level if args.ir else 0
    with progress.task(f"drawing {args.spec}"):
        model = dlc.compile(
            args.spec, opt_level=level, overrides=_overrides(args.set), registry=_registry(args)
        )
        if args.ir:
            picture = ir_picture(model.graph, model.lowered.layers)
        else:
            picture = spec_picture(model.lowered.graph, model.lowered.layers)
        title = f"{model.name} (IR at -O{level})" if args.ir else model.name
        text = render(picture, output.suffix, title)
    write_bytes_atomically(text.encode(), output)
    print(f"wrote {output} ({len(picture.boxes)} nodes, {len(picture.groups)} groups)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from dlc.runtime import Session, random_inputs, read_inputs

    if args.inputs is None and not args.random_inputs:
        raise UsageError("give the inputs: --inputs FILE.npz, or --random-inputs")
    if args.inputs is not None and args.random_inputs:
        raise UsageError("--inputs and --random-inputs exclude each other")
    source = Path(args.model)
    if source.suffix in SPEC_SUFFIXES:
        import dlc

        with progress.task(f"compiling {source}"):
            model: Any = dlc.compile(
                source,
                seed=args.seed,
                overrides=_overrides(args.set),
                registry=_registry(args),
                limits=_limits(args),
            ).onnx_model()
    else:
        if args.set:
            raise UsageError("--set applies to specs, not to .onnx files")
        model = source
    try:
        with progress.task("loading the model into ONNX Runtime"):
            session = Session(model, args.provider)
    except DlcError:
        if model is source and _looks_like_spec(source):
            raise DlcError(
                f"{source} is not an ONNX model; it looks like a dlc spec",
                hint=f"`dlc run SPEC` compiles a spec on the fly when its name ends in .yaml or .yml: "
                f"name it {source.stem}.yaml and run `dlc run {source.stem}.yaml --random-inputs`",
            ) from None
        raise
    inputs = (
        random_inputs(session, _dims(args.dim), seed=args.seed)
        if args.random_inputs
        else read_inputs(args.inputs)
    )
    start = time.perf_counter()
    outputs = session.run(inputs)
    elapsed = time.perf_counter() - start
    if args.output:
        from dlc.emit.files import publish, staging_directory

        destination = Path(args.output)
        with staging_directory(destination) as staging:
            staged = staging / "outputs.npz"
            np.savez(staged, **outputs)
            publish(staged, destination)
    _print_run(session, inputs, outputs, elapsed, args.output, args.json)
    return 0


def _looks_like_spec(path: Path) -> bool:
    """A YAML mapping with the spec's `dlc:` version key near the top."""
    try:
        head = path.read_bytes()[:4096].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith("dlc:") for line in head.splitlines())


def _print_run(
    session: Any, inputs: dict, outputs: dict, elapsed: float, saved: str | None, as_json: bool
) -> None:
    from dlc.runtime.report import run_report

    report = run_report(session.providers, inputs, outputs, elapsed, saved)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from dlc.tables import Column, print_table

    console = _console()
    console.out(f"providers: {', '.join(report['providers'])}   run: {elapsed * 1e3:.2f} ms", highlight=False)
    columns = [Column(""), Column("name"), Column("shape"), Column("dtype")]
    columns += [Column(stat, numeric=True) for stat in ("mean", "std", "min", "max")]
    rows = []
    for kind in ("inputs", "outputs"):
        for name, entry in report[kind].items():
            stats = [_stat(entry[stat]) for stat in ("mean", "std", "min", "max")]
            rows.append([kind[:-1], name, str(entry["shape"]), entry["dtype"], *stats])
    print_table(console, "", columns, rows)
    if saved:
        console.out(f"wrote {saved}", highlight=False)


def _stat(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.json:
        print(json.dumps([p.to_json() for p in registry.plugins], indent=2))
        return 0
    from rich.text import Text

    from dlc.tables import Column, print_table

    rows = []
    for plugin in registry.plugins:
        provides = "; ".join(f"{k}: {len(v)}" for k, v in plugin.provides.items() if v)
        detail = plugin.error if plugin.status == "failed" else provides
        style = {"failed": "red", "disabled": "yellow"}.get(plugin.status, "")
        rows.append(
            [plugin.name, Text(plugin.status, style=style), plugin.version or "", plugin.source, detail or ""]
        )
    columns = [Column(c) for c in ("name", "status", "version", "source", "provides / error")]
    print_table(_console(), "plugins", columns, rows)
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from dlc.block_docs import block_doc, block_docs, render_text, yaml_value

    registry = _registry(args)
    if args.name:
        doc = block_doc(registry, args.name)
        if args.json:
            print(json.dumps(doc.to_json(), indent=2))
        else:
            print("\n".join(render_text(doc)))
        return 0
    docs = block_docs(registry)
    if args.json:
        print(json.dumps([d.to_json() for d in docs], indent=2))
        return 0
    from dlc.tables import Column, print_table

    rows = [
        [
            d.name,
            d.plugin,
            d.inputs,
            ", ".join(o.name if o.required else f"{o.name}={yaml_value(o.default)}" for o in d.options),
            d.description.split(". ")[0].rstrip("."),
        ]
        for d in docs
    ]
    columns = [Column(c) for c in ("block", "plugin", "inputs", "options", "description")]
    print_table(_console(), "blocks (`dlc blocks NAME` for one block's options)", columns, rows)
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = [
        {
            "name": p.name,
            "level": p.level,
            "phase": p.phase,
            "plugin": p.plugin,
            "description": p.description,
        }
        for p in sorted(registry.passes, key=lambda p: p.phase)  # the -O2 order, opt-in passes too
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from dlc.tables import Column, print_table

    columns = [Column("level"), Column("pass"), Column("plugin"), Column("description")]
    table = [
        [
            f"-O{row['level']}" if row["level"] <= 2 else "opt-in",
            row["name"],
            row["plugin"],
            row["description"],
        ]
        for row in rows
    ]
    print_table(_console(), "passes (in pipeline order)", columns, table)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if not registry.tuners:
        print("no installed plugin has a cost model to calibrate")
        return 0
    for tuner in registry.tuners:
        print(f"{tuner.name} ({tuner.plugin}): {tuner.description}")
        with progress.task(f"measuring: {tuner.name}"):
            report = tuner.run(args.quick)
        print(report)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from dlc.spec.schema import spec_schema

    text = json.dumps(spec_schema(_registry(args)), indent=2)
    if args.output:
        from dlc.emit.files import write_bytes_atomically

        write_bytes_atomically(text.encode() + b"\n", Path(args.output))
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from dlc.training.loop import train
    from dlc.training.plan import plan_training

    with progress.task(f"preparing {args.spec}"):
        plan = plan_training(
            args.spec,
            config_path=args.config,
            overrides=_overrides(args.set),
            registry=_registry(args),
            limits=_limits(args),
        )
    output = Path(args.out) if args.out else Path("runs") / Path(args.spec).stem
    start = time.perf_counter()
    result = train(plan, output, resume=args.resume)
    elapsed = time.perf_counter() - start
    if result.files == [] and not result.interrupted:
        return 0  # a process other than rank 0 under torchrun: it writes and reports nothing
    if result.schedule_report:
        print(result.schedule_report)
    for split, metrics in result.metrics.items():
        if metrics:
            shown = "  ".join(f"{name} {value:.4g}" for name, value in metrics.items())
            print(f"{split}: {shown}")
    steps = f"{result.progress.step} steps, {result.progress.epoch} epochs"
    print(f"wrote {', '.join(str(p) for p in result.files)} ({steps}, {elapsed:.1f} s)")
    if result.interrupted:
        print(
            f"dlc: interrupted; resume with: dlc train {args.spec} --out {output} --resume", file=sys.stderr
        )
        return 130
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    import dlc
    from dlc.runtime import read_inputs
    from dlc.training.predict import posterior_predictive_mean

    with progress.task(f"compiling {args.spec}"):
        model = dlc.compile(
            args.spec,
            opt_level=0,
            overrides=_overrides(args.set),
            registry=_registry(args),
            limits=_limits(args),
        )
    outputs = posterior_predictive_mean(model, args.posterior, read_inputs(args.inputs), softmax=args.softmax)
    for name, value in outputs.items():
        print(f"{name}: shape {list(value.shape)}, mean {float(np.mean(value)):.6g}")
    if args.output:
        from dlc.emit.files import publish, staging_directory

        destination = Path(args.output)
        with staging_directory(destination) as staging:
            staged = staging / "predictions.npz"
            np.savez(staged, **outputs)
            publish(staged, destination)
        print(f"wrote {destination}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from dlc.completion import completion_script

    sys.stdout.write(completion_script(build_parser(), args.shell))
    return 0


# -- parser ----------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, default: Any) -> argparse.ArgumentParser:
    parser.add_argument(
        "--strict-plugins",
        action="store_true",
        default=default,
        help="treat a plugin that fails to load as an error",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log what dlc does: passes run, files written, providers chosen, timings",
    )
    return parser


def _sampler_options(parser: argparse.ArgumentParser) -> None:
    """`--sampler` and its overrides of the spec's `sampling:` section (README: Diffusion)."""
    group = parser.add_argument_group("diffusion sampler (the spec's `sampling:` section)")
    group.add_argument(
        "--sampler",
        nargs="?",
        const="spec",
        choices=("ddpm", "ddim", "spec"),
        help="compile the sampler x_T -> x_0 around the network: ddpm or ddim (alone: the spec's)",
    )
    group.add_argument(
        "--steps", type=int, help="sampling steps (default: the spec's, else every training step)"
    )
    group.add_argument("--eta", type=float, help="DDIM's noise scale, 0 (deterministic) to 1")
    group.add_argument("--schedule", choices=("linear", "cosine"), help="noise schedule")


def build_parser() -> argparse.ArgumentParser:
    from dlc import __version__

    # The global options are accepted before the command (`dlc -v compile ...`) and after it
    # (`dlc compile -v ...`). After it they default to SUPPRESS: otherwise the subcommand's
    # default (False) would overwrite what was given before the command.
    top_level = _global_options(argparse.ArgumentParser(add_help=False), default=False)
    common = _global_options(argparse.ArgumentParser(add_help=False), default=argparse.SUPPRESS)
    spec_options = argparse.ArgumentParser(add_help=False)
    spec_options.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value under the spec's `params` (repeatable); `dlc train` also takes "
        "training.KEY=VALUE (e.g. training.optimizer.lr=3e-4)",
    )
    from dlc.limits import DEFAULT_MAX_NODES, DEFAULT_MAX_PARAMS

    spec_options.add_argument(
        "--max-params",
        type=_count,
        default=DEFAULT_MAX_PARAMS,
        metavar="COUNT",
        help=f"refuse models with more parameters and buffers (default {DEFAULT_MAX_PARAMS:.0e})",
    )
    spec_options.add_argument(
        "--max-nodes",
        type=_count,
        default=DEFAULT_MAX_NODES,
        metavar="COUNT",
        help=f"refuse models with more IR operations (default {DEFAULT_MAX_NODES:,})",
    )

    parser = argparse.ArgumentParser(
        prog="dlc",
        description="dlc: compile declarative YAML network specs to ONNX and PyTorch, "
        "and run them in ONNX Runtime.",
        parents=[top_level],
    )
    parser.add_argument("--version", action="version", version=f"dlc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate", parents=[common, spec_options], help="check a spec: syntax, blocks, shapes"
    )
    validate.add_argument("spec", help="the spec file (YAML)")
    validate.set_defaults(handler=cmd_validate)

    compile_ = commands.add_parser(
        "compile", parents=[common, spec_options], help="compile a spec to ONNX or PyTorch"
    )
    compile_.add_argument("spec", help="the spec file (YAML)")
    compile_.add_argument(
        "-o",
        "--output",
        help="output file (onnx) or directory (torch); default from the spec's file name",
    )
    compile_.add_argument(
        "--target",
        default="onnx",
        help="onnx (default) or torch: a directory with model.py and weights.safetensors",
    )
    compile_.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="optimization level: -O0 none, -O1 exact cleanups, -O2 everything (default)",
    )
    compile_.add_argument("--passes", help="run exactly these passes, comma-separated (see `dlc passes`)")
    compile_.add_argument(
        "--seed", type=_seed, default=0, help="seed of the weight initialization (default 0)"
    )
    compile_.add_argument(
        "--weights",
        help="weights to use instead of the seeded init: .safetensors, or a PyTorch checkpoint "
        "(.pt/.pth/.bin, a state_dict; needs dlc[torch])",
    )
    compile_.add_argument(
        "--print-ir",
        action="store_true",
        help="print the optimized IR (and write output only with -o)",
    )
    compile_.add_argument(
        "--conv-algo",
        choices=("auto", "direct", "fft"),
        default="auto",
        help="convolution algorithm: by predicted cost (auto, at -O2), or forced for every conv",
    )
    compile_.add_argument(
        "--portable",
        action="store_true",
        help="standard ONNX ops only (by default -O2 may use ONNX Runtime's fused com.microsoft ops)",
    )
    compile_.add_argument(
        "--direction",
        choices=("forward", "inverse"),
        default="forward",
        help="inverse: compile x = f^-1(z) of a spec of invertible layers (a flow), same weights",
    )
    _sampler_options(compile_)
    compile_.set_defaults(handler=cmd_compile)

    summary = commands.add_parser(
        "summary", parents=[common, spec_options], help="per-layer shapes, parameters and MACs"
    )
    summary.add_argument("spec", help="the spec file (YAML)")
    summary.add_argument(
        "--json", action="store_true", help="print JSON (top-level integer `params` and `macs`)"
    )
    summary.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="size of a symbolic dim for MAC counts (default 1, i.e. batch 1)",
    )
    _sampler_options(summary)
    from dlc.analysis.attack_command import add_summary_options

    add_summary_options(summary)  # --robustness, --weights, --seed
    summary.set_defaults(handler=cmd_summary)

    graph = commands.add_parser(
        "graph",
        parents=[common, spec_options],
        help="draw the model: groups for templates, repeats and residuals, shapes on edges",
    )
    graph.add_argument("spec", help="the spec file (YAML)")
    graph.add_argument(
        "-o",
        "--output",
        help="model.html (one self-contained page, groups fold on click), model.svg or model.dot "
        "(Graphviz text); default <spec name>.html",
    )
    graph.add_argument(
        "--ir", action="store_true", help="draw the optimized IR (one box per op), not the spec's layers"
    )
    graph.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="optimization level of the IR drawn with --ir (default 2)",
    )
    graph.set_defaults(handler=cmd_graph)

    run = commands.add_parser(
        "run", parents=[common, spec_options], help="run an .onnx model or a spec in ONNX Runtime"
    )
    run.add_argument("model", help="an .onnx file, or a spec (.yaml) compiled on the fly")
    run.add_argument("--inputs", help="an .npz file with one array per model input")
    run.add_argument(
        "--random-inputs", action="store_true", help="random inputs (floats N(0,1), ids in range)"
    )
    run.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="size of a symbolic dim (default 1)",
    )
    from dlc.runtime.providers import PROVIDER_CHOICES

    run.add_argument(
        "--provider",
        default="auto",
        choices=PROVIDER_CHOICES,
        help="execution provider (default auto)",
    )
    run.add_argument("--output", help="write the outputs to this .npz file")
    run.add_argument(
        "--seed", type=_seed, default=0, help="seed for random inputs and spec weights (default 0)"
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print JSON: providers, run time, and per input and output its shape, dtype and statistics",
    )
    run.set_defaults(handler=cmd_run)

    plugins = commands.add_parser("plugins", parents=[common], help="list plugins and whether they loaded")
    plugins.add_argument(
        "--json",
        action="store_true",
        help="print JSON: per plugin its source, version, status, error and what it provides",
    )
    plugins.set_defaults(handler=cmd_plugins)

    blocks = commands.add_parser(
        "blocks",
        parents=[common],
        help="list the blocks specs can use, or document one (options, ports, example)",
    )
    blocks.add_argument(
        "name", nargs="?", help="a block or template: print its options, ports and an example"
    )
    blocks.add_argument(
        "--json",
        action="store_true",
        help="print JSON: per block its plugin, ports, and options with types, JSON defaults and bounds",
    )
    blocks.set_defaults(handler=cmd_blocks)

    passes = commands.add_parser(
        "passes", parents=[common], help="list optimization passes in pipeline order"
    )
    passes.add_argument(
        "--json",
        action="store_true",
        help="print JSON: per pass its name, level (3: opt-in), phase, plugin and description",
    )
    passes.set_defaults(handler=cmd_passes)

    tune = commands.add_parser(
        "tune",
        parents=[common],
        help="calibrate cost models (e.g. the conv algorithm choice) on this machine",
    )
    tune.add_argument(
        "--quick", action="store_true", help="fewer, smaller measurements (seconds, less accurate)"
    )
    tune.set_defaults(handler=cmd_tune)

    schema = commands.add_parser(
        "schema", parents=[common], help="print the JSON Schema of the spec language"
    )
    schema.add_argument("-o", "--output", help="write it to a file")
    schema.set_defaults(handler=cmd_schema)

    train = commands.add_parser(
        "train",
        parents=[common, spec_options],
        help="train a spec with its `training:` section and write model.safetensors",
    )
    train.add_argument("spec", help="the spec file (YAML)")
    train.add_argument("--config", help="a YAML file holding the training section (instead of the spec's)")
    train.add_argument("--out", help="the run's directory (default runs/<spec name>)")
    train.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in the run's directory"
    )
    train.set_defaults(handler=cmd_train)

    predict = commands.add_parser(
        "predict",
        parents=[common, spec_options],
        help="the posterior predictive mean: outputs averaged over a Langevin run's weight samples",
    )
    predict.add_argument("spec", help="the spec file (YAML) the run trained")
    predict.add_argument(
        "--posterior", required=True, help="the run's posterior.safetensors (dlc train with optimizer: sgld)"
    )
    predict.add_argument("--inputs", required=True, help="an .npz file with one array per model input")
    predict.add_argument("--output", help="write the averaged outputs to this .npz file")
    predict.add_argument(
        "--softmax", action="store_true", help="average class probabilities, not logits (classifiers)"
    )
    predict.set_defaults(handler=cmd_predict)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script for bash, zsh or fish (see the README)",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")
    completion.set_defaults(handler=cmd_completion)

    from dlc.analysis.commands import add_commands as add_analysis_commands

    add_analysis_commands(commands, [common, spec_options])  # dlc ntk, dlc attack
    return parser


def _name_overrides(error: DlcError, overrides: Sequence[str]) -> DlcError:
    """A spec error under --set may come from a value given on the command line, not from the
    file the error points into: say which --set values were in force."""
    import dataclasses
    import re

    from dlc.errors import SpecError

    if not overrides or not isinstance(error, SpecError):
        return error
    keys = {text.partition("=")[0].strip(): text for text in overrides}
    diagnostics = []
    for diagnostic in error.diagnostics:
        line = diagnostic.source_line or ""
        used = [text for key, text in keys.items() if re.search(rf"\$\{{[^}}]*\b{re.escape(key)}\b", line)]
        if any(n.startswith("the value comes from --set") for n in diagnostic.notes):
            diagnostics.append(diagnostic)  # `dlc train` named the --set value already
            continue
        if used:
            note = "the value comes from " + ", ".join(f"--set {text}" for text in used)
        else:
            note = "the spec was loaded with " + " ".join(f"--set {text}" for text in overrides)
        diagnostics.append(dataclasses.replace(diagnostic, notes=(*diagnostic.notes, note)))
    return type(error)(diagnostics=diagnostics)


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"dlc: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_WarningFormatter())
    logger = logging.getLogger("dlc")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    logger.propagate = False
    progress.enable_on_terminal()
    try:
        return args.handler(args)
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {error}\n")
    except DlcError as error:
        print(_name_overrides(error, getattr(args, "set", [])).render(), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("dlc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug in dlc or a plugin: say so briefly
        if os.environ.get("DLC_DEBUG"):
            raise
        print(f"dlc: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        print(
            "dlc: this is a bug; set DLC_DEBUG=1 to see the traceback and please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return 0


def run() -> NoReturn:
    """The `dlc` command: `main`, then an exit that skips the interpreter's teardown.

    What a normal exit does first still happens: other threads are waited for, exit
    handlers run (logging, temporary files) and the output is flushed. What is skipped is
    freeing every module's objects one by one: 33 ms of a 0.29 s `dlc validate`.

    It also keeps `torchrun ... dlc train` from aborting after its work is done. With
    gloo, the process group's worker threads outlive `destroy_process_group`
    (DistributedDataParallel keeps the group alive until exit), and a collective issued
    during backward holds a Python object (the context torch 2.13 stashes for autograd)
    that the worker thread drops after the waiting rank has moved on. Dropping it takes
    the GIL; once the interpreter is shutting down, that ends the thread inside a C++
    destructor and the process aborts ("terminate called without an active exception",
    exit -6, about one run in ten of `tests/training/test_distributed.py`).
    """
    # Start-up allocates hundreds of thousands of objects and keeps nearly all of them (the
    # imported modules), which the default thresholds traverse again and again: 20 ms of a
    # 0.31 s `dlc validate` of the every-family spec. Garbage is still collected, less often.
    gc.set_threshold(100_000, 50, 100)
    try:
        code: object = main()
    except SystemExit as exit_request:  # argparse's --help, --version and usage errors
        code = exit_request.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
