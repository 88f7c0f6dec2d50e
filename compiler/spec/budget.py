"""The resource checks lowering makes on a spec's sizes (see `dlc.limits`).

Lowering records shapes only, so a model's parameter count is known exactly before any
weight exists: `check_parameter_budget` refuses a model past `--max-params` there, before
passes fold weights or emitters draw and write them. `oversized_options` finds the
integer options of a block config that no tensor could honour, whatever the block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from dlc.errors import Diagnostic
from dlc.ir.graph import Graph
from dlc.limits import MAX_DIM, ResourceLimitError, format_bytes, format_count
from dlc.spec.scope import LayerInfo
from dlc.spec.yaml_source import SourceMap


def check_parameter_budget(
    graph: Graph, layers: Sequence[LayerInfo], max_params: int, source: SourceMap
) -> None:
    """Raise `ResourceLimitError` at the largest layer when the parameters and buffers of
    `graph` total more than `max_params` elements."""
    by_layer: dict[str, int] = {}
    total = size = 0
    for node in graph.parameters():
        count = 1
        for dim in node.output.type.shape:
            count *= int(dim)
        total += count
        size += count * node.output.type.dtype.itemsize
        by_layer[node.layer] = by_layer.get(node.layer, 0) + count
    if total <= max_params:
        return
    largest = max(by_layer, key=by_layer.__getitem__)
    locations = {info.name: info.location for info in layers}
    # A block's inner layer ('encoder.layers.0.linear1') is located at the nearest
    # enclosing layer the spec wrote ('encoder').
    scope = largest
    while scope not in locations and "." in scope:
        scope = scope.rsplit(".", 1)[0]
    location = locations.get(scope)
    message = (
        f"this model has {format_count(total)} parameters ({format_bytes(size)}); "
        f"the limit is {format_count(max_params)} (`--max-params` to raise it)"
    )
    note = f"the largest layer, '{largest}', has {format_count(by_layer[largest])}"
    line = source.source_line(location) if location is not None and location.file == source.file else None
    raise ResourceLimitError(diagnostics=[Diagnostic(message, location, notes=(note,), source_line=line)])


def oversized_options(config: BaseModel) -> list[tuple[tuple[str | int, ...], int]]:
    """(path, value) of every integer in `config` past `MAX_DIM` (in either direction):
    a size, count or index that large is a mistake in any block."""
    return list(_oversized(config, ()))


def _oversized(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], int]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_DIM:
            yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _oversized(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _oversized(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _oversized(item, (*path, key))
