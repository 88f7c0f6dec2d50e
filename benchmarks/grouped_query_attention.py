"""Grouped-query attention in ONNX Runtime: dlc's two lowerings against the alternatives,
as ratios (to the standard lowering) taken in one run.

- standard: `--portable` `scaled_dot_product_attention` with `kv_heads` (each group of query
  heads folded into the query length, no copies of keys or values);
- repeat: keys and values repeated to every query head first (HF's ``repeat_kv``, written
  as Reshape + Expand + Reshape), then the standard multi-head lowering;
- repeat+mha: the same repeat, then ONNX Runtime's ``MultiHeadAttention`` kernel;
- dlc -O2: what dlc emits for ONNX Runtime: the ``GroupQueryAttention`` contrib kernel
  (com.microsoft), by the `use-group-query-attention` pass.

Causal self-attention on projected queries, keys and values [1, S, heads * 64]; one
intra-op thread; the candidates run in interleaved rounds (each once per round) so
background load hits them alike; medians of per-run CPU time.

    python benchmarks/grouped_query_attention.py [--length 256] [--heads 16] [--kv-heads 4] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import textwrap
import time

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper

import dlc
from dlc.spec.loader import load_spec

HEAD_DIM = 64


def dlc_model(heads: int, kv_heads: int, portable: bool = False) -> onnx.ModelProto:
    spec = f"""
    dlc: 1
    name: gqa
    inputs:
      q: {{shape: [N, S, {heads * HEAD_DIM}]}}
      k: {{shape: [N, S, {kv_heads * HEAD_DIM}]}}
      v: {{shape: [N, S, {kv_heads * HEAD_DIM}]}}
    layers:
      - scaled_dot_product_attention: {{heads: {heads}, kv_heads: {kv_heads}, causal: true}}
        in: [q, k, v]
    """
    return dlc.compile(load_spec("gqa.yaml", text=textwrap.dedent(spec)), portable=portable).onnx_model()


def repeat_model(heads: int, kv_heads: int, portable: bool = True) -> onnx.ModelProto:
    """Keys and values repeated per query head, then dlc's multi-head attention."""
    model = dlc_model(heads, heads, portable)
    graph = model.graph
    group = heads // kv_heads
    repeated = []
    for name in ("k", "v"):
        nodes = [
            helper.make_node("Reshape", [name, f"{name}_split"], [f"{name}_heads"]),  # [N, S, kv, 1, d]
            helper.make_node("Expand", [f"{name}_heads", "group_shape"], [f"{name}_expanded"]),
            helper.make_node("Reshape", [f"{name}_expanded", "merged"], [f"{name}_repeated"]),
        ]
        repeated += nodes
        graph.initializer.append(
            helper.make_tensor(f"{name}_split", TensorProto.INT64, [5], [0, 0, kv_heads, 1, HEAD_DIM])
        )
    graph.initializer.append(helper.make_tensor("group_shape", TensorProto.INT64, [5], [1, 1, 1, group, 1]))
    graph.initializer.append(helper.make_tensor("merged", TensorProto.INT64, [3], [0, 0, heads * HEAD_DIM]))
    for node in graph.node:
        node.input[:] = [{"k": "k_repeated", "v": "v_repeated"}.get(i, i) for i in node.input]
    nodes = repeated + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    for value in graph.input:
        if value.name in ("k", "v"):
            value.type.tensor_type.shape.dim[2].dim_value = kv_heads * HEAD_DIM
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    models = {
        "standard": dlc_model(args.heads, args.kv_heads, portable=True),
        "repeat": repeat_model(args.heads, args.kv_heads),
        "repeat+mha": repeat_model(args.heads, args.kv_heads, portable=False),
        "dlc -O2": dlc_model(args.heads, args.kv_heads),
    }
    assert "GroupQueryAttention" in {n.op_type for n in models["dlc -O2"].graph.node}
    sessions = {
        name: onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        for name, model in models.items()
    }
    rng = np.random.default_rng(0)
    feeds = {
        name: rng.standard_normal((1, args.length, width * HEAD_DIM)).astype(np.float32)
        for name, width in (("q", args.heads), ("k", args.kv_heads), ("v", args.kv_heads))
    }
    outputs = {name: session.run(None, feeds)[0] for name, session in sessions.items()}
    errors = {name: float(np.abs(out - outputs["standard"]).max()) for name, out in outputs.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            start = time.process_time()
            session.run(None, feeds)
            times[name].append((time.process_time() - start) * 1000)
    base = statistics.median(times["standard"])
    print(f"S={args.length} heads={args.heads} kv_heads={args.kv_heads} head_dim={HEAD_DIM}, 1 thread")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"{name:10s} {median:8.2f} ms  x{median / base:.2f} of standard  "
            f"max |diff| vs standard {errors[name]:.1e}"
        )


if __name__ == "__main__":
    main()
