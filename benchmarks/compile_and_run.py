"""Foundation benchmark: time to an ONNX file, and inference latency, against the peers.

Each measurement runs in one go on this machine, and the figures are ratios taken in that
run:

- time to an ONNX file on disk, each as a fresh process: ``dlc compile SPEC`` against a
  Python script that builds the same network in torch (the ejected model.py) and calls
  ``torch.onnx.export(..., dynamo=True)``;
- inference latency at batch 64: the dlc ONNX model in ONNX Runtime (CPU) against the
  ejected module in torch eager mode.

    python benchmarks/compile_and_run.py [--repeats 5] [--json out.json]

Needs the `bench` extra (onnxscript, for torch's dynamo exporter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPECS = ["specs/mlp.yaml", "specs/residual_mlp.yaml"]

PEER_EXPORT = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from model import load_model
module = load_model()
shapes = [eval(s) for s in sys.argv[3:]]
example = tuple(torch.randn(*shape) for shape in shapes)
batch = torch.export.Dim("N", min=1)
dynamic = tuple({0: batch} for _ in example)
torch.onnx.export(module, example, sys.argv[2], dynamo=True, dynamic_shapes=dynamic, verbose=False)
"""


def wall(command: list[str], repeats: int) -> float:
    """Median wall time of a fresh process, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(run, repeats: int = 200) -> float:
    """Median latency of `run()` in milliseconds, after warm-up."""
    for _ in range(10):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(spec: str, repeats: int, work: Path) -> dict[str, float]:
    import torch

    import dlc
    from dlc.runtime import Session

    model = dlc.compile(REPO / spec)
    package = work / Path(spec).stem
    model.save(package, target="torch")
    shapes = [
        [64 if not isinstance(d, int) else d for d in n.output.type.shape] for n in model.graph.inputs()
    ]
    dlc_seconds = wall(
        [sys.executable, "-m", "dlc.cli", "compile", spec, "-o", str(work / "dlc.onnx")], repeats
    )
    peer_command = [
        sys.executable,
        "-c",
        PEER_EXPORT,
        str(package),
        str(work / "peer.onnx"),
        *map(str, shapes),
    ]
    peer_seconds = wall(peer_command, repeats)

    inputs = {
        n.attrs.name: np.random.default_rng(0).standard_normal(s).astype(np.float32)
        for n, s in zip(model.graph.inputs(), shapes, strict=True)
    }
    session = Session(work / "dlc.onnx", "cpu")
    ort_ms = latency(lambda: session.run(inputs))
    module = model.torch_module()
    tensors = [torch.from_numpy(a) for a in inputs.values()]
    with torch.no_grad():
        torch_ms = latency(lambda: module(*tensors))
    return {
        "dlc_compile_s": dlc_seconds,
        "torch_onnx_export_s": peer_seconds,
        "compile_speedup": peer_seconds / dlc_seconds,
        "ort_ms": ort_ms,
        "torch_eager_ms": torch_ms,
        "ort_speedup": torch_ms / ort_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for spec in SPECS:
            results[spec] = measure(spec, args.repeats, Path(directory))
    header = f"{'spec':<26} {'dlc compile':>12} {'torch.onnx':>11} {'ratio':>6}   {'ORT ms':>7} {'eager ms':>9} {'ratio':>6}"
    print(header)
    for spec, r in results.items():
        print(
            f"{spec:<26} {r['dlc_compile_s']:>11.2f}s {r['torch_onnx_export_s']:>10.2f}s {r['compile_speedup']:>5.1f}x"
            f"   {r['ort_ms']:>7.3f} {r['torch_eager_ms']:>9.3f} {r['ort_speedup']:>5.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
