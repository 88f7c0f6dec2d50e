"""Lowering specs to IR: naming, DAG wiring, templates, repeat, residual, expressions."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import dlc
from dlc.spec.loader import load_spec


def compile_text(text: str, **kwargs):
    spec = load_spec("test.yaml", text=textwrap.dedent(text), overrides=kwargs.pop("overrides", None))
    return dlc.compile(spec, **kwargs)


def param_names(model) -> list[str]:
    return [n.attrs.name for n in model.lowered.graph.parameters()]


def test_auto_names_count_per_block_and_ids_win() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers:
          - linear: 8
          - relu
          - linear: 8
          - linear: 2
            id: head
        """
    )
    assert param_names(model) == [
        "linear_0.weight",
        "linear_0.bias",
        "linear_1.weight",
        "linear_1.bias",
        "head.weight",
        "head.bias",
    ]
    assert list(model.graph.outputs) == ["head"]  # the last layer's id names the default output


def test_repeat_names_are_stable_and_single_layer_bodies_take_the_iteration_name() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers:
          - repeat: 2
            id: stack
            body: [{linear: 4}]
          - repeat: 2
            as: i
            id: pairs
            body:
              - linear: "${4 * (i + 1)}"
              - relu
        """
    )
    names = param_names(model)
    assert names[:4] == ["stack.0.weight", "stack.0.bias", "stack.1.weight", "stack.1.bias"]
    assert names[4:] == [
        "pairs.0.linear_0.weight",
        "pairs.0.linear_0.bias",
        "pairs.1.linear_0.weight",
        "pairs.1.linear_0.bias",
    ]
    assert model.graph.outputs["pairs"].type.shape[1] == 8  # loop variable reached the expression


def test_repeat_input_names_each_iterations_input_so_the_body_can_pair_it_with_other_layers() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}, memory: {shape: [N, 4]}}
        layers:
          - repeat: 3
            input: h
            id: stack
            in: x
            body:
              - add:
                in: [h, memory]
          - repeat: 2
            input: h
            id: pairs
            body:
              - linear: 4
                id: fc
              - add:
                in: [fc, h, memory]
        """
    )
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    memory = np.ones((2, 4), np.float32)
    outputs = model.run({"x": x, "memory": memory}, provider="cpu")
    assert param_names(model) == [f"pairs.{i}.fc.{p}" for i in range(2) for p in ("weight", "bias")]
    adds = [n for n in model.lowered.graph if n.op == "add"]
    assert [n.layer for n in adds] == ["stack.0", "stack.1", "stack.2", "pairs.0.add_0", "pairs.1.add_0"]
    assert adds[1].inputs[0] == adds[0].outputs[0]  # iteration 1 reads iteration 0's output as `h`
    assert outputs["pairs"].shape == (2, 4)


def test_repeat_input_must_be_a_name() -> None:
    with pytest.raises(dlc.DlcError, match="`input` takes a name for each iteration's input, got 3"):
        compile_text(
            """
            dlc: 1
            name: t
            inputs: {x: {shape: [N, 4]}}
            layers:
              - repeat: 2
                input: 3
                body: [relu]
            """
        )


def test_dag_with_forward_reference_and_ports() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers:
          - add:
            in: [left, right]
            id: total
          - linear: 3
            in: x
            id: left
          - linear: 3
            in: x
            id: right
        outputs: {sum: total, first: left.out}
        """
    )
    assert list(model.graph.outputs) == ["sum", "first"]
    x = np.ones((2, 4), np.float32)
    out = model.run({"x": x})
    np.testing.assert_allclose(out["sum"] - out["first"], model.run({"x": x})["sum"] - out["first"])


def test_template_defaults_expressions_and_global_params() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 6]}}
        params: {base: 4}
        blocks:
          widen:
            params:
              factor: {type: int, default: 2}
              extra: {type: int, default: "${base}"}
            body:
              - linear: "${6 * factor + extra}"
        layers:
          - widen
          - widen: {factor: 3}
          - widen: 1
        """
    )
    widths = [
        n.output.type.shape[0] for n in model.lowered.graph.parameters() if n.attrs.name.endswith("bias")
    ]
    assert widths == [16, 22, 10]  # 6*2+4, 6*3+4, 6*1+4 (shorthand sets the one required... here `factor`)


def test_set_overrides_params() -> None:
    text = """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        params: {width: 8, double: "${width * 2}"}
        layers: [{linear: "${double}"}]
        """
    assert compile_text(text).graph.outputs["output"].type.shape[1] == 16
    assert compile_text(text, overrides={"width": 5}).graph.outputs["output"].type.shape[1] == 10


def test_input_shapes_take_param_expressions_so_set_can_shrink_a_model() -> None:
    text = """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, "${features}"]}}
        params: {features: 6}
        layers: [{linear: 3}]
        """
    assert compile_text(text).graph.inputs()[0].output.type.shape[1] == 6
    assert compile_text(text, overrides={"features": 2}).graph.inputs()[0].output.type.shape[1] == 2


def test_residual_auto_projection_when_shapes_differ() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers:
          - residual: [{linear: 4}, relu]
          - residual:
              body: [{linear: 6}]
              shortcut: auto
        """
    )
    names = param_names(model)
    assert "residual_1.shortcut.weight" in names  # 4 -> 6 needed a projection
    assert not any(n.startswith("residual_0.shortcut") for n in names)  # 4 -> 4 did not
    assert model.graph.outputs["output"].type.shape[1] == 6


def test_residual_with_explicit_shortcut_layers() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers:
          - residual:
              body: [{linear: 6}]
              shortcut: [{linear: {out: 6, bias: false}}, layer_norm]
              post: [relu]
        """
    )
    names = param_names(model)
    assert "residual_0.shortcut.linear_0.weight" in names
    assert "residual_0.shortcut.layer_norm_0.weight" in names


def test_multiple_outputs_and_inputs_passed_through() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {a: {shape: [N, 4]}, b: {shape: [N, 4]}}
        layers:
          - add:
            in: [a, b]
        outputs: [add_0, a]
        """
    )
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = model.run({"a": a, "b": a})
    np.testing.assert_array_equal(out["a"], a)
    np.testing.assert_array_equal(out["add_0"], 2 * a)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_constant_blocks_fold(level: int) -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 2]}}
        layers:
          - constant: [[1.0, 2.0]]
            id: c
          - constant: [[3.0, 4.0]]
            id: d
          - mul:
            in: [c, d]
            id: cd
          - add:
            in: [x, cd]
        """,
        opt_level=level,
    )
    ops = [n.op for n in model.graph]
    assert ("mul" in ops) == (level == 0)
    out = model.run({"x": np.zeros((1, 2), np.float32)})["output"]
    np.testing.assert_array_equal(out, [[3.0, 8.0]])


def test_consecutive_dropouts_are_all_removed() -> None:
    model = compile_text(
        """
        dlc: 1
        name: t
        inputs: {x: {shape: [N, 4]}}
        layers: [{dropout: 0.1}, {dropout: 0.2}, identity, relu]
        """
    )
    assert [n.op for n in model.graph] == ["input", "relu"]
