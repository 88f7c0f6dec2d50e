"""How well does the conv algorithm selection choose? A sweep over convolution shapes.

For every point, one run measures in ONNX Runtime (CPU, batch 1) the direct convolution and
the FFT plan the selector would use, then reports whether the selector's choice (made from
the cost model alone, before any timing) was the faster one, and its regret: the chosen
time over the faster time, minus one.

Shapes: 1-D with L 1k-64k and K 3-4095; 2-D with H 14-112 and K 3-31; channels 16-256;
dense and depthwise. Points whose direct convolution exceeds --max-gmacs are skipped (they
take minutes, and FFT wins them by far); so are points whose kernel spectrum would not fit.

    python benchmarks/conv_sweep.py [--quick] [--json out.json]

Run `dlc tune` first on the machine you measure: the selector uses its calibration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import dlc
from dlc.plugins.cnn.algorithm import ConvProblem, best_fft_plan, direct_seconds
from dlc.plugins.cnn.cost import CostModel
from dlc.runtime import Session
from dlc.spec.loader import load_spec


def spec_text(rank: int, channels: int, size: int, kernel: int, depthwise: bool) -> str:
    groups = ", groups: depthwise" if depthwise else ""
    if rank == 1:
        shape = f"[N, {channels}, {size}]"
        layer = f"conv1d: {{out: {channels}, kernel: {kernel}, padding: same{groups}}}"
    else:
        shape = f"[N, {channels}, {size}, {size}]"
        layer = f"conv2d: {{out: {channels}, kernel: {kernel}, padding: same{groups}}}"
    return f"dlc: 1\nname: sweep\ninputs: {{x: {{shape: {shape}}}}}\nlayers:\n  - {layer}\n    id: y\n"


def points(quick: bool) -> list[tuple[int, int, int, int, bool]]:
    channels = (16, 64, 256)
    one_d = [
        (1, c, n, k, dw)
        for c, n, k, dw in itertools.product(
            channels, (1024, 4096, 16384, 65536), (3, 15, 63, 255, 1023, 4095), (False, True)
        )
        if k <= n // 2
    ]
    two_d = [
        (2, c, h, k, dw)
        for c, h, k, dw in itertools.product(channels, (14, 28, 56, 112), (3, 7, 15, 31), (False, True))
    ]
    chosen = one_d + two_d
    return chosen[::3] if quick else chosen  # a stride of 3 mixes dense and depthwise points


def median_ms(session: Session, feed: dict, budget: float) -> float:
    session.run(feed)
    start = time.perf_counter()
    session.run(feed)
    once = time.perf_counter() - start
    times = []
    for _ in range(max(3, min(25, int(budget / max(once, 1e-6))))):
        start = time.perf_counter()
        session.run(feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every fourth point")
    parser.add_argument("--max-gmacs", type=float, default=25.0)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timing per measurement")
    parser.add_argument("--json")
    args = parser.parse_args()
    model = CostModel.load()
    print(f"cost model: {model.constants.source}", file=sys.stderr)
    rows = []
    for rank, channels, size, kernel, depthwise in points(args.quick):
        spec = load_spec("sweep.yaml", text=spec_text(rank, channels, size, kernel, depthwise))
        direct_model = dlc.compile(spec, pass_options={"conv_algo": "direct"})
        conv = next(n for n in direct_model.graph if n.op == "conv")
        problem = ConvProblem.from_node(conv)
        assert isinstance(problem, ConvProblem)
        if problem.conv_shape().macs > args.max_gmacs * 1e9 or best_fft_plan(problem, model) is None:
            continue
        predicted_direct = direct_seconds(problem, model)
        predicted_fft = best_fft_plan(problem, model)[1]
        choice = "fft" if predicted_fft < predicted_direct else "direct"
        fft_model = dlc.compile(spec, pass_options={"conv_algo": "fft"})
        shape = [1 if not isinstance(d, int) else d for d in direct_model.graph.inputs()[0].output.type.shape]
        feed = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        times = {
            "direct": median_ms(Session(direct_model.onnx_model(), "cpu"), feed, args.budget),
            "fft": median_ms(Session(fft_model.onnx_model(), "cpu"), feed, args.budget),
        }
        faster = min(times, key=times.get)
        row = {
            "rank": rank,
            "channels": channels,
            "size": size,
            "kernel": kernel,
            "depthwise": depthwise,
            "direct_ms": times["direct"],
            "fft_ms": times["fft"],
            "predicted_direct_ms": predicted_direct * 1e3,
            "predicted_fft_ms": predicted_fft * 1e3,
            "choice": choice,
            "faster": faster,
            "regret": times[choice] / times[faster] - 1,
        }
        rows.append(row)
        print(
            f"{rank}D C={channels:<3} {'L' if rank == 1 else 'H'}={size:<5} K={kernel:<4} "
            f"{'dw   ' if depthwise else 'dense'}  direct {times['direct']:9.2f} ms  fft {times['fft']:9.2f} ms  "
            f"choice {choice:<6} {'ok' if choice == faster else 'MISS'}  regret {row['regret']:6.1%}",
            flush=True,
        )
    right = sum(r["choice"] == r["faster"] for r in rows)
    regrets = [r["regret"] for r in rows]
    print(
        f"\n{len(rows)} points: the selector chose the faster algorithm in {right} ({right / len(rows):.1%}); "
        f"median regret {statistics.median(regrets):.1%}, mean {statistics.fmean(regrets):.1%}, "
        f"worst {max(regrets):.1%}; FFT faster in {sum(r['faster'] == 'fft' for r in rows)} points"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"cost_model": model.constants.source, "points": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
