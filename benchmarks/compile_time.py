"""Compile speed: dlc against building the same model in torch and exporting it, and how
fast the interactive commands answer.

Every figure is a fresh process, and the candidates alternate within one run, so that the
load of a shared machine hits both sides alike; ratios are taken within the run.

- Zoo specs: ``dlc compile SPEC`` (-O2, ONNX) against a script that builds the same model
  in torch and calls ``torch.onnx.export(..., dynamo=True)``: HF transformers' models for
  BERT and GPT-2, and elsewhere the module dlc ejects (``dlc compile --target torch -O0``:
  a plain ``nn.Module`` a person would write; torchvision cannot be imported beside
  transformers here). Symbolic dims are exported as dynamic dims; where the exporter
  rejects that, the model is exported with static shapes and the row says so.
  An export still running after ``--peer-limit`` seconds (300) is stopped; its row gives
  the least speed-up that implies.
- Start-up: ``dlc --version``, ``dlc --help``, ``dlc validate`` and ``dlc summary`` of a small
  spec, of a large one and of one that uses a block of every family.
- ``--phases``: where dlc's own time goes in one compile (start-up, registry, load, lower,
  passes, weights, write), measured in a fresh process per spec.

dlc's modules are byte-compiled first, as ``pip install`` does for a wheel (this machine
sets PYTHONDONTWRITEBYTECODE, under which every run would recompile dlc's source).

    python benchmarks/compile_time.py                        # everything (long: an hour)
    python benchmarks/compile_time.py --specs resnet50,bert_base --repeat 3
    python benchmarks/compile_time.py --startup-only --startup-repeat 10
    python benchmarks/compile_time.py --phases --specs resnet50 --no-peer

Needs the `bench` extra (transformers, onnxscript).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The headline models first, so that a partial run still answers for them; then
# every other spec of the zoo (specs/, less the benchmark-only specs/bench).
HEADLINE = ["attention/bert_base", "attention/gpt2_small", "cnn/resnet50", "cnn/vgg16"]
ZOO = HEADLINE + sorted(
    str(path.relative_to(REPO / "specs").with_suffix(""))
    for path in (REPO / "specs").rglob("*.yaml")
    if path.parent.name != "bench" and str(path.relative_to(REPO / "specs").with_suffix("")) not in HEADLINE
)

# The published implementations, where they can be imported here: HF transformers.
HF_MODELS = {
    "attention/bert_base": "transformers.BertModel(transformers.BertConfig())",
    "attention/bert_large": "transformers.BertModel(transformers.BertConfig(hidden_size=1024, "
    "num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096))",
    # use_cache=False: with the default cache the exporter fails on its DynamicCache output.
    "attention/gpt2_small": "transformers.GPT2LMHeadModel(transformers.GPT2Config(use_cache=False))",
}

# Sizes of the symbolic dims in the example inputs (2 or more: the exporter specializes 0 and 1).
EXAMPLE_DIMS = {"N": 2}
DEFAULT_EXAMPLE_DIM = 16

PEER_EXPORT = """
import json, sys, importlib
import torch
config = json.loads(sys.argv[1])
torch.manual_seed(0)
if config["hf"]:
    import transformers
    model = eval(config["hf"])
else:
    sys.path.insert(0, config["package"])
    module = importlib.import_module("model")
    model = getattr(module, module.load_model.__annotations__["return"])()
model = model.eval()
example, dynamic, dims = [], [], {}
for spec in config["inputs"]:
    shape = [d if isinstance(d, int) else config["sizes"].get(d, config["default_size"]) for d in spec["shape"]]
    if spec["dtype"].startswith("int"):
        example.append(torch.full(shape, spec["low"], dtype=getattr(torch, spec["dtype"])))
    else:
        example.append(torch.randn(*shape, dtype=getattr(torch, spec["dtype"])))
    axes = {}
    for axis, d in enumerate(spec["shape"]):
        if not isinstance(d, int):
            axes[axis] = dims.setdefault(d, torch.export.Dim(d, min=1))
    dynamic.append(axes)
shapes = tuple(dynamic) if config["dynamic"] else None
with torch.no_grad():
    torch.onnx.export(model, tuple(example), sys.argv[2], dynamo=True, dynamic_shapes=shapes, verbose=False)
"""


def dlc_command() -> list[str]:
    """The `dlc` console script beside this interpreter (what users run), else `-m dlc.cli`."""
    script = Path(sys.executable).with_name("dlc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dlc.cli"]


def byte_compile() -> None:
    for folder in ("compiler", "plugins", "runtime"):
        compileall.compile_dir(str(REPO / folder), quiet=1)


# Exit code `timed` gives a process it stopped at its time limit.
STOPPED = -1


def timed(
    command: list[str], env: dict[str, str] | None = None, limit: float | None = None
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one fresh process; a process still running
    after `limit` seconds is killed and gets exit code `STOPPED`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, cwd=REPO, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, 0.0, STOPPED
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode(errors="replace")[-2000:])
    return elapsed, cpu, result.returncode


def spec_path(name: str) -> Path:
    path = REPO / "specs" / f"{name}.yaml"
    if not path.exists():
        matches = sorted((REPO / "specs").rglob(f"{name}.yaml"))
        if len(matches) != 1:
            raise SystemExit(f"unknown spec '{name}'")
        path = matches[0]
    return path


def peer_config(name: str, work: Path) -> dict:
    """What the export script needs: the model to build and its example inputs."""
    import dlc

    spec = spec_path(name)
    key = str(spec.relative_to(REPO / "specs").with_suffix(""))
    model = dlc.compile(spec, opt_level=0)
    inputs = []
    for node in model.graph.inputs():
        value_range = getattr(node.attrs, "range", None)
        inputs.append(
            {
                "shape": [d if isinstance(d, int) else str(d) for d in node.output.type.shape],
                "dtype": node.output.type.dtype.numpy.name,
                "low": int(value_range[0]) if value_range else 0,
            }
        )
    package = work / f"peer_{spec.stem}"
    if key not in HF_MODELS:
        model.save(package, target="torch")
    return {
        "hf": HF_MODELS.get(key),
        "package": str(package),
        "inputs": inputs,
        "sizes": EXAMPLE_DIMS,
        "default_size": DEFAULT_EXAMPLE_DIM,
        "dynamic": True,
    }


def compare_compile(names: list[str], repeat: int, work: Path, peer_limit: float) -> list[dict]:
    rows = []
    for name in names:
        spec = spec_path(name)
        config = peer_config(name, work)
        output = work / "out.onnx"
        peer = [sys.executable, "-c", PEER_EXPORT]
        dlc = [*dlc_command(), "compile", str(spec), "-o", str(output)]
        timed(dlc)  # untimed: records the plugin manifest and warms the file cache
        note = ""
        dlc_runs, peer_runs = [timed(dlc)], []
        first = timed([*peer, json.dumps(config), str(output)], limit=peer_limit)
        if first[2] not in (0, STOPPED):  # the exporter rejected the dynamic dims: export static shapes
            config["dynamic"] = False
            note = "static shapes (the dynamic export failed)"
            first = timed([*peer, json.dumps(config), str(output)], limit=peer_limit)
            if first[2] not in (0, STOPPED):
                note = "export failed"
        if first[2] == STOPPED:  # one stopped export is its answer: no repeats
            note = f"export stopped after {peer_limit:g} s"
        elif note != "export failed":
            peer_runs.append(first)
        for _ in range(repeat - 1):
            dlc_runs.append(timed(dlc))
            if peer_runs:
                peer_runs.append(timed([*peer, json.dumps(config), str(output)], limit=peer_limit))
        row = {
            "spec": str(spec.relative_to(REPO)),
            "peer": "transformers" if config["hf"] else "ejected model.py",
            "dlc_s": statistics.median(r[0] for r in dlc_runs),
            "dlc_cpu_s": statistics.median(r[1] for r in dlc_runs),
            "note": note,
        }
        if first[2] == STOPPED:
            row["speedup_at_least"] = peer_limit / row["dlc_s"]
        if peer_runs:
            row["export_s"] = statistics.median(r[0] for r in peer_runs)
            row["export_cpu_s"] = statistics.median(r[1] for r in peer_runs)
            row["speedup"] = row["export_s"] / row["dlc_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def startup_commands(work: Path) -> dict[str, list[str]]:
    dlc = dlc_command()
    every_family = str(REPO / "benchmarks" / "specs" / "every_family.yaml")
    return {
        "dlc --version": [*dlc, "--version"],
        "dlc --help": [*dlc, "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "dlc validate specs/mlp.yaml": [*dlc, "validate", "specs/mlp.yaml"],
        "dlc validate every_family.yaml": [*dlc, "validate", every_family],
        "dlc validate specs/cnn/resnet50.yaml": [*dlc, "validate", "specs/cnn/resnet50.yaml"],
        "dlc summary specs/mlp.yaml": [*dlc, "summary", "specs/mlp.yaml"],
        "dlc summary every_family.yaml": [*dlc, "summary", every_family],
        "dlc summary specs/attention/bert_large.yaml": [*dlc, "summary", "specs/attention/bert_large.yaml"],
    }


def startup(repeat: int, work: Path) -> list[dict]:
    """Median wall and CPU time of each command, the commands interleaved round by round."""
    commands = startup_commands(work)
    runs: dict[str, list[tuple[float, float, int]]] = {label: [] for label in commands}
    for command in commands.values():  # warm the file cache once
        timed(command)
    for _ in range(repeat):
        for label, command in commands.items():
            runs[label].append(timed(command))
    rows = []
    for label, results in runs.items():
        row = {
            "command": label,
            "median_s": statistics.median(r[0] for r in results),
            "median_cpu_s": statistics.median(r[1] for r in results),
            "failures": sum(r[2] != 0 for r in results),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


PHASES_SCRIPT = """
import sys, time, json
from pathlib import Path
wall, cpu = time.perf_counter, time.process_time
started = (wall(), cpu())
phases = {}
def phase(name, function, *args):
    start = (wall(), cpu())
    result = function(*args)
    phases[name] = (wall() - start[0], cpu() - start[1])
    return result
def start_up():
    import dlc.cli
    dlc.cli.build_parser()
phase("start-up", start_up)
def registry():
    from dlc.registry import default_registry
    return default_registry()
registry = phase("registry", registry)
def load():
    from dlc.spec.loader import load_spec
    return load_spec(sys.argv[1])
spec = phase("load", load)
def lower():
    from dlc.spec.lower import lower_spec
    return lower_spec(spec, registry)
lowered = phase("lower", lower)
def run_passes():
    from dlc.passes.manager import PassContext, PassManager, build_pipeline
    pipeline = build_pipeline(registry, 2, None)
    context = PassContext(registry, 0, {"conv_algo": "auto"}, False)
    return PassManager([info.factory(context) for info in pipeline], registry).run(lowered.graph.copy())
graph = phase("passes", run_passes)
def weights():
    # Drawn as the writer draws them (a thread per core, BLAS one thread each), not written.
    from dlc.api import CompiledModel
    from dlc.emit.onnx.parallel_draw import ParallelDraw
    model = CompiledModel(spec, lowered, graph, registry, 0, 2, [], False)
    streamed = list(model.streamed_weights().values())
    with ParallelDraw(streamed) as drawing:
        for _ in streamed:
            for piece in drawing.pieces():
                pass
    return model
model = phase("weights (drawn alone)", weights)
def write():
    from dlc.emit.onnx.target import ONNX_TARGET
    ONNX_TARGET.write(model, Path(sys.argv[2]))
phase("write (weights drawn again inside)", write)
phases["in process"] = (wall() - started[0], cpu() - started[1])
print(json.dumps({k: [round(v[0], 3), round(v[1], 3)] for k, v in phases.items()}))
"""


def phases(names: list[str], work: Path) -> list[dict]:
    rows = []
    for name in names:
        spec = spec_path(name)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", PHASES_SCRIPT, str(spec), str(work / "phases.onnx")],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        total = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stderr[-2000:], file=sys.stderr)
            continue
        # Each phase: [wall s, CPU s]; the process's wall time includes interpreter start and exit.
        row = {"spec": str(spec.relative_to(REPO)), "process_s": round(total, 3), **json.loads(result.stdout)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", help="comma-separated zoo spec names (e.g. resnet50,bert_base)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each compile (median)")
    parser.add_argument("--startup-repeat", type=int, default=10, help="runs of each start-up command")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up commands")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up commands")
    parser.add_argument("--no-peer", action="store_true", help="skip the compile-vs-export comparison")
    parser.add_argument("--phases", action="store_true", help="per-phase breakdown of dlc's time")
    parser.add_argument(
        "--peer-limit",
        type=float,
        default=300.0,
        help="seconds after which an export is stopped; the row then gives a least speed-up",
    )
    parser.add_argument("--json", help="write every result to this file")
    args = parser.parse_args()
    byte_compile()
    names = ZOO
    if args.specs:
        wanted = [n.strip() for n in args.specs.split(",") if n.strip()]
        names = [next((z for z in ZOO if z.split("/")[-1] == w or z == w), w) for w in wanted]
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="dlc-compile-time-") as folder:
        work = Path(folder)
        if not args.no_startup:
            results["startup"] = startup(args.startup_repeat, work)
        if not args.startup_only:
            if args.phases:
                results["phases"] = phases(names, work)
            if not args.no_peer:
                results["compile"] = compare_compile(names, args.repeat, work, args.peer_limit)
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
