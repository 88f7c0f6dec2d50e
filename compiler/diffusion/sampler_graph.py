"""The sampler as one graph: a `scan` of `steps` trips whose body is the noise-predicting
network plus one sampler step (`dlc.diffusion.samplers`), x_T in, x_0 out.

    graph ddpm_cifar10_ddim50(%x_T: float32[N, 3, 32, 32]) -> (x_0) {
      %x_0 = scan(%x_T, %timesteps, ..., %conv_in.weight, ...) {steps=50, index=True}
        body sampler_step(%x, %step, %timesteps, ...) {
          %i = cast(%step) ; %t = gather(%timesteps, %i)     # this step's timestep, [1]
          ... the network, run on (x, t) ...                  # eps = eps_theta(x, t)
          %x0 = div(sub(%x, mul(%sqrt_one_minus_abar[i], %eps)), %sqrt_abar[i]) ; clip
          %x' = a[i] x0 + b[i] x + c[i] eps + d[i] noise[i]
        }
    }

The network's parameters keep their names (top-level initializers, captured by the body),
so the sampler loads the network's checkpoint as it is. The network's timestep input is
fed a [1] tensor (one timestep for the whole batch), so its layers are re-typed for it:
each node is re-added with its output types inferred again. Each step's noise is the
input `noise` [steps, *x_T.shape] (ancestral samplers only), which makes the sampler
reproducible and comparable with any other implementation drawing the same noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlc.diffusion.samplers import SamplerPlan
from dlc.errors import DlcError
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph
from dlc.ir.loops import INDEX_TYPE
from dlc.ir.node import Node, Value
from dlc.ir.types import DType, TensorType
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    from dlc.registry import Registry

SAMPLE_INPUT, NOISE_INPUT, OUTPUT = "x_T", "noise", "x_0"


def build_sampler_graph(
    network: Graph, plan: SamplerPlan, registry: Registry, sample: str = "sample", timestep: str = "timestep"
) -> Graph:
    """The sampler around `network` (inputs `sample` [N, ...] and `timestep` [N], one
    output: the predicted noise)."""
    inputs = {n.attrs.name: n for n in network.inputs()}
    for name, role in ((sample, "x_t"), (timestep, "the timestep")):
        if name not in inputs:
            raise DlcError(
                f"the sampler feeds {role} to an input called '{name}', which '{network.name}' lacks",
                hint=f"its inputs: {', '.join(inputs)}; set `sampling: {{sample: ..., timestep: ...}}`",
            )
    if len(inputs) != 2 or len(network.outputs) != 1:
        raise DlcError(
            f"a sampler needs a network with two inputs (x_t, t) and one output (the noise); "
            f"'{network.name}' has {len(inputs)} inputs and {len(network.outputs)} outputs"
        )
    sample_type = inputs[sample].output.type
    top = Graph(f"{network.name}_{plan.name}")
    outer = GraphBuilder(top, registry)
    x_T = outer.add_input(SAMPLE_INPUT, sample_type).output
    for node in network:
        if node.op in ("parameter", "constant"):
            top.add(node)
    tables: dict[str, Value] = {}

    def table(name: str) -> Value:
        """A per-step table as a top-level constant, made when the step first needs it."""
        if name not in tables:
            tables[name] = outer.add_constant(getattr(plan, name), f"sampler.{name}").output
        return tables[name]

    noise = None
    if plan.stochastic:
        noise_type = TensorType(sample_type.dtype, (plan.steps, *sample_type.shape))
        noise = outer.add_input(NOISE_INPUT, noise_type).output

    body = Graph("sampler_step")
    step = _Step(body, registry)
    x = step.input("x", sample_type)
    index = step.input("step", INDEX_TYPE)
    captured: list[Value] = []

    def capture(outer_value: Value) -> Value:
        captured.append(outer_value)
        return step.input(outer_value.name, outer_value.type)

    i = step.op("cast", [index], dtype=DType.int64, name="step_index")
    rows: dict[str, Value] = {}

    def row(name: str) -> Value:
        """This step's entry of a per-step table."""
        if name not in rows:
            rows[name] = step.op("gather", [capture(table(name)), i], name=name)
        return rows[name]

    t = row("timesteps")

    mapped: dict[str, Value] = {inputs[sample].output.name: x, inputs[timestep].output.name: t}
    for node in network.toposort():
        if node.op == "input":
            continue
        if node.op in ("parameter", "constant"):
            mapped[node.output.name] = capture(node.output)
            continue
        new_inputs = [None if v is None else mapped[v.name] for v in node.inputs]
        added = step.copy(node, new_inputs)
        for old, new in zip(node.outputs, added.outputs, strict=True):
            mapped[old.name] = new
    eps = mapped[next(iter(network.outputs.values())).name]

    scaled = step.op("mul", [row("sqrt_one_minus_abar"), eps], name="noise_part")
    x0 = step.op("div", [step.op("sub", [x, scaled], name="signal"), row("sqrt_abar")], name="x0")
    if plan.clip is not None:
        x0 = step.op("clip", [x0], min=-plan.clip, max=plan.clip, name="x0_clipped")
    terms = [step.op("mul", [row("x0_coefficient"), x0], name="x0_term")]
    if np.any(plan.x_coefficient != 0):
        terms.append(step.op("mul", [row("x_coefficient"), x], name="x_term"))
    if np.any(plan.eps_coefficient != 0):
        terms.append(step.op("mul", [row("eps_coefficient"), eps], name="eps_term"))
    if noise is not None:
        drawn = step.op("gather", [capture(noise), i], name="step_noise")
        drawn = step.op("squeeze", [drawn], axis=0, name="step_noise_squeezed")
        terms.append(step.op("mul", [row("noise_coefficient"), drawn], name="noise_term"))
    previous = terms[0]
    for term in terms[1:]:
        previous = step.op("add", [previous, term], name="x_previous")
    body.outputs["x"] = previous

    loop_inputs = [x_T, *captured]  # the carry, then every captured value, in the body's order
    attrs = {
        "body": body,
        "carries": 1,
        "scanned": 0,
        "captured": len(captured),
        "output_axes": (),
        "steps": plan.steps,
        "index": True,
    }
    loop = outer.add_op("scan", loop_inputs, attrs, name="sampler", layer="sampler")
    top.outputs[OUTPUT] = loop.output
    return top


class _Step:
    """Adds the body's nodes, inferring each output type from its (re-typed) inputs."""

    def __init__(self, body: Graph, registry: Registry) -> None:
        self.body = body
        self.builder = GraphBuilder(body, registry)

    def input(self, name: str, type_: TensorType) -> Value:
        return self.builder.add_input(self.body.fresh_name(name.replace(".", "_")), type_).output

    def op(self, op: str, inputs: list[Value], *, name: str, **attrs: object) -> Value:
        return self.builder.add_op(op, inputs, attrs, name=name, layer="sampler").output

    def copy(self, node: Node, inputs: list[Value | None]) -> Node:
        attrs = {key: getattr(node.attrs, key) for key in type(node.attrs).model_fields}
        return self.builder.add_op(
            node.op,
            inputs,
            attrs,
            name=node.name,
            module=node.module,
            layer=node.layer,
            location=node.location,
        )
