"""Compiling a spec backwards: `--direction inverse` builds x = f^-1(z) from the spec of f.

A block that can be inverted carries an inverse lowering (`BlockType.inverse`): given the
output of its forward map, it adds the nodes that recover the input, with the very same
parameters, so one weights file serves both directions. The inverse of a spec is the
inverse of each of its top-level layers, last layer first; so the layers must form a chain
from the spec's one input to its output, and each of them must be invertible (a layer
that is not is a located error naming it).

The compiled inverse takes the forward output's name as its input (`z`) and returns the
spec input's name (`x`); the other outputs (a flow's `log_det`) keep their names and hold
the inverse's values (log |det J| of f^-1, which is minus the forward one).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dlc.ir.node import Value
from dlc.spec.scope import Broken, Entry, Frame, LayerResult

if TYPE_CHECKING:
    from dlc.ir.graph import Graph
    from dlc.spec.blocks import BlockType
    from dlc.spec.loader import Spec

FORWARD = "forward"
INVERSE = "inverse"
DIRECTIONS = (FORWARD, INVERSE)


def invertible(block: BlockType) -> BlockType:
    """`block` with its inverse as its lowering (the caller checked it has one)."""
    assert block.inverse is not None
    return dataclasses.replace(block, lower=block.inverse)


class InverseLowering:
    """Lowers a spec's top-level chain of invertible layers backwards (mixed into `Lowering`)."""

    # Provided by `Lowering`, which mixes this class in.
    spec: Spec
    graph: Graph

    def lower_inverse(self, root: Frame, start: LayerResult) -> LayerResult | None:
        """The inverse of the spec's layers, last first, starting from `start` (the input z)."""
        entries = self.spec.raw["layers"]
        if not isinstance(entries, list) or not entries:
            self._error("expected a non-empty list of layers", ("layers",), root)
            raise Broken
        if len(self.spec.model.inputs) != 1:
            self._error("`--direction inverse` needs a spec with exactly one input", ("inputs",), root)
            raise Broken
        parsed: list[Entry] = []
        for index, raw in enumerate(entries):
            parsed.append(self._read_entry(raw, ("layers", index), root, index))
        self._name_entries(list(parsed), root)
        parsed = [entry for entry in parsed if not entry.skip]  # `if:` false: not part of the map
        if not parsed:
            self._error("every layer is skipped (`if:`): there is no map to invert", ("layers",), root)
            raise Broken
        blocks = [self._invertible_block(entry, root) for entry in parsed]
        current = start
        for entry, block in reversed(list(zip(parsed, blocks, strict=True))):
            config_raw = entry.raw[entry.head] if isinstance(entry.raw, dict) else None
            config_path = (*entry.path, entry.head) if isinstance(entry.raw, dict) else entry.path
            config = self._block_config(block, config_raw, config_path, root)
            full = root.qualify(entry.name)
            current = self._lower_block(invertible(block), config, entry.path, root, [current.value], full)
            root.names[entry.name] = current
        # Without `outputs:`, the forward output is named after the last layer, as forward.
        self._last_layer_name = parsed[-1].name if parsed[-1].explicit_id else None
        return current

    def _invertible_block(self, entry: Entry, root: Frame) -> BlockType:
        """The entry's block, if it is one that can be inverted on the chain; else an error."""
        what = "a template call" if entry.kind == "template" else f"a `{entry.head}` layer"
        if entry.kind == "block":
            block = self._block(entry.head, entry.path, root)
            if block.inverse is not None and (not isinstance(entry.raw, dict) or "in" not in entry.raw):
                return block
            what = f"block '{block.name}'"
            if block.inverse is not None:
                message = f"layer '{entry.name}' ({what}) takes `in:`; the inverse needs a chain of layers"
                hint = "drop `in:`: each layer eats the one before"
                self._error(message, (*entry.path, "in"), root, hint=hint)
                raise Broken
        self._error(
            f"layer '{entry.name}' ({what}) is on the flow path but has no inverse",
            entry.path,
            root,
            hint="`--direction inverse` inverts every layer from the input to the output; "
            "keep only invertible layers (flow, affine_coupling, actnorm, ...) there",
        )
        raise Broken

    def name_inverse_ends(self, last: LayerResult | None) -> None:
        """The inverse's input takes the forward output's name, and that output the spec
        input's name: `x = f^-1(z)` reads `z` and returns `x`."""
        (input_name,) = self.spec.model.inputs
        if last is None:
            return
        forward_output = next((k for k, v in self.graph.outputs.items() if v.name == last.value.name), None)
        if forward_output is None or forward_output == input_name:
            return
        input_node = self.graph.node(input_name)
        if forward_output in self.graph:  # the inverse of the layer that made it: another name
            self.graph.rename_node(self.graph.node(forward_output), self.graph.fresh_name(forward_output))
        renamed = self.graph.rename_node(input_node, forward_output)
        attrs = renamed.attrs.model_copy(update={"name": forward_output})
        self.graph.replace_node(renamed, renamed.replace(attrs=attrs))
        outputs: dict[str, Value] = {}
        for key, value in self.graph.outputs.items():
            outputs[input_name if key == forward_output else key] = value
        self.graph.outputs = outputs
