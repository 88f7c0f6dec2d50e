"""Loops in the IR: the `scan` op, whose body is a nested `Graph` run once per step.

One mechanism for every family that needs a loop (recurrences, decoders, samplers). A
``scan`` node's inputs are, in order: the carried states' initial values, the scanned
sequences, and the outer values the body reads ("captures": parameters, constants,
encoder outputs). Its body graph has one ``input`` node for each of them, in the same
order, with the step index (float32 ``[1]``) between the scanned slices and the captures
when the loop asks for it. The body's outputs are the next carried states (in carry
order), then the per-step outputs. The node's outputs are the final states, then the
per-step outputs stacked along each output's axis.

Invariant: a body holds only ``input`` nodes and computing ops. Parameters and constants
live in the top graph (their names are the state_dict keys and ONNX initializer names)
and enter the body as captures, so the weights are shared by every step by construction.

Example (``print(graph)``)::

    %dec:h, %dec:y = scan(%h0, %x, %dec.cell.weight) {axis=1, carries=1, ...} : ...
      body dec(%h: float32[N, 8], %x: float32[N, 4], %dec.cell.weight: float32[8, 12]) {
        ...
      }
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dlc.ir.graph import Graph, IRError
from dlc.ir.node import Node, OpAttrs, Value
from dlc.ir.ops import InferenceError, OpSample
from dlc.ir.symbolic import Dim
from dlc.ir.types import DType, TensorType, format_shape
from dlc.lazy_imports import numpy as np

INDEX_TYPE = TensorType(DType.float32, (1,))


class ScanAttrs(OpAttrs):
    """`carries`, `scanned`, `captured`: how many node inputs of each kind (in that order).
    `scan_axes`: the axis each scanned input is sliced along; `output_axes`: the axis each
    per-step output is stacked along. `steps`: the trip count of a loop with nothing
    scanned. `reverse`: run the steps last to first (outputs stay in step order).
    `index`: the body takes the step number t (float32 ``[1]``) after the slices."""

    body: Graph
    carries: int
    scanned: int
    captured: int
    scan_axes: tuple[int, ...] = ()
    output_axes: tuple[int, ...] = ()
    steps: int | None = None
    reverse: bool = False
    index: bool = False

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["body"] = self.body.name  # the printer prints the body itself below the node
        return described

    @property
    def outputs(self) -> int:
        return len(self.body.outputs) - self.carries


def scan_length(attrs: ScanAttrs, inputs: Sequence[TensorType | None]) -> Dim:
    """The number of steps: `steps`, or the scanned inputs' length along their axes."""
    if attrs.steps is not None:
        return attrs.steps
    first = inputs[attrs.carries]
    assert first is not None
    return first.shape[attrs.scan_axes[0]]


def body_input_types(attrs: ScanAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    """The types the body's inputs must have, given the node's input types."""
    if any(t is None for t in inputs):
        raise InferenceError("scan: every input is required")
    types = [t for t in inputs if t is not None]
    expected = len(types) + (1 if attrs.index else 0)
    if attrs.carries + attrs.scanned + attrs.captured != len(types):
        raise InferenceError(
            f"scan: {len(types)} inputs for {attrs.carries} carries, {attrs.scanned} scanned and "
            f"{attrs.captured} captured values"
        )
    if len(attrs.body.inputs()) != expected:
        raise InferenceError(f"scan: the body has {len(attrs.body.inputs())} inputs, expected {expected}")
    if len(attrs.scan_axes) != attrs.scanned:
        raise InferenceError("scan: one axis per scanned input")
    if (attrs.steps is None) != (attrs.scanned > 0):
        raise InferenceError("scan: a loop either scans inputs or runs a number of `steps`")
    carries = types[: attrs.carries]
    sequences = types[attrs.carries : attrs.carries + attrs.scanned]
    captured = types[attrs.carries + attrs.scanned :]
    slices = []
    length: Dim | None = None
    for sequence, axis in zip(sequences, attrs.scan_axes, strict=True):
        if not 0 <= axis < sequence.rank:
            raise InferenceError(f"scan: axis {axis} is out of range for the scanned {sequence}")
        if length is None:
            length = sequence.shape[axis]
        elif sequence.shape[axis] != length:
            raise InferenceError(
                f"scan: the scanned inputs differ in length ({length} and {sequence.shape[axis]})"
            )
        slices.append(sequence.with_shape(sequence.shape[:axis] + sequence.shape[axis + 1 :]))
    return [*carries, *slices, *([INDEX_TYPE] if attrs.index else []), *captured]


def infer_scan(attrs: ScanAttrs, inputs: Sequence[TensorType | None]) -> list[TensorType]:
    expected = body_input_types(attrs, inputs)
    for node, type_ in zip(attrs.body.inputs(), expected, strict=True):
        if node.output.type != type_:
            raise InferenceError(
                f"scan: body input '{node.output.name}' is {node.output.type}, given {type_}"
            )
    results = list(attrs.body.outputs.items())
    if len(results) < attrs.carries:
        raise InferenceError(f"scan: the body returns {len(results)} values for {attrs.carries} carries")
    for (name, value), initial in zip(results[: attrs.carries], expected, strict=False):
        if value.type != initial:
            raise InferenceError(
                f"scan: carry '{name}' starts as {initial} but its next value is {value.type}"
            )
    per_step = [value.type for _, value in results[attrs.carries :]]
    if len(attrs.output_axes) != len(per_step):
        raise InferenceError("scan: one stacking axis per per-step output")
    length = scan_length(attrs, inputs)
    stacked = []
    for type_, axis in zip(per_step, attrs.output_axes, strict=True):
        if not 0 <= axis <= type_.rank:
            raise InferenceError(f"scan: output axis {axis} is out of range for a per-step {type_}")
        stacked.append(type_.with_shape((*type_.shape[:axis], length, *type_.shape[axis:])))
    return [*(value.type for _, value in results[: attrs.carries]), *stacked]


def nested_graphs(node: Node) -> list[Graph]:
    """The graphs a node carries as attributes (a loop's body), for passes and checks."""
    return [value for value in vars(node.attrs).values() if isinstance(value, Graph)]


def with_bodies(node: Node, bodies: Sequence[Graph]) -> Node:
    """`node` with its nested graphs replaced, in the order `nested_graphs` lists them."""
    replacements = iter(bodies)
    changes = {k: next(replacements) for k, v in vars(node.attrs).items() if isinstance(v, Graph)}
    return node.replace(attrs=node.attrs.model_copy(update=changes))


def walk_with_trips(graph: Graph, trips: Dim = 1) -> Iterator[tuple[Node, Dim]]:
    """Every node of `graph` and of its bodies, each with how often it runs per model call
    (a loop body's nodes run once per step). Iterative: no recursion per nesting level."""
    pending: list[tuple[Graph, Dim]] = [(graph, trips)]
    while pending:
        current, count = pending.pop(0)
        for node in current:
            yield node, count
            if isinstance(node.attrs, ScanAttrs):
                length = scan_length(node.attrs, [v.type if v is not None else None for v in node.inputs])
                pending.append((node.attrs.body, count * length))


def check_body(node: Node) -> None:
    """The body invariant: only inputs and computing ops (weights are captured)."""
    for body in nested_graphs(node):
        for inner in body:
            if inner.op in ("parameter", "constant"):
                raise IRError(
                    f"loop '{node.name}': body node '{inner.name}' is a {inner.op}; "
                    "weights and constants must live in the top graph and be captured"
                )


def scan_samples() -> list[OpSample]:
    """h' = tanh(h + x_t), y_t = h' over axis 1 of x [N, T, 4]; and a reversed 3-step
    loop without a scanned input, y_t = h' = h * w + t (w captured, t the step index)."""
    rng = np.random.default_rng(0)
    state = TensorType(DType.float32, (2, 4))
    body = Graph("sample_scan")
    h = body.add(Node("h", "input", (), (Value("h", state),), _input_attrs("h"))).output
    x = body.add(Node("x", "input", (), (Value("x", state),), _input_attrs("x"))).output
    total = body.add(Node("sum", "add", (h, x), (Value("sum", state),), OpAttrs())).output
    new = body.add(Node("new", "tanh", (total,), (Value("new", state),), OpAttrs())).output
    body.outputs.update({"h": new, "y": new})
    scanned = ScanAttrs(body=body, carries=1, scanned=1, captured=0, scan_axes=(1,), output_axes=(1,))

    loop = Graph("sample_loop")
    h = loop.add(Node("h", "input", (), (Value("h", state),), _input_attrs("h"))).output
    t = loop.add(Node("t", "input", (), (Value("t", INDEX_TYPE),), _input_attrs("t"))).output
    w = loop.add(Node("w", "input", (), (Value("w", state),), _input_attrs("w"))).output
    scaled = loop.add(Node("scaled", "mul", (h, w), (Value("scaled", state),), OpAttrs())).output
    new = loop.add(Node("new", "add", (scaled, t), (Value("new", state),), OpAttrs())).output
    loop.outputs.update({"h": new, "y": new})
    stepped = ScanAttrs(
        body=loop, carries=1, scanned=0, captured=1, output_axes=(0,), steps=3, reverse=True, index=True
    )
    return [
        OpSample(
            (
                rng.standard_normal((2, 4)).astype(np.float32),
                rng.standard_normal((2, 5, 4)).astype(np.float32),
            ),
            {"body": body, **_fields(scanned)},
            symbolic_batch=False,
            symbols={1: {1: "T"}},
            name="over",
        ),
        OpSample(
            (rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)),
            {"body": loop, **_fields(stepped)},
            symbolic_batch=False,
            name="steps",
        ),
    ]


def _fields(attrs: ScanAttrs) -> dict[str, Any]:
    return {k: getattr(attrs, k) for k in type(attrs).model_fields if k != "body"}


def _input_attrs(name: str) -> OpAttrs:
    from dlc.ir.source_ops import InputAttrs

    return InputAttrs(name=name)


def describe_loop(attrs: ScanAttrs, inputs: Sequence[Value | None], sigil: str = "%") -> str:
    """One line saying what a loop runs over, for the printer and the torch comments."""
    if attrs.steps is not None:
        return f"{attrs.steps} steps" + (", reversed" if attrs.reverse else "")
    sequences = inputs[attrs.carries : attrs.carries + attrs.scanned]
    over = ", ".join(
        f"{sigil}{v.name}{format_shape(v.type.shape)} axis {a}"
        for v, a in zip(sequences, attrs.scan_axes, strict=True)
        if v is not None
    )
    return f"over {over}" + (", reversed" if attrs.reverse else "")
