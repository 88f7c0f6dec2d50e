"""Weights that only a loop body reads, moved into that body's own initializers.

A loop body reads the outer graph's initializers by name, and ONNX Runtime runs such a body
correctly, but its layout optimizer leaves the body's convolutions alone: in the DDPM
sampler, the U-Net's 65 convolutions stay plain `Conv` inside the `Loop`, where the same
U-Net on its own gets ONNX Runtime's blocked-layout `nchwc` kernels (about 10-50% slower at
batch 8 on the development machine). As initializers of the body they are constants there,
and the body gets the fast kernels. Names, data and results are unchanged.

Used for compiled diffusion samplers (`CompiledModel.onnx_model`), placeholders and all:
the streaming writer draws the body's weights into the file like any others.
"""

from __future__ import annotations

from collections import Counter

import onnx

LOOP_OPS = ("Loop", "Scan")


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Every value name the nodes of `graph` and of its nested bodies read."""
    names: set[str] = set()
    pending = [graph]
    while pending:
        current = pending.pop()
        for node in current.node:
            names.update(node.input)
            pending.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    return names


def _body(loop: onnx.NodeProto) -> onnx.GraphProto:
    return next(a.g for a in loop.attribute if a.name == "body")


def localize_loop_initializers(model: onnx.ModelProto) -> int:
    """Move each top-level initializer read by exactly one loop body (and by no other node,
    nor as an output) into that body. Returns how many moved."""
    graph = model.graph
    top_reads = Counter(name for node in graph.node if node.op_type not in LOOP_OPS for name in node.input)
    top_reads.update(output.name for output in graph.output)
    loops = [node for node in graph.node if node.op_type in LOOP_OPS]
    readers: dict[str, list[onnx.NodeProto]] = {}
    for loop in loops:
        for name in _names_read(_body(loop)) | set(loop.input):
            readers.setdefault(name, []).append(loop)
    moved = 0
    kept = []
    for tensor in graph.initializer:
        owners = readers.get(tensor.name, [])
        if len(owners) == 1 and tensor.name not in top_reads and tensor.name not in owners[0].input:
            _body(owners[0]).initializer.append(tensor)
            moved += 1
        else:
            kept.append(tensor)
    if moved:
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return moved
