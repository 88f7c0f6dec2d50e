"""Calibrate the convolution cost model on this machine (`dlc tune`).

Micro-benchmarks run in ONNX Runtime on the CPU: matrix products of several shapes (their
throughput gives the GEMM peak and the size at which efficiency halves), a dense and a
depthwise convolution (how far direct convs fall from the GEMM model), a large element-wise
add (memory bandwidth) and a chain of tiny ops (fixed per-op overhead). The fitted
constants are stored in the user's cache directory (`cost.cache_directory()`).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

import onnx
from onnx import helper, numpy_helper

from dlc.lazy_imports import numpy as np

from .cost import ConvShape, CostConstants, CostModel


def _session(nodes: list, inputs: list, outputs: list, initializers: list):
    import onnxruntime

    graph = helper.make_graph(nodes, "tune", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _seconds(session, feed: dict, budget: float) -> float:
    """Median time of one run, repeating within about `budget` seconds."""
    session.run(None, feed)
    start = time.perf_counter()
    session.run(None, feed)
    once = time.perf_counter() - start
    repeats = max(3, min(50, int(budget / max(once, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _info(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def _random(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def time_matmul(m: int, k: int, n: int, batch: int, budget: float) -> float:
    """`batch` separate [m, k] @ [k, n] products, each with its own weight (as the FFT
    path's per-frequency channel products): one shared weight would let ONNX Runtime run
    them as one [batch * m, k] product, hiding what small products cost."""
    weight = numpy_helper.from_array(_random(batch, k, n), "w")
    session = _session(
        [helper.make_node("MatMul", ["a", "w"], ["y"])],
        [_info("a", [batch, m, k])],
        [_info("y", [batch, m, n])],
        [weight],
    )
    return _seconds(session, {"a": _random(batch, m, k)}, budget)


def time_conv(shape: ConvShape, budget: float) -> float:
    c, o, g = shape.in_channels, shape.out_channels, shape.groups
    kernel = list(shape.kernel)
    pads = [k // 2 for k in kernel] * 2
    weight = numpy_helper.from_array(_random(o, c // g, *kernel), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=g, pads=pads)
    x_shape = [shape.batch, c, *shape.in_spatial]
    session = _session(
        [node], [_info("x", x_shape)], [_info("y", [shape.batch, o, *shape.out_spatial])], [weight]
    )
    return _seconds(session, {"x": _random(*x_shape)}, budget)


def time_add(elements: int, budget: float) -> float:
    session = _session(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [_info("a", [elements]), _info("b", [elements])],
        [_info("y", [elements])],
        [],
    )
    return _seconds(session, {"a": _random(elements), "b": _random(elements)}, budget)


def time_overhead(ops: int, budget: float) -> float:
    nodes = [helper.make_node("Neg", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"]) for i in range(ops)]
    session = _session(nodes, [_info("x", [4])], [_info(f"t{ops - 1}", [4])], [])
    return _seconds(session, {"x": _random(4)}, budget) / ops


def fit_gemm(samples: list[tuple[tuple[int, int, int], float]]) -> tuple[float, float]:
    """Peak MACs/s and the dim at which efficiency halves, fitted in log space."""
    best: tuple[float, float, float] | None = None
    for half in (0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64):
        model = CostConstants(gemm_half=half)
        logs = [math.log(rate / model.efficiency(*dims)) for dims, rate in samples]
        peak = math.exp(statistics.fmean(logs))
        error = sum((value - math.log(peak)) ** 2 for value in logs)
        if best is None or error < best[0]:
            best = (error, peak, half)
    assert best is not None
    return best[1], best[2]


def calibrate(quick: bool = False) -> str:
    budget = 0.05 if quick else 0.3
    gemms = [(64, 64, 64), (256, 256, 256), (8, 256, 256), (14, 128, 64), (2, 128, 128), (128, 128, 2048)]
    if not quick:
        gemms += [(512, 512, 512), (1024, 1024, 256), (32, 64, 4096), (4, 64, 64), (128, 256, 64)]
    samples = []
    for m, k, n in gemms:
        batch = max(1, (1 << 22) // (m * k * n))
        seconds = time_matmul(m, k, n, batch, budget)
        samples.append(((m, k, n), batch * m * k * n / seconds))
    peak, half = fit_gemm(samples)
    bandwidth = 3 * 4 * (1 << 22) / time_add(1 << 22, budget)
    overhead = time_overhead(64, budget)
    constants = CostConstants(
        gemm_peak=peak,
        gemm_half=half,
        bandwidth=bandwidth,
        overhead=overhead,
        source=f"dlc tune{' --quick' if quick else ''}",
    )
    # Depthwise throughput at the large kernels where FFT competes; 1-D runs far slower.
    rates = {}
    for field, depthwise in (
        ("depthwise_rate", ConvShape(1, 64, 64, (31, 31), (56, 56), (56, 56), groups=64)),
        ("depthwise_rate_1d", ConvShape(1, 64, 64, (255,), (4096,), (4096,), groups=64)),
    ):
        rates[field] = depthwise.macs / max(time_conv(depthwise, budget) - overhead, 1e-9)
    constants = replace(constants, **rates)
    dense = ConvShape(1, 64, 64, (3, 3), (56, 56), (56, 56))
    predicted = CostModel(constants).direct_conv(dense)
    measured = time_conv(dense, budget)
    constants = replace(constants, direct_factor=measured / predicted)
    path = CostModel(constants).save()
    return (
        f"  GEMM peak {peak / 1e9:.1f} GMAC/s, efficiency halves at dim {half:g}; depthwise conv "
        f"{constants.depthwise_rate / 1e9:.1f} GMAC/s (1-D {constants.depthwise_rate_1d / 1e9:.1f});\n"
        f"  dense conv x{constants.direct_factor:.2f} of the GEMM model;"
        f"  memory {bandwidth / 1e9:.1f} GB/s; {overhead * 1e6:.1f} us per op. Stored in {path}"
    )
