"""Recurrent benchmark: inference latency in ONNX Runtime (CPU) against the ejected module
in torch eager mode, for the Zaremba medium LSTM language model
(specs/recurrent/lstm_lm.yaml, 19.8M parameters; batch 1 and 20, 35 and 200 steps) and the
deep LRU classifier (specs/recurrent/lru.yaml, 1.06M parameters, four linear_recurrence
layers; batch 1 and 8 at 1024 steps, batch 1 at 4096).

Both get the same weights and inputs (random tokens, states and pixels) and run with their
default thread counts, or both with `--threads`. Each row comes from one run in which the
runtimes take turns in short blocks; its ratio is the median over neighbouring blocks (see
`latencies`).

    python benchmarks/recurrent_latency.py [--seconds 4] [--threads N] [--models lstm_lm,lru]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (batch, steps) per spec under specs/recurrent
MODELS = {
    "lstm_lm": [(1, 35), (20, 35), (1, 200), (20, 200)],
    "lru": [(1, 1024), (8, 1024), (1, 4096)],
}


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
    from dlc.runtime import Session, random_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="time per runtime and shape")
    parser.add_argument("--threads", type=int, help="threads for both runtimes (default: theirs)")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS)
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models.split(","):
            model = dlc.compile(REPO / "specs/recurrent" / f"{name}.yaml")
            module = model.torch_module()
            path = Path(directory) / f"{name}.onnx"
            model.save(path)
            session = Session(path, "cpu", threads=args.threads)
            for batch, steps in MODELS[name]:
                # Token ids within the vocabulary, floats (states, pixels) from N(0, 1).
                inputs = random_inputs(session, {"N": batch, "T": steps})
                tensors = [torch.from_numpy(a) for a in inputs.values()]
                with torch.no_grad():
                    figures = latencies(
                        {
                            "ort": lambda session=session, inputs=inputs: session.run(inputs),
                            "torch_eager": lambda module=module, tensors=tensors: module(*tensors),
                        },
                        args.seconds,
                    )
                results.append({"model": name, "batch": batch, "steps": steps, **figures})
    providers = ", ".join(session.providers)
    print(
        f"ONNX Runtime: {providers}, {args.threads or 'default'} thread(s); torch threads: {torch.get_num_threads()}"
    )
    print(
        f"{'model':<8} {'batch':>5} {'steps':>5} {'ORT ms':>9} {'eager ms':>9} {'eager / ORT':>12} {'blocks':>7}"
    )
    for r in results:
        print(
            f"{r['model']:<8} {r['batch']:>5} {r['steps']:>5} {r['ort_ms']:>9.2f} {r['torch_eager_ms']:>9.2f}"
            f" {r['torch_eager_ratio']:>11.2f}x {r['blocks']:>7}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
