"""Hostile sizes (issues 12.3 and 18): the sibling table of `cases.py`, run by `test_sizes.py`
through the same harness (time and memory caps, exit code, located message, no file
changed by a failed command). One line per case.

Every spec here is small text that asks for something huge: a million repeats, terabytes
of parameters, a 2^63 dimension, a million stacked layers. dlc must refuse each before it
allocates, loops or writes (see `dlc.limits`), or, where the model is merely deep, build it.
"""

from __future__ import annotations

from pathlib import Path

from tests.hostile.harness import Case, Setup

V = ("validate", "{spec}")
C = ("compile", "{spec}", "-o", "out.onnx")
S = ("summary", "{spec}")
R = ("run", "{spec}", "--random-inputs")


def spec(
    layers: str, shape: str = "[N, 4]", dtype: str = "float32", extra: str = "", params: str = ""
) -> str:
    """A one-input spec with the given layer lines (each ``- block: ...``, newline-separated)."""
    body = "".join(f"  {line}\n" for line in layers.strip().split("\n"))
    head = f"params:\n  {params}\n" if params else ""
    return f"dlc: 1\nname: s\n{head}inputs:\n  x: {{shape: {shape}, dtype: {dtype}{extra}}}\nlayers:\n{body}"


def chain(layers: int, body: str) -> str:
    """`layers` copies of `body` (one layer) in a repeat: a deep but legitimate model."""
    return spec(f"- repeat: {layers}\n  body:\n    - {body}", "[N, 8]")


def nested_residuals(depth: int) -> str:
    inner = "[linear: 8, relu]"
    for _ in range(depth):
        inner = f"[residual: {inner}]"
    return spec(f"- residual: {inner}", "[N, 8]")


def onnx_with_input(shape: list[int | str]) -> Setup:
    """A one-input Relu ONNX model whose input has `shape` (static dims as written)."""

    def make(path: Path) -> None:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "sizes",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
        path.write_bytes(model.SerializeToString())

    return make


def mlp(layers: int) -> str:
    """An MLP of `layers` layers written out one by one (the scaling benchmark's model)."""
    return spec("\n".join("- linear: 16" if i % 2 == 0 else "- relu" for i in range(layers)), "[N, 16]")


WIDE = spec("- linear: 1000000000", "[N, 4096]")  # 4.1e12 parameters, 16 TB
WIDTH = spec('- linear: "${width}"\n- linear: "${width}"', params="width: 16")
CONV = spec("- conv2d: {out: 8, kernel: 1000000, padding: 500000}", "[N, 3, 64, 64]")
LSTM = "- {block}: {{hidden: 8, layers: 1000000}}"

# fmt: off
SIZE_CASES: list[Case] = [
    # -- 12.3: counts and parameters -----------------------------------------------------------
    Case("size-repeat-1e6", V, 1, "--max-nodes", spec=spec("- linear: 4\n- repeat: 1000000\n  body: [relu]")),
    Case("size-repeat-1e6-compile", C, 1, "--max-nodes", spec=spec("- repeat: 1000000\n  body: [linear: 4]")),
    Case("size-repeat-expression-1e12", V, 1, "--max-nodes", spec=spec('- repeat: "${10**12}"\n  body: [relu]')),
    Case("size-repeat-body-too-big", V, 1, "--max-nodes", spec=spec("- repeat: 100000\n  body: [linear: 4, relu, linear: 4]")),
    Case("size-nested-repeats", V, 1, "--max-nodes", spec=spec("- repeat: 1000\n  body:\n    - repeat: 1000\n      body: [relu]")),
    Case("size-linear-1e9-compile", C, 1, "4.1e12 parameters (16.4 TB)", spec=WIDE),
    Case("size-linear-1e9-validate", V, 1, "--max-params", spec=WIDE),
    Case("size-linear-1e9-summary", S, 1, "--max-params", spec=WIDE),
    Case("size-linear-1e9-run", R, 1, "--max-params", spec=WIDE),
    Case("size-linear-1e9-torch", ("compile", "{spec}", "--target", "torch", "-o", "pkg"), 1, "--max-params", spec=WIDE),
    Case("size-max-params-raised", ("validate", "{spec}", "--max-params", "1e13"), 0, "ok", spec=WIDE),
    Case("size-max-params-lowered", ("validate", "{spec}", "--max-params", "10"), 1, "the limit is 10", spec=spec("- linear: 3")),
    Case("size-max-params-not-a-count", ("validate", "{spec}", "--max-params", "lots"), 2, "--max-params", spec=spec("- linear: 3")),
    Case("size-max-nodes-lowered", ("validate", "{spec}", "--max-nodes", "3"), 1, "the limit is 3", spec=spec("- linear: 3\n- relu")),
    Case("size-conv-kernel-1e6", C, 1, "--max-params", spec=CONV),
    Case("size-set-width-1e11", ("compile", "{spec}", "--set", "width=100000000000", "-o", "out.onnx"), 1, "larger than the limit", spec=WIDTH),
    Case("size-set-width-power", ("compile", "{spec}", "--set", "width=10**11", "-o", "out.onnx"), 1, "10**11", spec=WIDTH),
    Case("size-set-width-1e9", ("compile", "{spec}", "--set", "width=1000000000", "-o", "out.onnx"), 1, "--max-params", spec=WIDTH),
    # -- 12.3 / 18.4: dimensions ----------------------------------------------------------------
    Case("size-input-dim-1e12", V, 1, "larger than the limit", spec=spec("- relu", "[N, 1000000000000]")),
    Case("size-input-dim-2e63", C, 1, "larger than the limit", spec=spec("- relu", "[N, 9223372036854775808]")),
    Case("size-input-dim-1e30", V, 1, "larger than the limit", spec=spec("- relu", "[N, 1000000000000000000000000000000]")),
    Case("size-input-dim-expression", V, 1, "larger than the limit", spec=spec("- relu", '[N, "${2**63}"]')),
    Case("size-inferred-dim-2e63", C, 1, "larger than the limit", spec=spec("- upsample: 1.0e+30", "[N, 2, 4, 4]")),
    Case("size-flatten-past-limit", C, 1, "larger than the limit", spec=spec("- flatten", "[N, 100000, 100000]")),
    Case("size-range-2e63", V, 1, "range", spec=spec("- embedding: {vocab: 10, dim: 4}", dtype="int64", extra=", range: [0, 9223372036854775808]")),
    Case("size-range-nan", V, 1, "finite", spec=spec("- embedding: {vocab: 10, dim: 4}", dtype="int64", extra=", range: [0, .nan]")),
    Case("size-range-1e30", V, 1, "range", spec=spec("- embedding: {vocab: 10, dim: 4}", dtype="int64", extra=", range: [0, 1.0e+30]")),
    Case("size-range-reversed", V, 1, "low < high", spec=spec("- embedding: {vocab: 10, dim: 4}", dtype="int64", extra=", range: [5, 1]")),
    Case("size-range-empty", V, 1, "low < high", spec=spec("- embedding: {vocab: 10, dim: 4}", dtype="int64", extra=", range: [3, 3]")),
    Case("size-range-int8", V, 1, "int8", spec=spec("- relu", dtype="int8", extra=", range: [0, 1000]")),
    Case("size-run-dim-power", ("run", "{spec}", "--random-inputs", "--dim", "N=10**11"), 2, "larger than the limit", spec=spec("- relu")),
    Case("size-run-dim-digits", ("run", "{spec}", "--random-inputs", "--dim", "N=100000000000"), 2, "larger than the limit", spec=spec("- relu")),
    Case("size-run-dim-too-much-memory", ("run", "{spec}", "--random-inputs", "--dim", "N=2000000000"), 1, "memory", spec=spec("- relu"), located=False),
    Case("size-run-static-dim-1e12", R, 1, "larger than the limit", spec=spec("- relu", "[1000000000000, 4]")),
    Case("size-run-onnx-static-dim-1e12", ("run", "big.onnx", "--random-inputs"), 1, "memory", files={"big.onnx": onnx_with_input([1000000000000, 4])}),
    Case("size-summary-dim-power", ("summary", "{spec}", "--dim", "N=999**999"), 2, "larger than the limit", spec=spec("- relu")),
    # -- 18.2: counts of built-in blocks ----------------------------------------------------------
    Case("size-lstm-layers-1e6", V, 1, "--max-nodes", spec=spec(LSTM.format(block="lstm"), "[T, N, 4]")),
    Case("size-gru-layers-1e6", V, 1, "--max-nodes", spec=spec(LSTM.format(block="gru"), "[T, N, 4]")),
    Case("size-rnn-layers-1e6", C, 1, "--max-nodes", spec=spec(LSTM.format(block="rnn"), "[T, N, 4]")),
    Case("size-highway-layers-1e6", V, 1, "--max-nodes", spec=spec("- highway: 1000000", "[N, 8]")),
    Case("size-highway-layers-2e40", V, 1, "larger than the limit", spec=spec("- highway: 1099511627776", "[N, 8]")),
    Case("size-lrn-size-2e31", C, 1, "larger than the limit", spec=spec("- local_response_norm: {size: 2147483648}", "[N, 4, 8, 8]")),
    Case("shape-symbolic-characters-char-cnn", ("run", "{spec}", "--random-inputs", "--dim", "N=2", "--dim", "T=3", "--dim", "C=6"), 0, "[2, 3, 8]", spec="dlc: 1\nname: s\ninputs:\n  c: {shape: [N, T, C], dtype: int64, range: [0, 9]}\nlayers:\n  - char_cnn: {vocab: 10, dim: 4, filters: [[1, 3], [2, 5]]}\n"),
    Case("size-params-in-block-layer-located", V, 1, "'big.linear1'", spec=spec("- transformer_encoder_layer: {heads: 8, ff: 2000000000}\n  id: big", "[N, T, 512]")),
    Case("size-fold-batch-norm-1e9-channels", ("compile", "{spec}", "-O2", "--print-ir"), 0, "would hold 112 GB", spec=spec("- conv2d: {out: 1000000000, kernel: 1}\n- batch_norm", "[1, 3, 8, 8]")),
    Case("size-lrn-even-size-2e31", C, 0, "wrote", spec=spec("- local_response_norm: {size: 2147483646}", "[N, 4, 8, 8]"), changes=("out.onnx",)),
    Case("size-heads-2e40", V, 1, "larger than the limit", spec=spec("- multi_head_attention: {heads: 1099511627776}", "[N, T, 8]")),
    Case("size-embedding-vocab-huge", C, 1, "--max-params", spec=spec("- embedding: {vocab: 2000000000, dim: 64}", dtype="int64")),
    Case("size-pool-kernel-huge", C, 1, "", spec=spec("- max_pool2d: {kernel: 2147483647}", "[N, 4, 8, 8]")),
    Case("size-negative-huge-padding", V, 1, "larger than the limit", spec=spec("- pad: {padding: -1099511627776}", "[N, 4, 8, 8]")),
    Case("size-lru-chunk-huge", C, 1, "chunk", spec=spec("- linear_recurrence: {state: 4, chunk: 100000}", "[T, N, 4]")),
    Case("size-locally-connected-huge-kernel", C, 1, "locally_connected2d", spec=spec("- locally_connected2d: {out: 1, kernel: 150}", "[N, 1, 300, 300]")),
    # -- 18.3: odd but valid-typed options -------------------------------------------------------
    Case("size-encoder-layer-rank-2", V, 1, "transformer_encoder_layer", spec=spec("- transformer_encoder_layer: {heads: 2}", "[N, 16]")),
    Case("size-encoder-layer-odd-heads", V, 1, "heads", spec=spec("- transformer_encoder_layer: {heads: 3}", "[N, T, 16]")),
    Case("size-sinusoidal-odd-dim", V, 1, "even", spec=spec("- sinusoidal_encoding", "[N, T, 7]")),
    Case("size-sinusoidal-huge-base", C, 0, "wrote", spec=spec("- sinusoidal_encoding: {base: 1.0e+300}", "[N, T, 8]"), changes=("out.onnx",)),
    Case("size-sinusoidal-huge-dim", V, 1, "", spec=spec("- sinusoidal_encoding", "[N, T, 2147483646]")),
    Case("size-lstmp-huge-hidden", V, 0, "ok", spec=spec("- lstmp: {hidden: 100000000, proj_size: 1}", "[T, N, 4]")),
    Case("size-lstmp-gates-past-dim-limit", C, 1, "larger than the limit", spec=spec("- lstmp: {hidden: 1000000000, proj_size: 4}", "[T, N, 4]")),
    Case("size-lstmp-too-many-params", C, 1, "--max-params", spec=spec("- lstmp: {hidden: 100000000, proj_size: 100}", "[T, N, 4]")),
    Case("size-upsample-inf", V, 1, "finite", spec=spec("- upsample: .inf", "[N, 2, 4, 4]")),
    # -- 12.3: deep chains are models, not attacks ------------------------------------------------
    # validate and summary were quadratic in the layers (43.6 s of CPU at 20,000 layers, past
    # the harness's CPU cap); linear, they take about 7 s
    Case("depth-validate-mlp-20000", V, 0, "ok (20000 layers", spec=mlp(20_000)),
    Case("depth-summary-mlp-20000", ("summary", "{spec}", "--json"), 0, '"params": 2720000', spec=mlp(20_000)),
    Case("depth-repeat-chain-10000-validate", V, 0, "720,000 parameters", spec=chain(10_000, "residual: [linear: 8, relu]")),
    Case("depth-residual-chain-2000", C, 0, "wrote", spec=chain(2000, "residual: [linear: 8, relu]"), changes=("out.onnx",)),
    Case("depth-repeat-chain-2000-torch", ("compile", "{spec}", "--target", "torch", "-o", "pkg"), 0, "wrote", spec=chain(2000, "linear: 8"), changes=("pkg", "pkg/model.py", "pkg/weights.safetensors")),
    Case("depth-residual-chain-2000-summary", S, 0, "total", spec=chain(2000, "residual: [linear: 8, relu]")),
    Case("depth-strided-chain-symbolic", C, 0, "wrote", spec=spec("- repeat: 40\n  body: [conv1d: {out: 4, kernel: 3, stride: 2, padding: 1}]", "[N, 4, T]"), changes=("out.onnx",)),
    Case("depth-strided-chain-too-deep", V, 1, "floor divisions", spec=spec("- repeat: 2000\n  body: [conv1d: {out: 4, kernel: 3, stride: 2, padding: 1}]", "[N, 4, T]")),
    Case("depth-nested-residuals-40", C, 0, "wrote", spec=nested_residuals(40), changes=("out.onnx",)),
    Case("depth-nested-residuals-100", V, 1, "nest", spec=nested_residuals(100)),
]
# fmt: on
