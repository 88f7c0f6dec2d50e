"""Does fusing sibling convs (one conv and a split) pay in ONNX Runtime, and does the
`fuse-sibling-convs` pass choose right? Each case is compiled at -O2 without the pass, with
the fusion forced on every sibling group, and as the pass decides; the first two run in ONNX
Runtime (CPU, default session options) in one run, calls alternating.

Cases: GoogLeNet and Inception v1 at 224x224 (the inception modules' 1x1 reductions), and
single sibling groups (C_in, size, C_out of each sibling), each sibling followed by a relu
and a 3x3 conv, concatenated.

    python benchmarks/sibling_convs.py [--calls 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GROUPS = [
    (192, 28, (64, 96, 16)),
    (480, 14, (192, 96, 16)),
    (832, 7, (384, 192, 48)),
    (32, 4, (8,) * 6),
    (8, 4, (4,) * 8),
]


def group_spec(channels: int, size: int, outs: tuple[int, ...]):
    from dlc.spec.loader import load_spec

    text = f"dlc: 1\nname: siblings\ninputs: {{x: {{shape: [N, {channels}, {size}, {size}]}}}}\nlayers:\n"
    for index, out in enumerate(outs):
        text += f"  - conv2d: {{out: {out}, kernel: 1}}\n    in: x\n    id: reduce{index}\n  - relu\n"
        text += f"  - conv2d: {{out: 32, kernel: 3, padding: 1}}\n    id: next{index}\n"
    text += f"  - concat:\n    in: [{', '.join(f'next{i}' for i in range(len(outs)))}]\n"
    return load_spec("siblings.yaml", text=text)


def variants(spec) -> dict[str, object]:
    """The -O2 graph without sibling fusion, with it forced everywhere, and as the pass chose."""
    import dlc
    from dlc.passes.manager import PassContext, build_pipeline
    from dlc.passes.rewrite import RewritePass
    from dlc.plugins.cnn.passes.conv_rewriting import LayerWeights
    from dlc.plugins.cnn.passes.horizontal_fusion import FuseSiblingConvs
    from dlc.registry import default_registry

    class Forced(FuseSiblingConvs):
        def check(self, graph, match):  # no cost check
            return None

    names = [p.name for p in build_pipeline(default_registry(), 2)]
    plain = dlc.compile(spec, passes=[n for n in names if n != "fuse-sibling-convs"])
    chosen = dlc.compile(spec, passes=names)
    forced = dlc.compile(spec, passes=[n for n in names if n != "fuse-sibling-convs"])
    context = PassContext(forced.registry, forced.seed)
    forced_pass = RewritePass("forced", context, [Forced(LayerWeights(context), context)])
    forced.graph = forced_pass.run(forced.graph).graph
    fired = sum(
        int(note.split(": fired ")[1].removesuffix("x"))
        for record in chosen.pass_records
        for note in record.notes
        if note.startswith("fuse-sibling-convs: fired")
    )
    return {
        "plain": plain,
        "forced": forced,
        "forced_groups": forced_pass.fired["fuse-sibling-convs"],
        "fired": fired,
    }


def timings(models: dict, calls: int) -> dict[str, float]:
    import onnxruntime

    sessions = {}
    for name in ("plain", "forced"):
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        sessions[name] = onnxruntime.InferenceSession(
            models[name].onnx_model().SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    info = sessions["plain"].get_inputs()[0]
    shape = [1 if isinstance(d, str) else d for d in info.shape]
    feeds = {info.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(5):
        for session in sessions.values():
            session.run(None, feeds)
    for _ in range(calls):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls of each model, alternating")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    cases = {"googlenet (224x224)": REPO / "specs/cnn/googlenet.yaml"}
    cases["inception_v1 (224x224)"] = REPO / "specs/cnn/inception_v1.yaml"
    for channels, size, outs in GROUPS:
        cases[f"{channels} -> {'+'.join(map(str, outs))} on {size}x{size}"] = group_spec(channels, size, outs)
    print(f"{'case':<34} {'groups':>6} {'plain ms':>9} {'fused ms':>9} {'speed-up':>8}  pass fuses  right?")
    results = {}
    for label, spec in cases.items():
        models = variants(spec)
        times = timings(models, args.calls)
        speedup = times["plain"] / times["forced"]
        fuses = models["fired"] > 0
        results[label] = {**times, "speedup": speedup, "pass_fuses": fuses, "groups": models["forced_groups"]}
        right = "yes" if fuses == (speedup > 1.0) else "no"
        print(
            f"{label:<34} {models['forced_groups']:>6} {times['plain']:>9.3f} {times['forced']:>9.3f}"
            f" {speedup:>7.2f}x  {'yes' if fuses else 'no':>10}  {right:>6}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
