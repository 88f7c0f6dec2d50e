"""How to emit `linear_recurrence`: ONNX Runtime latency of one layer (H = P = 256, both
projections included) as a chunked parallel scan for several chunk lengths (`chunk: 1`
is a plain Hillis-Steele scan over every step), and of the alternative, the per-state
complex convolution with the impulse response on the FFT convolution path (`fft_conv`,
static T only; the convolution alone, without the projections).

    python benchmarks/linear_recurrence_scan.py [--threads 1] [--seconds 3]

One thread by default (the machine is shared). For each shape the variants take turns in
short blocks (`recurrent_latency.latencies`); each ratio is the median over neighbouring
blocks of that variant's latency to the default's (chunks of 32 steps).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

FEATURES = STATE = 256
SHAPES = [(1, 4096), (8, 1024)]  # (batch, steps)
CHUNKS = [32, 1, 8, 16, 64, 128]  # the default first: the others' ratios are to it

LAYER = """
dlc: 1
name: layer
inputs: {{x: {{shape: [N, T, {features}]}}}}
layers:
  - linear_recurrence: {{state: {state}, r_min: 0.9, r_max: 0.999, batch_first: true, chunk: {chunk}}}
"""

# The recurrence as a convolution: real and imaginary parts of the P states as 2P channels,
# one group of 2 -> 2 channels per state, a causal kernel as long as the sequence.
CONVOLUTION = """
dlc: 1
name: impulse_response
inputs: {{x: {{shape: [N, {channels}, {steps}]}}}}
layers:
  - conv1d: {{out: {channels}, kernel: {steps}, groups: {state}, padding: causal, bias: false}}
"""


def main() -> None:
    from recurrent_latency import latencies  # this folder is on sys.path when a script here runs

    import dlc
    from dlc.runtime import Session
    from dlc.spec.loader import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per variant and shape")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp())

    def runner(text: str, inputs: dict[str, np.ndarray], name: str) -> tuple:
        """A callable running the compiled model, and its convolution op (direct or FFT) if any."""
        model = dlc.compile(load_spec("bench.yaml", text=text))
        path = directory / f"{name}.onnx"
        model.save(path)
        session = Session(path, "cpu", threads=args.threads)
        convolutions = {n.op for n in model.graph.toposort()} & {"conv", "fft_conv"}
        return (lambda: session.run(inputs)), ", ".join(sorted(convolutions))

    rng = np.random.default_rng(0)
    results = []
    for batch, steps in SHAPES:
        x = {"x": rng.standard_normal((batch, steps, FEATURES)).astype(np.float32)}
        runs = {
            f"chunked scan, chunk {chunk}": runner(
                LAYER.format(features=FEATURES, state=STATE, chunk=chunk), x, str(chunk)
            )[0]
            for chunk in CHUNKS
        }
        signal = {"x": rng.standard_normal((batch, 2 * STATE, steps)).astype(np.float32)}
        convolution, op = runner(
            CONVOLUTION.format(channels=2 * STATE, steps=steps, state=STATE), signal, "conv"
        )
        runs[f"impulse-response convolution only ({op})"] = convolution
        results.append((batch, steps, runs.keys(), latencies(runs, args.seconds)))
    print(f"linear_recurrence, H = P = {FEATURES}, ONNX Runtime CPU, {args.threads} thread(s)")
    print(f"{'batch':>5} {'steps':>5}  {'emission':<46} {'ms':>8} {'/ chunk 32':>11}")
    for batch, steps, names, figures in results:
        for name in names:
            ratio = figures.get(f"{name}_ratio", 1.0)
            print(f"{batch:>5} {steps:>5}  {name:<46} {figures[f'{name}_ms']:>8.2f} {ratio:>10.2f}x")


if __name__ == "__main__":
    main()
