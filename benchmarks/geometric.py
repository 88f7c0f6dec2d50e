"""Graph benchmark: dlc's ONNX models of GCN and GAT in ONNX Runtime against PyTorch
Geometric in eager mode, and against `torch.onnx.export` of the same PyG models.

Every figure is taken in one run of this script; the comparisons are ratios from that run.
Both sides get the same weights (the PyG model's state_dict loaded into the dlc spec) and
the same thread count (`--threads`, default 2: torch.set_num_threads and ONNX Runtime's
intra-op threads). Latencies are medians over interleaved rounds (each candidate once per
round), so background load hits all of them alike.

Graphs: Cora-sized (2,708 nodes, 10,556 random edges, 1,433 features, the zoo specs as
they are) and a random graph of 100,000 nodes and 1,000,000 edges with 128 features
(1,433 features would make x alone 573 MB).

For each PyG model, `torch.onnx.export` is tried with the TorchScript exporter
(`dynamo=False`) and with `dynamo=True`, with V and E dynamic: does it export, does its
output agree with PyG's (max relative error), and how fast does ONNX Runtime run it.

    python benchmarks/geometric.py [--rounds 5] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GRAPHS = {"cora": (2708, 10_556, 1433), "large": (100_000, 1_000_000, 128)}


def pyg_model(kind: str, features: int):
    import torch
    from torch_geometric.nn import GATConv, GCNConv

    class TwoLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "gcn":
                self.conv1, self.conv2, self.act = GCNConv(features, 16), GCNConv(16, 7), torch.relu
            else:
                self.conv1 = GATConv(features, 8, heads=8)
                self.conv2 = GATConv(64, 7, heads=1, concat=False)
                self.act = torch.nn.functional.elu

        def forward(self, x, edge_index):
            return self.conv2(self.act(self.conv1(x, edge_index)), edge_index)

    torch.manual_seed(0)
    return TwoLayer().eval()


def graph(nodes: int, edges: int, features: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((nodes, features)).astype(np.float32),
        "edge_index": rng.integers(0, nodes, (2, edges)).astype(np.int64),
    }


def ort_session(source: bytes | str, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Spinning worker threads keep a core busy after each run and slow the torch run that
    # follows in the interleaved rounds (PyG's Cora GCN: 680 ms measured so, 50-150 ms alone).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    return float(np.abs(expected - actual).max() / max(1.0, np.abs(expected).max()))


def dlc_session(kind: str, model, features: int, threads: int, work: Path):
    from safetensors.torch import save_file

    import dlc

    weights = work / f"{kind}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    spec = REPO / "specs" / "geometric" / f"{kind}_cora.yaml"
    compiled = dlc.compile(spec, weights=weights, overrides={"features": features})
    return ort_session(compiled.onnx_model().SerializeToString(), threads)


def exported_session(model, inputs: dict[str, np.ndarray], dynamo: bool, threads: int, work: Path):
    """(session or None, export seconds, failure text)."""
    import torch

    path = work / f"export_{'dynamo' if dynamo else 'script'}.onnx"
    args = tuple(torch.from_numpy(a) for a in inputs.values())
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                nodes, edges = torch.export.Dim("V", min=2), torch.export.Dim("E", min=2)
                torch.onnx.export(
                    model,
                    args,
                    str(path),
                    dynamo=True,
                    dynamic_shapes=({0: nodes}, {1: edges}),
                    input_names=["x", "edge_index"],
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    model,
                    args,
                    str(path),
                    dynamo=False,
                    input_names=["x", "edge_index"],
                    dynamic_axes={"x": {0: "V"}, "edge_index": {1: "E"}},
                    opset_version=18,
                )
        seconds = time.perf_counter() - start
        return ort_session(str(path), threads), seconds, ""
    except Exception as error:  # the failure is the finding
        return (
            None,
            time.perf_counter() - start,
            f"{type(error).__name__}: {str(error).splitlines()[0][:160]}",
        )


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms of each candidate, every candidate once per round (after one warm-up)."""
    for run in candidates.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(kind: str, size: str, rounds: int, threads: int, work: Path) -> dict:
    import torch

    nodes, edges, features = GRAPHS[size]
    model = pyg_model(kind, features)
    inputs = graph(nodes, edges, features)
    tensors = tuple(torch.from_numpy(a) for a in inputs.values())
    with torch.inference_mode():
        expected = model(*tensors).numpy()
    ours = dlc_session(kind, model, features, threads, work)
    row: dict = {"model": kind, "graph": size, "nodes": nodes, "edges": edges, "features": features}
    row["dlc_error"] = relative_error(expected, ours.run(None, inputs)[0])

    def eager() -> object:
        with torch.inference_mode():
            return model(*tensors)

    candidates: dict[str, Callable[[], object]] = {
        "pyg_eager": eager,
        "dlc_ort": lambda: ours.run(None, inputs),
    }
    for name, dynamo in (("export_script", False), ("export_dynamo", True)):
        session, seconds, failure = exported_session(model, inputs, dynamo, threads, work)
        row[f"{name}_s"] = round(seconds, 2)
        if session is None:
            row[f"{name}_failure"] = failure
            continue
        try:
            row[f"{name}_error"] = relative_error(expected, session.run(None, inputs)[0])
        except Exception as error:  # exported, but does not run
            row[f"{name}_failure"] = f"runs: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
            continue
        candidates[f"{name}_ort"] = lambda session=session: session.run(None, inputs)
    latencies = interleaved(candidates, rounds)
    row.update({f"{name}_ms": round(ms, 2) for name, ms in latencies.items()})
    row["speedup_vs_pyg"] = round(latencies["pyg_eager"] / latencies["dlc_ort"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for size in GRAPHS:
            for kind in ("gcn", "gat"):
                row = measure(kind, size, args.rounds, args.threads, Path(directory))
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
