"""Scaling benchmark: `dlc validate`, `dlc summary` and `dlc compile` against model depth.

Each command runs as a fresh process on generated MLP specs of 1,000, 10,000 and 20,000
layers (`linear: 16` and `relu`, alternating), plus a 10,000-layer chain of residual
blocks written as one `repeat`. Sizes alternate within each round, so machine load
spreads over all of them, and the median of the rounds is reported. Linear growth
means t(20,000) / t(1,000) <= 25 for each command and t(10,000) / t(1,000) <= 12 for
compile (the process start, about a second, is part of every figure).

    python benchmarks/scaling.py [--rounds 3] [--sizes 1000,10000,20000] [--json out.json]
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

COMMANDS = ("validate", "summary", "compile")


def mlp_spec(layers: int) -> str:
    """An MLP of `layers` layers, each written out (no repeat): the spec grows with depth."""
    lines = ["dlc: 1", f"name: mlp_{layers}", "inputs:", "  x: {shape: [N, 16], dtype: float32}", "layers:"]
    lines += ["  - linear: 16" if i % 2 == 0 else "  - relu" for i in range(layers)]
    return "\n".join(lines) + "\n"


def residual_chain_spec(blocks: int) -> str:
    """`blocks` residual blocks in a chain (a repeat): depth that no algorithm may recurse on."""
    return (
        f"dlc: 1\nname: residual_chain_{blocks}\ninputs:\n  x: {{shape: [N, 8], dtype: float32}}\n"
        f"layers:\n  - repeat: {blocks}\n    body:\n      - residual: [linear: 8, relu]\n"
    )


def run(command: str, spec: Path, work: Path) -> float:
    """Wall time of one fresh `dlc <command> spec` process, in seconds."""
    args = [sys.executable, "-m", "dlc.cli", command, str(spec)]
    if command == "compile":
        args += ["-o", str(work / f"{spec.stem}.onnx")]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,20000")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        specs = {}
        for size in sizes:
            specs[f"mlp {size}"] = work / f"mlp_{size}.yaml"
            specs[f"mlp {size}"].write_text(mlp_spec(size))
        specs["residual chain 10000"] = work / "residual_chain_10000.yaml"
        specs["residual chain 10000"].write_text(residual_chain_spec(10_000))
        times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in COMMANDS} for name in specs}
        for round_index in range(args.rounds):
            for command in COMMANDS:
                for name, spec in specs.items():  # sizes alternate within a round
                    if name.startswith("residual") and command != "compile":
                        continue
                    times[name][command].append(run(command, spec, work))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    medians = {name: {c: statistics.median(t) for c, t in by.items() if t} for name, by in times.items()}
    smallest, largest = f"mlp {sizes[0]}", f"mlp {sizes[-1]}"
    print(f"{'model':<22}" + "".join(f"{c:>12}" for c in COMMANDS))
    for name, by in medians.items():
        print(f"{name:<22}" + "".join(f"{by[c]:>11.2f}s" if c in by else f"{'':>12}" for c in COMMANDS))
    ratios = {}
    for name in medians:
        if name.startswith("mlp") and name != smallest:
            for command in COMMANDS:
                ratio = medians[name][command] / medians[smallest][command]
                ratios[f"{command} {name.split()[1]}/{sizes[0]}"] = ratio
    for key, ratio in ratios.items():
        print(f"t({key}) = {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": medians, "ratios": ratios}, indent=2) + "\n")
    print(f"largest/smallest layers: {int(largest.split()[1]) / sizes[0]:.0f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
