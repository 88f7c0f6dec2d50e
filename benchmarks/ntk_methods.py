"""NTK benchmark: dlc's two blocked methods against the full Jacobian of `torch.func.jacrev`.

For `specs/mlp.yaml` (235,146 parameters, 10 outputs) over N random inputs, it times, in
interleaved rounds (every candidate once per round, so background load hits all alike):

- `jacobian`: Jacobian blocks by vmapped vjps, contracted in float64 (dlc's default);
- `products`: NTK-vector products, a vjp then a jvp per block;
- `jacrev`: the full Jacobian at once, then J J^T (the reference: N x O x P floats).

and prints the median seconds, the ratios to `jacrev`, the largest Jacobian block each holds
and the largest difference from the reference (relative to the kernel's scale).

    python benchmarks/ntk_methods.py [--samples 32] [--chunk 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dlc.analysis.model_function import as_input_tensors, compile_for_analysis, flat_output, model_function
from dlc.analysis.ntk import empirical_ntk

SPEC = Path(__file__).resolve().parent.parent / "specs" / "mlp.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    function = model_function(compile_for_analysis(SPEC))
    data = np.random.default_rng(0).standard_normal((args.samples, 784)).astype(np.float32)
    x = as_input_tensors(function, data, "inputs")

    def jacrev() -> np.ndarray:
        rows = torch.func.jacrev(lambda p: flat_output(function, p, x))(function.parameters)
        jacobian = torch.cat([r.reshape(r.shape[0] * r.shape[1], -1) for r in rows.values()], 1).double()
        n, o = args.samples, jacobian.shape[0] // args.samples
        return (jacobian @ jacobian.T).reshape(n, o, n, o).permute(0, 2, 1, 3).numpy()

    candidates = {
        "jacobian": lambda: empirical_ntk(function, x, mode="full", chunk=args.chunk),
        "products": lambda: empirical_ntk(function, x, mode="full", chunk=args.chunk, method="products"),
        "jacrev": jacrev,
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    reference = results["jacrev"]
    scale = np.abs(reference).max()
    outputs, parameters = reference.shape[2], function.parameter_count
    chunk = min(args.chunk, args.samples)
    block = {
        "jacobian": chunk if chunk == args.samples else 2 * chunk,
        "products": chunk,
        "jacrev": args.samples,
    }
    base = statistics.median(times["jacrev"])
    print(
        f"{SPEC.name}: {parameters:,} parameters, {outputs} outputs, N = {args.samples}, chunk {args.chunk}"
    )
    print(f"{'method':10} {'median s':>9} {'/ jacrev':>9} {'Jacobian held':>14} {'max diff':>10}")
    for name in candidates:
        median = statistics.median(times[name])
        held = block[name] * outputs * parameters * 4 / 2**20
        difference = np.abs(results[name] - reference).max() / scale
        print(f"{name:10} {median:9.3f} {median / base:9.2f} {held:11.0f} MB {difference:10.2e}")


if __name__ == "__main__":
    main()
