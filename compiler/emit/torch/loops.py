"""Torch lowering of `scan`: a readable ``for`` loop inlined in ``forward``.

    h, c = h0, c0
    ys = []
    for t in range(x.size(1)):  # dec: over x axis 1
        x_t = x[:, t]  # [N, 16]
        ...                                  (the body, one statement per op)
        h, c = gru_h, add
        ys.append(out)
    dec_h, dec_c, dec_y = h, c, torch.stack(ys, dim=1)

The body's submodules are the same modules at every step (one set of weights).
"""

from __future__ import annotations

from dlc.emit.torch.writer import TorchExpr, TorchWriter
from dlc.ir.loops import ScanAttrs, describe_loop
from dlc.ir.node import Node
from dlc.ir.types import format_shape


def scan_to_torch(w: TorchWriter, node: Node) -> TorchExpr | str:
    attrs: ScanAttrs = node.attrs  # type: ignore[assignment]
    body = attrs.body
    body_inputs = [n.output for n in body.inputs()]
    first_capture = attrs.carries + attrs.scanned + (1 if attrs.index else 0)
    carries = body_inputs[: attrs.carries]
    slices = body_inputs[attrs.carries : attrs.carries + attrs.scanned]
    captures = dict(
        zip(
            (v.name for v in body_inputs[first_capture:]),
            node.inputs[attrs.carries + attrs.scanned :],
            strict=True,
        )
    )
    sequences = node.inputs[attrs.carries : attrs.carries + attrs.scanned]
    results = list(body.outputs.items())

    state = [w.local(v.name) for v in carries]
    if state:
        initial = ", ".join(w.var(v) for v in node.inputs[: attrs.carries])
        w.statement(f"{', '.join(state)} = {initial}")
    collected = [w.local(f"{name}_steps") for name, _ in results[attrs.carries :]]
    for name in collected:
        w.statement(f"{name} = []")
    step = w.local("t")
    if attrs.steps is not None:
        length = str(attrs.steps)
    else:
        first = sequences[0]
        assert first is not None
        length = f"{w.var(first)}.size({attrs.scan_axes[0]})"
    steps = f"reversed(range({length}))" if attrs.reverse else f"range({length})"
    w.statement(f"for {step} in {steps}:  # {node.name}: {describe_loop(attrs, node.inputs, sigil='')}")

    bindings = dict(zip((v.name for v in carries), state, strict=True))
    header: list[str] = []
    for value, sequence, axis in zip(slices, sequences, attrs.scan_axes, strict=True):
        assert sequence is not None
        name = w.local(value.name)
        header.append(f"{name} = {w.var(sequence)}[{':, ' * axis}{step}]  # {format_shape(value.type.shape)}")
        bindings[value.name] = name
    if attrs.index:
        index = body_inputs[attrs.carries + attrs.scanned]
        name = w.local(index.name)
        header.append(f"{name} = torch.full((1,), float({step}))  # the step number")
        bindings[index.name] = name
    inner = w.nested(body, bindings, captures, node.layer)
    lines = [*header, *inner.body_lines()]
    if state:
        updated = ", ".join(inner.var(value) for _, value in results[: attrs.carries])
        lines.append(f"{', '.join(state)} = {updated}")
    for name, (_, value) in zip(collected, results[attrs.carries :], strict=True):
        lines.append(f"{name}.append({inner.var(value)})")
    for line in lines:
        w.statement(f"    {line}")

    stacked = [
        f"torch.stack({name}{'[::-1]' if attrs.reverse else ''}, dim={axis})"
        for name, axis in zip(collected, attrs.output_axes, strict=True)
    ]
    outputs = [*state, *stacked]
    if len(outputs) == 1:
        return outputs[0]
    return TorchExpr(", ".join(outputs))
