"""The `dlc` command line.

Exit codes: 0 success, 1 a dlc error (bad spec, shapes, weights, runtime...), 2 bad
command-line usage, 3 an internal error (a bug: set DLC_DEBUG=1 for the traceback),
130 interrupted. Errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlc.errors import DlcError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3
SPEC_SUFFIXES = (".yaml", ".yml")


class UsageError(Exception):
    """Bad command-line usage found after parsing (exit code 2)."""


def _dims(values: Sequence[str]) -> dict[str, int]:
    dims = {}
    for text in values:
        name, sep, size = text.partition("=")
        if not sep or not name.strip().isidentifier() or not size.strip().isdigit() or int(size) < 1:
            raise UsageError(f"--dim expects NAME=SIZE with a positive size, e.g. N=4; got '{text}'")
        dims[name.strip()] = int(size)
    return dims


def _overrides(values: Sequence[str]) -> dict[str, Any]:
    from dlc.spec.loader import parse_override

    return dict(parse_override(text) for text in values)


def _registry(args: argparse.Namespace):
    from dlc.registry import default_registry

    return default_registry(strict=args.strict_plugins)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# -- commands --------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    import dlc

    model = dlc.compile(args.spec, opt_level=0, overrides=_overrides(args.set), registry=_registry(args))
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
    passes = [p.strip() for p in args.passes.split(",") if p.strip()] if args.passes is not None else None
    start = time.perf_counter()
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

    model = dlc.compile(args.spec, opt_level=0, overrides=_overrides(args.set), registry=_registry(args))
    summary = model.summary(_dims(args.dim))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        _console().print(summary.render())
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

        model: Any = dlc.compile(
            source, seed=args.seed, overrides=_overrides(args.set), registry=_registry(args)
        ).onnx_model()
    else:
        if args.set:
            raise UsageError("--set applies to specs, not to .onnx files")
        model = source
    session = Session(model, args.provider)
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
    _print_run(session, inputs, outputs, elapsed, args.output)
    return 0


def _print_run(session: Any, inputs: dict, outputs: dict, elapsed: float, saved: str | None) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"providers: {', '.join(session.providers)}   run: {elapsed * 1e3:.2f} ms")
    table = Table(title_justify="left")
    for column in ("", "name", "shape", "dtype", "mean", "std", "min", "max"):
        table.add_column(column, justify="right" if column in ("mean", "std", "min", "max") else "left")
    for kind, arrays in (("input", inputs), ("output", outputs)):
        for name, array in arrays.items():
            numeric = array.astype("float64") if array.size else array
            stats = (
                [f"{v:.4g}" for v in (numeric.mean(), numeric.std(), numeric.min(), numeric.max())]
                if array.size
                else [""] * 4
            )
            table.add_row(kind, name, str(list(array.shape)), str(array.dtype), *stats)
    console.print(table)
    if saved:
        console.print(f"wrote {saved}")


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.json:
        print(json.dumps([p.to_json() for p in registry.plugins], indent=2))
        return 0
    from rich.table import Table

    table = Table(title="plugins", title_justify="left")
    for column in ("name", "status", "version", "source", "provides / error"):
        table.add_column(column)
    for plugin in registry.plugins:
        provides = "; ".join(f"{k}: {len(v)}" for k, v in plugin.provides.items() if v)
        detail = plugin.error if plugin.status == "failed" else provides
        status = {"failed": "[red]failed[/red]", "disabled": "[yellow]disabled[/yellow]"}.get(
            plugin.status, plugin.status
        )
        table.add_row(plugin.name, status, plugin.version or "", plugin.source, detail or "")
    _console().print(table)
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = []
    for block in registry.blocks():
        fields = {}
        for name, field in block.config.model_fields.items():
            fields[name] = {
                "required": field.is_required(),
                "default": None if field.is_required() else repr(field.default),
            }
        inputs = (
            f"{block.inputs[0]}+"
            if block.inputs[1] is None
            else f"{block.inputs[0]}"
            if block.inputs[0] == block.inputs[1]
            else f"{block.inputs[0]}-{block.inputs[1]}"
        )
        rows.append(
            {
                "name": block.name,
                "plugin": block.plugin,
                "kind": "block",
                "doc": block.doc,
                "inputs": inputs,
                "outputs": list(block.outputs),
                "options": fields,
            }
        )
    for name, templates in sorted(registry.templates().items()):
        template = templates[0]
        rows.append(
            {
                "name": name,
                "plugin": template.plugin,
                "kind": "template",
                "doc": template.definition.doc or "",
                "inputs": str(len(template.definition.inputs)),
                "outputs": [],
                "options": {
                    k: {
                        "required": "default" not in p.model_fields_set,
                        "default": repr(p.default) if "default" in p.model_fields_set else None,
                    }
                    for k, p in template.params.items()
                },
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="blocks", title_justify="left")
    for column in ("block", "plugin", "inputs", "options", "description"):
        table.add_column(column)
    for row in rows:
        options = ", ".join(k if v["required"] else f"{k}={v['default']}" for k, v in row["options"].items())
        table.add_row(row["name"], row["plugin"], row["inputs"], options, row["doc"])
    _console().print(table)
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
    else:
        for row in rows:
            level = f"-O{row['level']}" if row["level"] <= 2 else "opt-in"
            print(f"{level:<6} {row['name']:<28} {row['description']} ({row['plugin']})")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if not registry.tuners:
        print("no installed plugin has a cost model to calibrate")
        return 0
    for tuner in registry.tuners:
        print(f"{tuner.name} ({tuner.plugin}): {tuner.description}")
        print(tuner.run(args.quick))
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


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from dlc import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--strict-plugins",
        action="store_true",
        help="treat a plugin that fails to load as an error",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what dlc does")
    spec_options = argparse.ArgumentParser(add_help=False)
    spec_options.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value under the spec's `params` (repeatable)",
    )

    parser = argparse.ArgumentParser(
        prog="dlc",
        description="dlc: compile declarative YAML network specs to ONNX and PyTorch, "
        "and run them in ONNX Runtime.",
        parents=[common],
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
    compile_.add_argument("--seed", type=int, default=0, help="seed of the weight initialization (default 0)")
    compile_.add_argument("--weights", help="a .safetensors file with the weights to use instead")
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
    summary.set_defaults(handler=cmd_summary)

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
        "--seed", type=int, default=0, help="seed for random inputs and spec weights (default 0)"
    )
    run.set_defaults(handler=cmd_run)

    plugins = commands.add_parser("plugins", parents=[common], help="list plugins and whether they loaded")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(handler=cmd_plugins)

    blocks = commands.add_parser("blocks", parents=[common], help="list the blocks specs can use")
    blocks.add_argument("--json", action="store_true")
    blocks.set_defaults(handler=cmd_blocks)

    passes = commands.add_parser(
        "passes", parents=[common], help="list optimization passes in pipeline order"
    )
    passes.add_argument("--json", action="store_true")
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
    return parser


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
    try:
        return args.handler(args)
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {error}\n")
    except DlcError as error:
        print(error.render(), file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
