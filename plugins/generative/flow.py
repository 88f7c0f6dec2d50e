"""`flow`: a normalizing flow, a chain of invertible steps z = f_K(...f_1(x)).

Its outputs are `z` and `log_det`, log |det dz/dx| = the sum of each step's log |det J|
(one value per example), which with a prior p(z) gives log p(x) = log p(z) + log_det.
Its inverse (`--direction inverse`) runs the steps' inverses last first, from the same
parameters; `log_det` is then log |det dx/dz|, minus the forward one.

Steps are written like layers, each one invertible block with its options and an
optional `id`:

    - flow:
        steps:
          - actnorm
          - affine_coupling: {mask: checkerboard, s: s_net, t: t_net}
            id: c0
          - affine_coupling: {mask: checkerboard, parity: 1, s: s_net, t: t_net}
            id: c1
      id: flow
    outputs: {z: flow.z, log_det: flow.log_det}

A step that is not an invertible block (a `linear`, a template) is a located error.
`flat: true` names the steps in the scope that holds the flow, so their parameters take
a reference's names (RealNVP's `s.K`, `t.K` and `mask`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import BlockConfig, BlockContext, BlockType, SpecError, Value, init
from dlc.spec.suggest import did_you_mean
from dlc.spec.validation import diagnostics_from_validation

from .coupling import MaskOptions, mask_array


class FlowConfig(BlockConfig):
    steps: list[str | dict[str, Any]] = Field(
        min_length=1,
        description="The invertible steps, first applied first: `- BLOCK: {options}`, optional `id`.",
    )
    flat: bool = Field(
        False,
        description="Name the steps in the scope holding the flow (a reference's names), not under it.",
    )


@dataclass(frozen=True)
class Step:
    block: BlockType
    options: dict[str, Any]
    name: str
    path: tuple[str | int, ...]


def _read_steps(ctx: BlockContext, config: FlowConfig) -> list[Step]:
    """Each step's invertible block, checked options and name; every problem located."""
    source = ctx.frame.source
    base = (*ctx.path, ctx.block.name, "steps")
    steps: list[Step] = []
    problems = []
    counters: dict[str, int] = {}
    for index, raw in enumerate(config.steps):
        path = (*base, index)
        entry = {raw: None} if isinstance(raw, str) else raw
        heads = [k for k in entry if k != "id"] if isinstance(entry, dict) else []
        if len(heads) != 1:
            problems.append(
                source.diagnostic(
                    "a flow step is one invertible block (`- affine_coupling: {...}`), with an optional `id`",
                    path,
                )
            )
            continue
        head = heads[0]
        block = ctx.block_type(head)
        if block is None or block.inverse is None:
            what = "an unknown block" if block is None else "not invertible"
            hint = "flow steps are invertible blocks: " + ", ".join(_invertible_names())
            if block is None:
                close = did_you_mean(head, list(_invertible_names()))
                hint = close or hint
            problems.append(
                source.diagnostic(
                    f"flow '{ctx.name}': step {index} '{head}' is {what}; a flow's steps must be invertible",
                    (*path, head),
                    key=True,
                    hint=hint,
                )
            )
            continue
        options = entry[head] if entry[head] is not None else {}
        if not isinstance(options, dict):
            options = {block.shorthand: options} if block.shorthand else options
        try:
            block.config.model_validate(options)
        except ValidationError as error:
            problems.extend(
                diagnostics_from_validation(
                    error, options, source, (*path, head), block.config, f"block '{block.name}'"
                )
            )
            continue
        number = counters.get(head, 0)
        counters[head] = number + 1
        name = str(entry.get("id", f"{head}_{number}"))
        steps.append(Step(block, options, name, (*path, head)))
    if problems:
        raise SpecError(diagnostics=problems)
    return steps


_INVERTIBLE = (
    "affine_coupling",
    "additive_coupling",
    "actnorm",
    "invertible_conv1x1",
    "permute",
    "reverse",
    "flow",
)


# Steps whose log |det J| is 0 everywhere.
VOLUME_PRESERVING = frozenset({"additive_coupling", "permute", "reverse"})


def _invertible_names() -> Sequence[str]:
    return _INVERTIBLE


def _stack_masks(ctx: BlockContext, steps: list[Step], x: Value) -> None:
    """The shared mask buffers that couplings name in `mask_buffer` (one row per coupling)."""
    buffers: dict[str, dict[int, np.ndarray]] = {}
    sizes: dict[str, int] = {}
    for step in steps:
        config = step.block.config.model_validate(step.options)
        if not isinstance(config, MaskOptions) or config.mask_buffer is None:
            continue
        stored = config.mask_buffer
        if sizes.setdefault(stored.buffer, stored.rows) != stored.rows:
            raise ctx.error(
                f"mask buffer '{stored.buffer}' is given {sizes[stored.buffer]} and {stored.rows} rows"
            )
        rows = buffers.setdefault(stored.buffer, {})
        mask = mask_array(ctx, config, x)
        if stored.row in rows and not np.array_equal(rows[stored.row], mask):
            raise ctx.error(f"two couplings put different masks in row {stored.row} of '{stored.buffer}'")
        rows[stored.row] = mask
    shape = tuple(int(d) for d in x.type.shape[1:])
    for name, rows in buffers.items():
        stacked = np.zeros((sizes[name], *shape), np.float32)
        for row, mask in rows.items():
            stacked[row] = mask
        ctx.param(name, stacked.shape, init.from_array(stacked), trainable=False)


def _run(ctx: BlockContext, config: FlowConfig, inputs: list[Value], inverse: bool) -> dict[str, Value]:
    (x,) = inputs
    steps = _read_steps(ctx, config)
    order = list(reversed(steps)) if inverse else steps
    location = ctx.location
    log_det: Value | None = None
    with ctx.enclosing_scope() if config.flat else contextlib.nullcontext():
        _stack_masks(ctx, steps, x)
        for step in order:
            ctx.location = ctx.frame.source.locate(step.path)  # errors inside a step point at it
            try:
                ports = ctx.block_call_ports(
                    step.block.name, step.options, [x], name=step.name, inverse=inverse
                )
            finally:
                ctx.location = location
            x = ports[step.block.outputs[0]]
            if step.block.name in VOLUME_PRESERVING and (log_det is not None or step is not order[-1]):
                continue  # its log |det J| is 0: left out of the sum (dead-code elimination drops it)
            log_det = ports["log_det"] if log_det is None else ctx.op("add", log_det, ports["log_det"])
    assert log_det is not None
    return {"z": x, "log_det": log_det}


def _flow_forward(ctx: BlockContext, config: FlowConfig, inputs: list[Value]) -> dict[str, Value]:
    return _run(ctx, config, inputs, inverse=False)


def _flow_inverse(ctx: BlockContext, config: FlowConfig, inputs: list[Value]) -> dict[str, Value]:
    return _run(ctx, config, inputs, inverse=True)


BLOCKS = [
    BlockType(
        "flow",
        FlowConfig,
        _flow_forward,
        "A normalizing flow: invertible steps chained; outputs z and log_det = sum of log |det J|.",
        outputs=("z", "log_det"),
        inverse=_flow_inverse,
    ),
]
