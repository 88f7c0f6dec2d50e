"""Does emitting ONNX Runtime's FusedConv pay? The zoo at -O2 with and without the
`fuse-conv-activation` pass, in ONNX Runtime on the CPU with its default (full) graph
optimizations, as users run it. ONNX Runtime fuses conv + activation itself when a session
starts, so the question is whether handing it FusedConv (and conv + add + activation) up
front is any faster.

Both models of a spec are loaded once and run alternately, call by call, so that load on a
shared machine hits both alike; the figures are the median and the minimum of each, and the
ratio plain / fused (> 1: FusedConv is faster). "same kernels" says whether the graphs ONNX
Runtime runs after its own optimizations hold the same nodes (type, domain, attributes),
which settles the question without timing noise.

    python benchmarks/fused_conv.py [--calls 40] [--ort-level all|extended|basic] [--json F] [spec ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# Specs and sizes: the full published input where one call takes well under a second here.
SPECS = {
    "specs/cnn/lenet5.yaml": {},
    "specs/cnn/alexnet.yaml": {},
    "specs/cnn/vgg16_bn.yaml": {"image": 112},
    "specs/cnn/resnet18.yaml": {},
    "specs/cnn/resnet50.yaml": {},
    "specs/cnn/googlenet.yaml": {},
    "specs/cnn/inception_v1.yaml": {},
    "specs/cnn/unet.yaml": {"image": 188},
    "specs/cnn/wavenet.yaml": {},
    "specs/cnn/text_cnn.yaml": {},
}
SYMBOL_SIZES = {"N": 1, "T": 1000}
ORT_LEVELS = ("basic", "extended", "all")


def ort_level(name: str):
    import onnxruntime

    return {
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[name]


def kernels(path: Path) -> list[tuple]:
    """The nodes of an optimized ONNX file, as comparable tuples (auto_pad NOTSET, which ONNX
    Runtime writes on the nodes it fuses itself, is the default and left out)."""
    import onnx

    nodes = []
    for node in onnx.load(str(path)).graph.node:
        attributes = sorted(
            (a.name, str(onnx.helper.get_attribute_value(a)))
            for a in node.attribute
            if not (a.name == "auto_pad" and onnx.helper.get_attribute_value(a) == b"NOTSET")
        )
        nodes.append((node.op_type, node.domain, tuple(attributes)))
    return sorted(nodes)


def sessions(spec: str, overrides: dict, level: str, work: Path) -> tuple[list, int, bool]:
    """ONNX Runtime sessions for -O2 without and with fuse-conv-activation, how many FusedConv
    nodes the second model holds, and whether ONNX Runtime optimizes both to the same nodes."""
    import onnxruntime

    import dlc
    from dlc.passes.manager import build_pipeline
    from dlc.registry import default_registry

    everything = [p.name for p in build_pipeline(default_registry(), 2)]
    if "fuse-conv-activation" not in everything:
        everything.append("fuse-conv-activation")
    plain = [name for name in everything if name != "fuse-conv-activation"]
    result, fused_nodes, optimized = [], 0, []
    for index, passes in enumerate((plain, everything)):
        model = dlc.compile(REPO / spec, passes=passes, overrides=overrides).onnx_model()
        fused_nodes = sum(node.op_type == "FusedConv" for node in model.graph.node)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = ort_level(level)
        options.optimized_model_filepath = str(work / f"optimized{index}.onnx")
        options.log_severity_level = 3
        result.append(
            onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        )
        optimized.append(kernels(work / f"optimized{index}.onnx"))
    return result, fused_nodes, optimized[0] == optimized[1]


def feeds(session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for info in session.get_inputs():
        shape = [SYMBOL_SIZES.get(d, 1) if isinstance(d, str) else d for d in info.shape]
        if "int" in info.type:
            arrays[info.name] = rng.integers(0, 1000, size=shape).astype(np.int64)
        else:
            arrays[info.name] = rng.standard_normal(shape).astype(np.float32)
    return arrays


def measure(spec: str, overrides: dict, calls: int, level: str, work: Path) -> dict[str, float]:
    (plain, fused), fused_nodes, same = sessions(spec, overrides, level, work)
    inputs = feeds(plain)
    expected, actual = plain.run(None, inputs)[0], fused.run(None, inputs)[0]
    error = float(np.abs(expected - actual).max() / max(1.0, np.abs(expected).max()))
    for _ in range(3):
        plain.run(None, inputs)
        fused.run(None, inputs)
    times: dict[str, list[float]] = {"plain": [], "fused": []}
    for _ in range(calls):
        for name, session in (("plain", plain), ("fused", fused)):
            start = time.perf_counter()
            session.run(None, inputs)
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    fastest = {k: min(v) * 1e3 for k, v in times.items()}
    return {
        "fused_conv_nodes": fused_nodes,
        "same_kernels": same,
        "plain_ms": median["plain"],
        "fused_ms": median["fused"],
        "speedup_median": median["plain"] / median["fused"],
        "speedup_min": fastest["plain"] / fastest["fused"],
        "max_relative_error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", help="specs to measure (default: the zoo)")
    parser.add_argument("--calls", type=int, default=40, help="calls of each model, alternating")
    parser.add_argument(
        "--ort-level", choices=ORT_LEVELS, default="all", help="ONNX Runtime's graph optimizations"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    chosen = {spec: SPECS.get(spec, {}) for spec in args.specs} if args.specs else SPECS
    print(f"ONNX Runtime graph optimizations: {args.ort_level}")
    print(
        f"{'spec':<30} {'FusedConv':>9} {'same kernels':>12} {'plain ms':>9} {'fused ms':>9}"
        f" {'median':>7} {'min':>7} {'error':>8}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for spec, overrides in chosen.items():
            r = results[spec] = measure(spec, overrides, args.calls, args.ort_level, Path(directory))
            print(
                f"{spec:<30} {r['fused_conv_nodes']:>9} {'yes' if r['same_kernels'] else 'no':>12}"
                f" {r['plain_ms']:>9.3f} {r['fused_ms']:>9.3f} {r['speedup_median']:>6.3f}x"
                f" {r['speedup_min']:>6.3f}x {r['max_relative_error']:>8.1e}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
