"""Recurrent benchmark: inference latency of the Zaremba medium LSTM language model
(specs/recurrent/lstm_lm.yaml, 19.8M parameters) in ONNX Runtime (CPU) against the
ejected module in torch eager mode, at batch 1 and 20 and 35 and 200 steps.

Both get the same weights and inputs (tokens, zero initial states) and run with their
default thread counts, or both with `--threads`. Each row comes from one run in which the runtimes take turns in
short blocks; its ratio is the median over neighbouring blocks (see `latencies`).

    python benchmarks/recurrent_latency.py [--seconds 4] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "specs/recurrent/lstm_lm.yaml"
SHAPES = [(1, 35), (20, 35), (1, 200), (20, 200)]  # (batch, steps)


def latencies(runs: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Median latency in ms of each callable (`<name>_ms`), and for each but the first the
    median ratio of its blocks to the first one's neighbouring blocks (`<name>_ratio`).

    The callables take turns in blocks of about 0.3 s with a pause between blocks (ONNX
    Runtime's threads spin for a while after a run, and a call right after one would
    measure that contention too). On a machine shared with other jobs the load changes
    from second to second; two neighbouring blocks saw about the same load, so the median
    of their ratios is steadier than the ratio of the overall medians."""
    block_sizes = {}
    for name, run in runs.items():
        for _ in range(3):  # the first calls build kernels (oneDNN primitives, ORT plans)
            run()
        start = time.perf_counter()
        run()
        block_sizes[name] = max(1, round(0.3 / (time.perf_counter() - start)))
    times: dict[str, list[float]] = {name: [] for name in runs}
    block_medians: dict[str, list[float]] = {name: [] for name in runs}
    while min(sum(t) for t in times.values()) < seconds or min(map(len, block_medians.values())) < 5:
        for name, run in runs.items():
            time.sleep(0.2)
            block = []
            for _ in range(block_sizes[name]):
                start = time.perf_counter()
                run()
                block.append(time.perf_counter() - start)
            times[name] += block
            block_medians[name].append(statistics.median(block))
    first, *others = runs
    figures = {f"{name}_ms": statistics.median(t) * 1e3 for name, t in times.items()}
    for name in others:
        ratios = [b / a for a, b in zip(block_medians[first], block_medians[name], strict=True)]
        figures[f"{name}_ratio"] = statistics.median(ratios)
    return figures | {"blocks": len(block_medians[first])}


def main() -> None:
    import torch

    import dlc
    from dlc.runtime import Session

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="time per runtime and shape")
    parser.add_argument("--threads", type=int, help="threads for both runtimes (default: theirs)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = dlc.compile(SPEC)
    module = model.torch_module()
    results = []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lstm_lm.onnx"
        model.save(path)
        session = Session(path, "cpu", threads=args.threads)
        for batch, steps in SHAPES:
            rng = np.random.default_rng(0)
            inputs = {
                "tokens": rng.integers(0, 10000, size=(steps, batch)).astype(np.int64),
                "h0": np.zeros((2, batch, 650), np.float32),
                "c0": np.zeros((2, batch, 650), np.float32),
            }
            tensors = [torch.from_numpy(a) for a in inputs.values()]
            with torch.no_grad():
                figures = latencies(
                    {
                        "ort": lambda inputs=inputs: session.run(inputs),
                        "torch_eager": lambda tensors=tensors: module(*tensors),
                    },
                    args.seconds,
                )
            results.append({"batch": batch, "steps": steps, **figures})
    providers = ", ".join(session.providers)
    print(f"lstm_lm (ONNX Runtime: {providers}; torch threads: {torch.get_num_threads()})")
    print(f"{'batch':>5} {'steps':>5} {'ORT ms':>9} {'eager ms':>9} {'eager / ORT':>12} {'blocks':>7}")
    for r in results:
        print(
            f"{r['batch']:>5} {r['steps']:>5} {r['ort_ms']:>9.2f} {r['torch_eager_ms']:>9.2f}"
            f" {r['torch_eager_ratio']:>11.2f}x {r['blocks']:>7}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
