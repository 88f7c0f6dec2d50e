"""`scan` layers: loops that carry state. One ONNX file (symbolic length) against the
ejected torch `for` loop and against references written here, through the API and the
CLI; the body inside passes, the printer and the summary; located errors for misuse.

Tolerance: 1e-5 relative to the output scale (measured at most 2e-7, float32)."""

from __future__ import annotations

import copy
import importlib.util
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dlc
from dlc.errors import DlcError, EmitError
from dlc.spec.loader import load_spec
from dlc.spec.lower import InternalPluginError
from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.spec.test_fuzz_specs import SCALARS, _get, _paths

TOLERANCE = 1e-5
LENGTHS = (1, 7, 64)

ELMAN = """\
dlc: 1
name: elman
inputs:
  x: {shape: [N, T, 4]}
  h0: {shape: [N, 8]}
layers:
  - scan:
      over: {x_t: x}
      carry: {h: h0}
      body:
        - concat: {axis: 1}
          in: [x_t, h]
        - linear: 8
          id: cell
        - tanh:
          id: act
      next: {h: act}
      outputs: {y: act}
    id: rnn
outputs: {y: rnn.y, h: rnn.h}
"""

SAMPLER = """\
dlc: 1
name: sampler
inputs:
  noise: {shape: [N, 8]}
params:
  steps: 10
layers:
  - scan:
      steps: "${steps}"
      reverse: true         # t = steps - 1, ..., 0
      index: t              # the step number, float32 [1]
      carry: {x: noise}
      body:
        - scale: "${1 / steps}"
          in: t
        - linear: 16
          id: time
        - linear: 16
          in: x
          id: hidden
        - add:
          in: [hidden, time]
        - silu
        - linear: 8
          id: eps
        - scale: 0.1
          id: step
        - sub:
          in: [x, step]
          id: denoised
      next: {x: denoised}
      outputs: {trajectory: denoised}
    id: sample
outputs: {image: sample.x, trajectory: sample.trajectory}
"""

NESTED = """\
dlc: 1
name: nested
inputs:
  x: {shape: [T, N, 3, 4]}
  h0: {shape: [N, 5]}
blocks:
  cell:
    params: {size: int}
    inputs: [x, h]
    body:
      - concat: {axis: 1}
        in: [x, h]
      - linear: "${size}"
      - tanh
layers:
  - scan:
      over: {row: x}
      axis: 0
      reverse: true
      carry: {h: h0, total: h0}
      body:
        - scan:
            over: {item: row}
            carry: {g: h}
            body:
              - cell: {size: 5}
                in: [item, g]
                id: step
            next: {g: step}
            outputs: {ys: step}
          id: inner
        - add:
          in: [total, inner.g]
          id: acc
      next: {h: inner.g, total: acc}
      outputs: {rows: inner.ys}
    id: outer
outputs: {h: outer.h, total: outer.total, rows: outer.rows}
"""


def compile_text(text: str, **options) -> dlc.CompiledModel:
    return dlc.compile(load_spec("test.yaml", text=textwrap.dedent(text)), **options)


def torch_outputs(module: torch.nn.Module, model: dlc.CompiledModel, feeds: dict[str, np.ndarray]) -> dict:
    names = [n.attrs.name for n in model.graph.inputs()]
    with torch.no_grad():
        result = module(*(torch.from_numpy(feeds[n]) for n in names))
    result = result if isinstance(result, tuple) else (result,)
    return {name: r.numpy() for name, r in zip(model.graph.outputs, result, strict=True)}


def assert_close(expected: dict, actual: dict, what: str) -> None:
    for name, value in expected.items():
        error = max_relative_error(value, actual[name])
        assert error <= TOLERANCE, f"{what} {name}: {error:.2e}"


def elman_reference(weights: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray) -> tuple:
    ys = []
    for t in range(x.shape[1]):
        h = np.tanh(
            np.concatenate([x[:, t], h], axis=1) @ weights["rnn.cell.weight"].T + weights["rnn.cell.bias"]
        )
        ys.append(h)
    return np.stack(ys, axis=1), h


def test_one_onnx_file_runs_every_length_like_the_torch_loop_and_the_reference(tmp_path: Path) -> None:
    model = compile_text(ELMAN)
    model.save(tmp_path / "elman.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "elman.onnx"), providers=["CPUExecutionProvider"])
    module = model.torch_module()
    rng = np.random.default_rng(0)
    for steps in LENGTHS:
        feeds = {
            "x": rng.standard_normal((3, steps, 4)).astype(np.float32),
            "h0": rng.standard_normal((3, 8)).astype(np.float32),
        }
        onnx_out = dict(zip(("y", "h"), session.run(["y", "h"], feeds), strict=True))
        assert onnx_out["y"].shape == (3, steps, 8)
        assert_close(onnx_out, torch_outputs(module, model, feeds), f"T={steps} ONNX vs torch")
        y, h = elman_reference(model.weights(), feeds["x"], feeds["h0"])
        assert_close({"y": y, "h": h}, onnx_out, f"T={steps} reference vs ONNX")


def test_the_body_weights_are_one_set_shared_by_every_step(tmp_path: Path) -> None:
    model = compile_text(ELMAN)
    assert sorted(model.weights()) == ["rnn.cell.bias", "rnn.cell.weight"]
    assert sorted(model.torch_module().state_dict()) == ["rnn.cell.bias", "rnn.cell.weight"]
    proto = model.onnx_model()
    assert sorted(i.name for i in proto.graph.initializer) == ["rnn.cell.bias", "rnn.cell.weight"]
    assert [n.op_type for n in proto.graph.node].count("Scan") == 1  # one loop, one body
    assert {d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim} >= {"N", "T"}
    onnx.checker.check_model(proto, full_check=True)
    assert "for t in range(x.size(1)):" in model.torch_source()
    assert "self.rnn.cell(" in model.torch_source()  # an nn.Linear called every step


def test_through_the_cli_the_onnx_file_and_the_ejected_model_agree_at_every_length(tmp_path: Path) -> None:
    spec = tmp_path / "elman.yaml"
    spec.write_text(ELMAN)
    assert run_cli("compile", str(spec), "-o", str(tmp_path / "elman.onnx")).code == 0
    result = run_cli("compile", str(spec), "--target", "torch", "-o", str(tmp_path / "elman_torch"))
    assert result.code == 0, result.output
    loaded = importlib.util.spec_from_file_location("ejected_elman", tmp_path / "elman_torch" / "model.py")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    network = module.load_model()
    session = onnxruntime.InferenceSession(str(tmp_path / "elman.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for steps in LENGTHS:
        x = rng.standard_normal((2, steps, 4)).astype(np.float32)
        h0 = rng.standard_normal((2, 8)).astype(np.float32)
        y, h = session.run(["y", "h"], {"x": x, "h0": h0})
        with torch.no_grad():
            ty, th = network(torch.from_numpy(x), torch.from_numpy(h0))
        assert max_relative_error(y, ty.numpy()) <= TOLERANCE
        assert max_relative_error(h, th.numpy()) <= TOLERANCE
    summary = run_cli("summary", str(spec), "--dim", "T=7")
    assert summary.code == 0 and "scan" in summary.stdout


def test_a_sampling_loop_with_steps_and_the_step_index_matches_a_torch_sampler() -> None:
    model = compile_text(SAMPLER)
    noise = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    onnx_out = model.run({"noise": noise}, "cpu")
    assert onnx_out["trajectory"].shape == (3, 10, 8)
    assert_close(onnx_out, torch_outputs(model.torch_module(), model, {"noise": noise}), "ONNX vs torch")
    w = {k: torch.from_numpy(np.array(v)) for k, v in model.weights().items()}
    x, trajectory = torch.from_numpy(noise), [None] * 10
    for t in reversed(range(10)):  # a DDIM-like update with a time-conditioned denoiser
        time = torch.tensor([t / 10]) @ w["sample.time.weight"].T + w["sample.time.bias"]
        hidden = torch.nn.functional.silu(x @ w["sample.hidden.weight"].T + w["sample.hidden.bias"] + time)
        x = x - 0.1 * (hidden @ w["sample.eps.weight"].T + w["sample.eps.bias"])
        trajectory[t] = x
    expected = {"image": x.numpy(), "trajectory": torch.stack(trajectory, dim=1).numpy()}
    assert_close(expected, onnx_out, "reference vs ONNX")
    assert np.array_equal(onnx_out["trajectory"][:, 0], onnx_out["image"])  # step 0 runs last


def test_nested_scans_with_a_template_body_several_carries_and_reverse() -> None:
    model = compile_text(NESTED, opt_level=2, verify=True)
    rng = np.random.default_rng(3)
    weight = model.weights()["outer.inner.step.linear_0.weight"]
    bias = model.weights()["outer.inner.step.linear_0.bias"]
    for steps in LENGTHS:
        feeds = {
            "x": rng.standard_normal((steps, 2, 3, 4)).astype(np.float32),
            "h0": rng.standard_normal((2, 5)).astype(np.float32),
        }
        onnx_out = model.run(feeds, "cpu")
        assert_close(onnx_out, torch_outputs(model.torch_module(), model, feeds), f"T={steps} ONNX vs torch")
        h, total, rows = feeds["h0"], feeds["h0"], [None] * steps
        for t in reversed(range(steps)):
            ys = []
            for i in range(3):
                h = np.tanh(np.concatenate([feeds["x"][t, :, i], h], axis=1) @ weight.T + bias)
                ys.append(h)
            total = total + h
            rows[t] = np.stack(ys, axis=1)
        assert_close({"h": h, "total": total, "rows": np.stack(rows)}, onnx_out, f"T={steps} reference")


def test_cleanup_passes_run_inside_bodies_and_the_printer_shows_them() -> None:
    text = ELMAN.replace("        - tanh:\n", "        - dropout: 0.5\n        - identity\n        - tanh:\n")
    plain = compile_text(text, opt_level=0, verify=True)
    cleaned = compile_text(text, opt_level=1, verify=True)
    (loop,) = [n for n in cleaned.graph if n.op == "scan"]
    assert [n.op for n in loop.attrs.body if n.op != "input"] == ["concat", "linear", "tanh"]
    (original,) = [n for n in plain.graph if n.op == "scan"]
    assert "dropout" in [n.op for n in original.attrs.body]  # bodies are copied, never shared edits
    printed = str(cleaned.graph)
    assert "  body rnn(%h: float32[N, 8], %x_t: float32[N, 4]" in printed
    assert "      return h=%rnn.act, y=%rnn.act" in printed
    feeds = {"x": np.ones((2, 7, 4), np.float32), "h0": np.zeros((2, 8), np.float32)}
    assert_close(plain.run(feeds, "cpu"), cleaned.run(feeds, "cpu"), "-O0 vs -O1")


def test_summary_counts_body_parameters_once_and_macs_every_step() -> None:
    summary = compile_text(ELMAN, opt_level=0).summary({"N": 1, "T": 7})
    assert summary.params == 8 * 12 + 8
    assert summary.macs == 7 * 8 * 12  # the body's linear, once per step
    rows = {row.name: row for row in summary.layers}
    assert (rows["rnn"].block, rows["rnn"].params, rows["rnn"].macs) == ("scan", 104, 672)
    assert rows["rnn.cell"].macs == 672


@dataclass(frozen=True)
class Bad:
    name: str
    scan: str  # the scan's options, under `- scan:`
    line: int
    column: int
    message: str
    path: str
    hint: str | None = None


HEADER = """\
dlc: 1
name: bad
inputs:
  x: {shape: [N, T, 16]}
  h0: {shape: [N, 8]}
layers:
  - id: rnn
    scan:
"""
BODY = "      body:\n        - linear: 8\n          id: cell\n"
BAD = [
    Bad(
        "unknown-carry-in-next",
        "      over: {x_t: x}\n      carry: {h: h0}\n" + BODY + "      next: {h: cell, g: cell}\n",
        14,
        23,
        "`next` names 'g', which is not a carried state",
        "layers[0].scan.next.g",
        "carried states: h",
    ),
    Bad(
        "next-shape-differs",
        "      over: {x_t: x}\n      carry: {h: h0}\n"
        + BODY.replace("linear: 8", "linear: 9")
        + "      next: {h: cell}\n",
        14,
        17,
        "the next value of 'h' is float32[N, 9], but the state is float32[N, 8]",
        "layers[0].scan.next.h",
    ),
    Bad(
        "missing-next",
        "      over: {x_t: x}\n      carry: {h: h0, c: h0}\n" + BODY + "      next: {h: cell}\n",
        14,
        7,
        "carried state 'c' has no next value",
        "layers[0].scan.next",
        "add `c: <body layer>` to `next`",
    ),
    Bad(
        "missing-body-output",
        "      over: {x_t: x}\n      carry: {h: h0}\n"
        + BODY
        + "      next: {h: cell}\n      outputs: {y: cel}\n",
        15,
        20,
        "unknown layer 'cel' in `outputs`",
        "layers[0].scan.outputs.y",
        "did you mean 'cell'?",
    ),
    Bad(
        "axis-out-of-range",
        "      over: {x_t: x}\n      axis: 3\n      carry: {h: h0}\n" + BODY + "      next: {h: cell}\n",
        10,
        13,
        "axis 3 is out of range for 'x_t' [N, T, 16] (rank 3)",
        "layers[0].scan.axis",
    ),
    Bad(
        "over-and-steps",
        "      over: {x_t: x}\n      steps: 3\n      carry: {h: h0}\n" + BODY + "      next: {h: cell}\n",
        10,
        7,
        "a scan takes `over` (sequences) or `steps` (a count), not both",
        "layers[0].scan.steps",
    ),
    Bad(
        "unknown-sequence",
        "      over: {x_t: xx}\n      carry: {h: h0}\n" + BODY + "      next: {h: cell}\n",
        9,
        19,
        "unknown layer 'xx' in `over`",
        "layers[0].scan.over.x_t",
        "did you mean 'x'?",
    ),
    Bad(
        "unknown-outer-name-in-body",
        "      over: {x_t: x}\n      carry: {h: h0}\n      body:\n        - add:\n          in: [x_t, memroy]\n"
        "        - linear: 8\n          id: cell\n      next: {h: cell}\n",
        13,
        21,
        "unknown layer 'memroy' in `in`",
        "layers[0].scan.body[0].in[1]",
    ),
    Bad(
        "misspelled-option",
        "      over: {x_t: x}\n      carry: {h: h0}\n" + BODY + "      nxt: {h: cell}\n",
        14,
        7,
        "unknown key 'nxt' for scan",
        "layers[0].scan.nxt",
        "did you mean 'next'?",
    ),
    Bad(
        "index-named-like-a-state",
        "      over: {x_t: x}\n      index: h\n      carry: {h: h0}\n" + BODY + "      next: {h: cell}\n",
        10,
        14,
        "`index` 'h' is also a carry name",
        "layers[0].scan.index",
    ),
    Bad(
        "output-named-like-a-carry",
        "      over: {x_t: x}\n      carry: {h: h0}\n"
        + BODY
        + "      next: {h: cell}\n      outputs: {h: cell}\n",
        15,
        17,
        "output 'h' has the name of a carried state",
        "layers[0].scan.outputs.h",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_misuse_is_a_located_error(case: Bad, tmp_path: Path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(HEADER + case.scan)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:{case.line}:{case.column}: error" in result.stderr, result.stderr
    assert case.message in result.stderr, result.stderr
    assert f"(at {case.path})" in result.stderr, result.stderr
    if case.hint:
        assert case.hint in result.stderr, result.stderr


def test_a_body_layer_may_tie_its_weight_to_a_layer_outside_the_loop() -> None:
    model = compile_text(
        """
        dlc: 1
        name: tied
        inputs:
          tokens: {shape: [N, T], dtype: int64, range: [0, 30]}
        layers:
          - embedding: {vocab: 30, dim: 8}
            id: embed
          - reduce_mean: [1]
            id: h0
          - scan:
              over: {e: embed}
              carry: {h: h0}
              body:
                - add:
                  in: [e, h]
                - tanh:
                  id: state
                - linear: {out: 30, bias: false, tie: embed}
                  id: logits
              next: {h: state}
              outputs: {logits: logits}
            id: lm
        outputs: [lm.logits]
        """
    )
    assert list(model.weights()) == [
        "embed.weight"
    ]  # one tensor: the embedding and every step's output layer
    tokens = np.random.default_rng(4).integers(0, 30, size=(2, 7)).astype(np.int64)
    onnx_out = model.run({"tokens": tokens}, "cpu")
    assert_close(onnx_out, torch_outputs(model.torch_module(), model, {"tokens": tokens}), "ONNX vs torch")


SCAN_KEYS = st.sampled_from(
    ["over", "carry", "next", "outputs", "steps", "axis", "index", "body", "in", "id", "scan"]
)


@st.composite
def scan_mutants(draw: st.DrawFn) -> str:
    spec = yaml.safe_load(draw(st.sampled_from([ELMAN, SAMPLER, NESTED])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(spec) if p]))
        parent, key = _get(spec, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "insert"]))
        if action == "replace":
            parent[key] = copy.deepcopy(draw(SCALARS))
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(SCAN_KEYS)] = parent.pop(key)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(SCAN_KEYS)] = copy.deepcopy(draw(SCALARS))
    return yaml.safe_dump(spec, sort_keys=False)


# Mutants hypothesis found that crashed lowering: a template with `outputs: []` (an
# IndexError; now the last layer, as a spec's empty `outputs`), and a scan over `''` (a zip
# of too few inputs; now a located error: a reference is never empty).
FOUND_MUTANTS = [
    NESTED.replace("      - tanh\nlayers:", "      - tanh\n    outputs: []\nlayers:"),
    ELMAN.replace("over: {x_t: x}", "over: {x_t: ''}"),
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_mutants())
@example(FOUND_MUTANTS[0])
@example(FOUND_MUTANTS[1])
def test_mutated_loops_compile_or_fail_with_located_errors(text: str) -> None:
    try:
        model = dlc.compile(dlc.load_spec("mutant.yaml", text=text))
        model.onnx_model()
        model.torch_source()
    except InternalPluginError as error:
        pytest.fail(f"internal error on a mutated spec:\n{text}\n{error}")
    except DlcError as error:
        assert error.diagnostics and all(d.message for d in error.diagnostics)
        assert error.location is not None and error.location.file == "mutant.yaml", error.render()


def test_found_mutants_give_the_outputs_or_the_error_a_user_expects() -> None:
    model = dlc.compile(dlc.load_spec("mutant.yaml", text=FOUND_MUTANTS[0]))
    assert model.onnx_model() is not None  # the template's empty `outputs`: its last layer
    with pytest.raises(DlcError) as raised:
        dlc.compile(dlc.load_spec("mutant.yaml", text=FOUND_MUTANTS[1]))
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.message == "invalid 'x_t': String should have at least 1 character (got '')"
    assert diagnostic.location.path == ("layers", 0, "scan", "over", "x_t")
    assert (diagnostic.location.line, diagnostic.location.column) == (8, 19)


def test_fusion_passes_leave_bodies_intact_at_every_level() -> None:
    text = """
    dlc: 1
    name: frames
    inputs: {video: {shape: [N, T, 3, 16]}}
    layers:
      - scan:
          over: {frame: video}
          body:
            - conv1d: {out: 8, kernel: 3, padding: 1, bias: false}
            - batch_norm
            - relu:
              id: features
          outputs: {features: features}
        id: per_frame
    """
    feeds = {"video": np.random.default_rng(5).standard_normal((2, 7, 3, 16)).astype(np.float32)}
    results = {}
    for level in (0, 1, 2):
        model = compile_text(text, opt_level=level, verify=True)
        (loop,) = [n for n in model.graph if n.op == "scan"]
        assert [n.op for n in loop.attrs.body if n.op != "input"] == ["conv", "batch_norm", "relu"]
        results[level] = model.run(feeds, "cpu")
        assert_close(
            results[level], torch_outputs(model.torch_module(), model, feeds), f"-O{level} ONNX vs torch"
        )
    assert_close(results[0], results[2], "-O0 vs -O2")


def test_the_step_index_counts_the_steps_of_a_scan_forwards_and_reversed() -> None:
    text = """
    dlc: 1
    name: ramp
    inputs: {x: {shape: [N, T, 3]}}
    layers:
      - slice: {axis: 1, start: 0, end: 1}
      - squeeze: 1
        id: first
      - scan:
          over: {x_t: x}
          index: t
          reverse: REVERSE
          carry: {last: first}
          body:
            - mul:
              in: [x_t, t]
              id: scaled
          next: {last: scaled}
          outputs: {y: scaled}
        id: ramp
    outputs: {y: ramp.y, last: ramp.last}
    """
    x = np.random.default_rng(6).standard_normal((2, 7, 3)).astype(np.float32)
    for reverse, last_step in (("false", 6), ("true", 0)):
        model = compile_text(text.replace("REVERSE", reverse))
        onnx_out = model.run({"x": x}, "cpu")
        np.testing.assert_allclose(
            onnx_out["y"], x * np.arange(7, dtype=np.float32)[None, :, None], rtol=1e-6
        )
        np.testing.assert_allclose(onnx_out["last"], x[:, last_step] * last_step, rtol=1e-6)
        assert_close(onnx_out, torch_outputs(model.torch_module(), model, {"x": x}), f"reverse={reverse}")


def test_torch_fx_cannot_trace_a_loop_over_a_sequence_and_says_so() -> None:
    with pytest.raises(EmitError, match="cannot trace the loop over a sequence in 'rnn'"):
        compile_text(ELMAN).graph_module()
    sampler = compile_text(SAMPLER)  # a `steps` loop unrolls
    noise = np.ones((2, 8), np.float32)
    with torch.no_grad():
        traced = sampler.graph_module()(torch.from_numpy(noise))
    assert max_relative_error(sampler.run({"noise": noise}, "cpu")["image"], traced[0].numpy()) <= TOLERANCE


def test_scans_compose_with_templates_and_repeats() -> None:
    text = """
    dlc: 1
    name: stacked
    inputs: {x: {shape: [N, T, 4]}}
    blocks:
      rnn_layer:
        params: {size: int}
        body:
          - reduce_mean: [1]
          - linear: "${size}"
            id: h0
          - scan:
              over: {x_t: input}
              carry: {h: h0}
              body:
                - concat: {axis: 1}
                  in: [x_t, h]
                - repeat: 2
                  body: [{linear: "${size}"}, tanh]
                  id: deep
              next: {h: deep}
              outputs: {y: deep}
            id: loop
        outputs: [loop.y]
    layers:
      - repeat: 2
        id: stack
        body:
          - rnn_layer: {size: 4}
    outputs: [stack]
    """
    model = compile_text(text)
    assert "stack.1.loop.deep.1.linear_0.weight" in model.weights() and len(model.weights()) == 12
    module = model.torch_module()
    rng = np.random.default_rng(7)
    for steps in LENGTHS:
        feeds = {"x": rng.standard_normal((2, steps, 4)).astype(np.float32)}
        assert_close(model.run(feeds, "cpu"), torch_outputs(module, model, feeds), f"T={steps} ONNX vs torch")


def test_share_and_if_work_on_loops_and_inside_their_bodies() -> None:
    text = """
    dlc: 1
    name: siamese_rnn
    inputs:
      a: {shape: [N, T, 4]}
      b: {shape: [N, T, 4]}
      h0: {shape: [N, 6]}
    params: {deep: false}
    layers:
      - scan:
          over: {x_t: a}
          carry: {h: h0}
          body:
            - concat: {axis: 1}
              in: [x_t, h]
            - linear: 6
              id: cell
            - linear: 6
              id: cell2
              if: "${deep}"
            - tanh:
              id: act
            - linear: 6
              in: act
              id: proj
            - linear: 6
              in: act
              share: proj
              id: proj2
          next: {h: act}
          outputs: {y: proj2}
        id: left
      - scan:
          over: {x_t: b}
          carry: {h: h0}
          body:
            - concat: {axis: 1}
              in: [x_t, h]
            - linear: 6
              id: cell
            - tanh:
              id: act
            - linear: 6
              in: act
              id: proj
          next: {h: act}
          outputs: {y: proj}
        share: left
        id: right
      - scan:
          over: {x_t: b}
          carry: {h: h0}
          body:
            - linear: 6
              id: cell
          next: {h: cell}
        if: "${deep}"
        id: skipped
    outputs: {l: left.y, r: right.y}
    """
    model = compile_text(text)
    assert list(model.weights()) == [
        "left.cell.weight",
        "left.cell.bias",
        "left.proj.weight",
        "left.proj.bias",
    ]
    x = np.random.default_rng(8).standard_normal((2, 7, 4)).astype(np.float32)
    h0 = np.zeros((2, 6), np.float32)
    onnx_out = model.run({"a": x, "b": x, "h0": h0}, "cpu")
    np.testing.assert_allclose(onnx_out["l"], onnx_out["r"], rtol=1e-6)  # one set of weights, one input
    torch_out = torch_outputs(model.torch_module(), model, {"a": x, "b": x, "h0": h0})
    assert_close(onnx_out, torch_out, "ONNX vs torch")
