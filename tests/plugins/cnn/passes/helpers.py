"""Shared by the CNN pass tests: compile a small spec with random weights, run one pass
(graph verified after it), and compare outputs before and after in ONNX Runtime and in the
ejected PyTorch model."""

from __future__ import annotations

import textwrap

import numpy as np
import torch

import dlc
from dlc.api import CompiledModel
from dlc.ir.node import Node, Value
from dlc.passes.manager import PassContext, PassManager, build_pipeline
from dlc.runtime import Session, random_inputs
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from dlc.weights import apply_weights
from tests.passes.test_passes import check_golden

__all__ = [
    "check_golden",
    "compare",
    "compile_spec",
    "computed",
    "randomize",
    "rewire",
    "run_pass",
    "run_pipeline",
]


def compile_spec(
    layers: str, inputs: str, outputs: str | None = None, *, blocks: str = "", seed: int = 1
) -> CompiledModel:
    """A spec of `layers` (YAML list items) at -O0, with every float weight random (variances
    positive), so that folded norms and merged kernels are not close to identities by accident.
    `inputs` is the spec's inputs mapping, `outputs` its output list, `blocks` its templates."""
    text = f"dlc: 1\nname: t\ninputs: {inputs}\n"
    if blocks:
        text += f"blocks:\n{textwrap.indent(textwrap.dedent(blocks), '  ')}"
    text += f"layers:\n{textwrap.indent(textwrap.dedent(layers), '  ')}"
    if outputs:
        text += f"outputs: {outputs}\n"
    model = dlc.compile(load_spec("t.yaml", text=text), opt_level=0)
    randomize(model, seed)
    return model


def randomize(model: CompiledModel, seed: int = 1) -> None:
    """Give every parameter random data: He-scaled weights (so that deep zoo nets keep a
    signal), random biases, norm scales and means, and variances in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for node in model.graph.parameters():
        shape = tuple(int(d) for d in node.output.type.shape)
        dtype = node.output.type.dtype.numpy
        if node.attrs.name.endswith("running_var"):
            values = rng.uniform(0.5, 2.0, shape)
        elif not np.issubdtype(dtype, np.floating):
            values = np.zeros(shape)
        elif len(shape) >= 2:
            values = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        else:
            values = 0.5 * rng.standard_normal(shape)
        arrays[node.attrs.name] = values.astype(dtype)
    apply_weights(model.graph, arrays, "random test weights")
    model._tensors = None  # drawn again from the new data


def run_pass(model: CompiledModel, name: str, *, portable: bool = False):
    """(the model after pass `name`, the pass object: `fired`, `declined`, `notes()`)."""
    registry = model.registry
    (info,) = build_pipeline(registry, 2, [name])
    compiler_pass = info.factory(PassContext(registry, model.seed, {}, portable))
    manager = PassManager([compiler_pass], registry, verify=True)
    graph = manager.run(model.graph.copy())
    after = CompiledModel(
        model.spec, model.lowered, graph, registry, model.seed, 2, manager.records, portable
    )
    return after, compiler_pass


def rewire(model: CompiledModel, node_name: str, index: int, value: Value) -> None:
    """Make input `index` of node `node_name` read `value` (graph surgery for decline tests)."""
    node = model.graph.node(node_name)
    inputs = list(node.inputs)
    inputs[index] = value
    model.graph.replace_node(node, node.replace(inputs=tuple(inputs)))


def computed(model: CompiledModel, op: str, source: str) -> Value:
    """`op(source)` for a weight named `source`: a tensor computed from a weight, not a weight."""
    value = model.graph.value(source)
    name = f"{source}/{op}"
    attrs = model.registry.op(op).make_attrs({})
    return model.graph.add(Node(name, op, (value,), (Value(name, value.type),), attrs)).output


def run_pipeline(model: CompiledModel, level: int = 2, *, portable: bool = False) -> CompiledModel:
    """The model after the whole -O`level` pipeline (on its own, random, weights)."""
    registry = model.registry
    context = PassContext(registry, model.seed, {}, portable)
    manager = PassManager(
        [info.factory(context) for info in build_pipeline(registry, level)], registry, verify=True
    )
    graph = manager.run(model.graph.copy())
    return CompiledModel(
        model.spec, model.lowered, graph, registry, model.seed, level, manager.records, portable
    )


def compare(before: CompiledModel, after: CompiledModel, *, torch_too: bool = True, dims=None) -> float:
    """Largest error of `after` (ONNX Runtime and, with `torch_too`, the ejected model.py)
    against `before` in ONNX Runtime, relative to the output scale, on batch 2."""
    session = Session(before.onnx_model(), "cpu")
    inputs = random_inputs(session, {"N": 2, **(dims or {})}, seed=0)
    expected = session.run(inputs)
    actual = Session(after.onnx_model(), "cpu").run(inputs)
    errors = [max_relative_error(expected[k], actual[k]) for k in expected]
    if torch_too:
        module = after.torch_module()
        names = [n.attrs.name for n in after.graph.inputs()]
        with torch.no_grad():
            result = module(*(torch.from_numpy(inputs[n]) for n in names))
        results = result if isinstance(result, tuple) else (result,)
        for key, value in zip(expected, results, strict=True):
            errors.append(max_relative_error(expected[key], value.numpy()))
    return max(errors)
