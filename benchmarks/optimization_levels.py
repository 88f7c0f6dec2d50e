"""-O0 against -O2: the optimizer's speed-up in ONNX Runtime (CPU) and in the ejected
PyTorch model, per spec, measured in one run.

Runs alternate between the two levels in blocks (a warm-up call, then timed ones for 0.1 s)
and each level's median is taken, so slow drifts of the machine affect both alike. ONNX Runtime runs with its own graph optimizations
on, as users run it. Outputs of the two levels are compared (max error relative to scale).

    python benchmarks/optimization_levels.py            # bench specs and the CNN zoo
    python benchmarks/optimization_levels.py specs/bench/long_conv1d.yaml --repeats 10

Run `dlc tune` first on the machine you measure: -O2's algorithm choice uses it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import dlc
from dlc.runtime import Session
from dlc.testing import max_relative_error

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = [
    "specs/bench/long_conv1d.yaml",
    "specs/bench/large_kernel_dw.yaml",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "specs/cnn").glob("*.yaml")),
]
DIMS = {"T": 16000}  # WaveNet's sequence length; text_cnn gets T=50 below


def inputs_for(model, dims: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for node in model.graph.inputs():
        shape = [d if isinstance(d, int) else dims.get(str(d), 1) for d in node.output.type.shape]
        value_range = node.attrs.value_range
        if node.output.type.dtype.is_float:
            arrays[node.attrs.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            high = int(value_range[1]) if value_range else 10
            arrays[node.attrs.name] = rng.integers(0, high, shape).astype(node.output.type.dtype.numpy)
    return arrays


def alternate(runs: dict[str, callable], rounds: int, block_seconds: float = 0.1) -> dict[str, float]:
    """Median milliseconds of each callable: in every round each one runs a block of calls
    (a warm-up call, then timed ones for about `block_seconds`, at least three), so slow
    drifts of the machine affect all alike while every timed call finds the caches as
    repeated inference leaves them, not as the other candidate left them (that costs a
    memory-heavy FFT plan up to 1.5x). Small models get many calls per block."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            calls = max(3, int(block_seconds / max(time.perf_counter() - start, 1e-6)))
            for _ in range(calls):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def measure(spec: str, repeats: int) -> dict[str, float]:
    dims = {"T": 50} if "text_cnn" in spec else DIMS
    models = {level: dlc.compile(REPO / spec, opt_level=level) for level in (0, 2)}
    feeds = inputs_for(models[0], dims)
    sessions = {level: Session(m.onnx_model(), "cpu") for level, m in models.items()}
    outputs = {level: s.run(feeds) for level, s in sessions.items()}
    error = max(max_relative_error(outputs[0][k], outputs[2][k]) for k in outputs[0])
    ort = alternate({f"O{level}": (lambda s=s: s.run(feeds)) for level, s in sessions.items()}, repeats)
    modules = {level: m.torch_module() for level, m in models.items()}
    tensors = [torch.from_numpy(feeds[n.attrs.name]) for n in models[0].graph.inputs()]
    with torch.no_grad():
        eager = alternate({f"O{level}": (lambda m=m: m(*tensors)) for level, m in modules.items()}, repeats)
    fired = sorted({r.name for r in models[2].pass_records if r.modified} - {"dead-code-elimination"})
    return {
        "ort_O0_ms": ort["O0"],
        "ort_O2_ms": ort["O2"],
        "ort_speedup": ort["O0"] / ort["O2"],
        "torch_O0_ms": eager["O0"],
        "torch_O2_ms": eager["O2"],
        "torch_speedup": eager["O0"] / eager["O2"],
        "max_error": error,
        "passes": fired,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timed blocks per level")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {}
    print(
        f"{'spec':<34} {'ORT -O0':>10} {'ORT -O2':>10} {'ratio':>6}   {'torch -O0':>10} {'torch -O2':>10} "
        f"{'ratio':>6}  {'error':>8}  passes that fired"
    )
    for spec in args.specs:
        r = measure(spec, args.repeats)
        results[spec] = r
        print(
            f"{spec:<34} {r['ort_O0_ms']:>8.2f}ms {r['ort_O2_ms']:>8.2f}ms {r['ort_speedup']:>5.2f}x   "
            f"{r['torch_O0_ms']:>8.2f}ms {r['torch_O2_ms']:>8.2f}ms {r['torch_speedup']:>5.2f}x  "
            f"{r['max_error']:8.1e}  {', '.join(r['passes']) or '-'}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
