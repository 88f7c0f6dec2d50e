"""Attention benchmark: dlc against torch.onnx.export of HF transformers' models.

Every figure is taken in one run of this script, and the comparisons are ratios from that
run:

- time to an ONNX file on disk, each as a fresh process, alternating: ``dlc compile
  specs/attention/<spec>.yaml`` against a script that builds HF ``BertModel(BertConfig())``
  (or ``GPT2LMHeadModel``) and calls ``torch.onnx.export(..., dynamo=True)`` with a dynamic
  sequence length;
- ONNX Runtime CPU latency at batch 1, sequence 128: dlc's model (for ONNX Runtime, and
  --portable) against the exported one and against the HF model in torch eager mode,
  measured in interleaved rounds (every candidate once per round), so background load
  hits all of them alike; plus CPU time per run on one thread that does not spin, a
  cross-check that background load hardly moves;
- achieved GFLOP/s (2 x MACs / latency) against the peak measured with a large matmul
  (ONNX Runtime, 2048^3 FP32) run in the same rounds.

    python benchmarks/attention.py [--repeats 3] [--rounds 100] [--json out.json]

Needs the `bench` extra (transformers, onnxscript).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SEQUENCE = 128

PEER_EXPORT = """
import sys, torch, transformers
kind, path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if kind == "bert":
    model = transformers.BertModel(transformers.BertConfig()).eval()
    ids = torch.randint(0, 30522, (1, 128))
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))
else:  # use_cache=False: with the default cache the exporter fails (DynamicCache output)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(use_cache=False)).eval()
    example = (torch.randint(0, 50257, (1, 128)),)
length = torch.export.Dim("T", min=2, max=512)
dynamic = tuple({1: length} for _ in example)
torch.onnx.export(model, example, path, dynamo=True, dynamic_shapes=dynamic, verbose=False)
"""

MODELS = {
    "bert": {"spec": "specs/attention/bert_base.yaml", "label": "BERT-base"},
    "gpt2": {"spec": "specs/attention/gpt2_small.yaml", "label": "GPT-2 small"},
}


def timed_process(command: list[str], output: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a fresh process that writes `output`; the file is
    removed afterwards."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*command, str(output)], check=True, capture_output=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for path in output.parent.glob(output.name + "*"):
        path.unlink()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compile_times(kind: str, repeats: int, work: Path) -> dict[str, float]:
    """dlc and the torch.onnx.export script, alternating, so background load hits both."""
    dlc_command = [sys.executable, "-m", "dlc.cli", "compile", MODELS[kind]["spec"], "-o"]
    peer_command = [sys.executable, "-c", PEER_EXPORT, kind]
    runs: dict[str, list[tuple[float, float]]] = {"dlc": [], "peer": []}
    for index in range(repeats):
        runs["dlc"].append(timed_process(dlc_command, work / f"{kind}_compile_{index}.onnx"))
        runs["peer"].append(timed_process(peer_command, work / f"{kind}_peer_{index}.onnx"))
    wall = {name: statistics.median(w for w, _ in r) for name, r in runs.items()}
    cpu = {name: statistics.median(c for _, c in r) for name, r in runs.items()}
    return {
        "dlc_compile_s": wall["dlc"],
        "torch_onnx_export_s": wall["peer"],
        "compile_speedup": wall["peer"] / wall["dlc"],
        "dlc_compile_cpu_s": cpu["dlc"],
        "torch_onnx_export_cpu_s": cpu["peer"],
    }


def inputs_for(kind: str) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, 30000, (1, SEQUENCE)).astype(np.int64)
    if kind == "gpt2":
        return {"input_ids": ids}
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def ort_session(path: Path | bytes, single_thread: bool = False):
    """An ONNX Runtime CPU session with default settings, or (the CPU-time cross-check) one
    thread that sleeps instead of spinning between runs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if single_thread:
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, clock=time.perf_counter) -> dict:
    """Median and 10th percentile of each candidate's time in ms, every candidate once per round."""
    for run in candidates.values():
        for _ in range(5):
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = clock()
            run()
            times[name].append((clock() - start) * 1e3)
    return {
        name: {"median_ms": statistics.median(t), "p10_ms": float(np.percentile(t, 10))}
        for name, t in times.items()
    }


PEAK_SIZE = 2048


def matmul_model() -> bytes:
    """A 2048 x 2048 x 2048 FP32 MatMul: the peak probe, run like the models."""
    import onnx
    from onnx import helper

    n = PEAK_SIZE
    b = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info("a", 1, [n, n])],
        [helper.make_tensor_value_info("c", 1, [n, n])],
        [onnx.numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return model.SerializeToString()


def latency(kind: str, work: Path, rounds: int, peer_path: Path | None) -> dict:
    import torch
    import transformers

    import dlc

    spec = REPO / MODELS[kind]["spec"]
    fused, portable = work / f"{kind}_dlc.onnx", work / f"{kind}_portable.onnx"
    dlc.compile(spec).save(fused)
    dlc.compile(spec, portable=True).save(portable)
    macs = dlc.compile(spec, opt_level=0).summary({"T": SEQUENCE}).macs
    feeds = inputs_for(kind)
    paths = {"dlc": fused, "dlc --portable": portable}
    if peer_path is not None:
        paths["torch.onnx.export"] = peer_path

    def runner(session) -> Callable[[], object]:
        names = [i.name for i in session.get_inputs()]
        return lambda: session.run(None, {name: feeds[name] for name in names})

    runs = {name: runner(ort_session(path)) for name, path in paths.items()}
    torch.manual_seed(0)
    if kind == "bert":
        eager = transformers.BertModel(transformers.BertConfig()).eval()
    else:
        eager = transformers.GPT2LMHeadModel(transformers.GPT2Config(use_cache=False)).eval()
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

    def run_eager() -> None:
        with torch.no_grad():
            eager(**tensors)

    runs["torch eager"] = run_eager
    matmul = ort_session(matmul_model())
    probe = np.random.default_rng(1).standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(np.float32)
    runs["peak probe"] = lambda: matmul.run(None, {"a": probe})
    timed = interleaved(runs, rounds)
    peak = timed.pop("peak probe")
    single = {name: runner(ort_session(path, single_thread=True)) for name, path in paths.items()}
    cpu = interleaved(single, max(rounds // 3, 10), clock=time.process_time)
    for name, figures in timed.items():
        figures["gflops"] = 2 * macs / (figures["median_ms"] * 1e-3) / 1e9
        if name in cpu:
            figures["cpu_ms_1_thread"] = cpu[name]["median_ms"]
    peak_gflops = 2 * PEAK_SIZE**3 / (peak["median_ms"] * 1e-3) / 1e9
    return {"macs": macs, "peak_gflops": peak_gflops, "candidates": timed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per compile timing")
    parser.add_argument("--rounds", type=int, default=100, help="interleaved latency rounds")
    parser.add_argument("--models", default="bert,gpt2")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results: dict = {"load_average_before": os.getloadavg()[0]}
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        for kind in models:
            peer = work / f"peer_{kind}.onnx"
            subprocess.run(
                [sys.executable, "-c", PEER_EXPORT, kind, str(peer)], check=True, capture_output=True
            )
            results[kind] = {
                **compile_times(kind, args.repeats, work),
                **latency(kind, work, args.rounds, peer),
            }
    results["load_average_after"] = os.getloadavg()[0]
    for kind in models:
        r = results[kind]
        print(
            f"\n{MODELS[kind]['label']}: time to an ONNX file (fresh process, median of {args.repeats}): "
            f"dlc {r['dlc_compile_s']:.2f} s, torch.onnx.export {r['torch_onnx_export_s']:.2f} s: "
            f"{r['compile_speedup']:.1f}x (CPU time {r['dlc_compile_cpu_s']:.2f} s vs "
            f"{r['torch_onnx_export_cpu_s']:.2f} s)"
        )
        print(
            f"  ONNX Runtime CPU, batch 1, seq {SEQUENCE}, {r['macs'] / 1e9:.2f} GMACs; "
            f"peak (FP32 MatMul {PEAK_SIZE}^3, same rounds) {r['peak_gflops']:.0f} GFLOP/s"
        )
        print(
            f"  {'':<20} {'median ms':>10} {'p10 ms':>8} {'GFLOP/s':>8} {'% peak':>7} {'1-thread CPU ms':>16}"
        )
        for name, f in r["candidates"].items():
            cpu = f"{f['cpu_ms_1_thread']:.1f}" if "cpu_ms_1_thread" in f else "-"
            share = 100 * f["gflops"] / r["peak_gflops"]
            print(
                f"  {name:<20} {f['median_ms']:>10.1f} {f['p10_ms']:>8.1f} {f['gflops']:>8.0f} {share:>6.0f}% {cpu:>16}"
            )
    print(
        f"\nload average: {results['load_average_before']:.2f} before, {results['load_average_after']:.2f} after"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
