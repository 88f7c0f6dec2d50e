"""`share: LAYER` on any layer: reuse every parameter (weights, biases, buffers) of an
earlier layer instead of creating new ones; a Siamese network is two calls of one
template on two inputs. A reference may be dotted (`layers.0`), and `None` means no
sharing, so the iterations of a repeat can share the first one's weights (ALBERT).

A mixin of `Lowering`. While a sharing layer lowers, each parameter it asks for,
``<layer>.<rest>``, is looked up as ``<source>.<rest>`` among the parameters the source
layer created, and returned after checking shape and dtype. The shared tensors are one IR
parameter each, so one ONNX initializer and one torch state_dict key. The source is found
from the innermost scope outwards, as `tie` finds its reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlc.ir.node import Value
from dlc.ir.types import DType, TensorType
from dlc.spec.scope import Broken, Entry, Frame, LayerResult
from dlc.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from dlc.errors import ErrorCollector
    from dlc.ir.builder import GraphBuilder
    from dlc.ir.graph import Graph
    from dlc.spec.context import BlockContext


@dataclass
class Sharing:
    """One active `share:`: parameters under `target` come from under `source`."""

    target: str
    source: str
    used: set[str] = field(default_factory=set)


class SharedParameters:
    """`share:` for `Lowering`."""

    graph: Graph
    builder: GraphBuilder  # parameters are looked up through it: a loop body's finds the top graph's
    errors: ErrorCollector
    _sharing: list[Sharing]

    def _lower_shared(
        self,
        entry: Entry,
        frame: Frame,
        full: str,
        lower: Callable[[], LayerResult],
    ) -> LayerResult:
        path = (*entry.path, "share")
        reference = self._expand(entry.raw["share"], path, frame)  # type: ignore[attr-defined]
        if reference is None:  # `share: "${'layers.0.fc' if i > 0 else None}"`: the first one owns them
            return lower()
        if not isinstance(reference, str) or not reference:
            self._error(f"`share` takes the name of an earlier layer, got {reference!r}", path, frame)  # type: ignore[attr-defined]
            raise Broken
        source = self._share_source(reference, frame, full, path)
        sharing = Sharing(full, source)
        self._sharing.append(sharing)
        try:
            result = lower()
        finally:
            self._sharing.pop()
        owned = self._parameters_under(source)
        if not sharing.used:
            self._error(  # type: ignore[attr-defined]
                f"share: layer '{full}' ({entry.head}) creates no parameters, so it has none to share "
                f"with '{reference}'",
                path,
                frame,
                hint="`share` reuses the weights of a layer that has some (a conv, a linear, a template)",
            )
            raise Broken
        unused = sorted(set(owned) - sharing.used)
        if unused:
            self._error(  # type: ignore[attr-defined]
                f"share: layer '{full}' does not use {', '.join(repr(u) for u in unused)} of '{reference}'; "
                "shared layers must have the same parameters",
                path,
                frame,
                hint="give both layers the same options (bias, affine, widths)",
            )
            raise Broken
        return result

    def _parameters_under(self, prefix: str) -> list[str]:
        return [name for name in self.builder.parameter_names() if name.startswith(prefix + ".")]

    def _share_source(self, reference: str, frame: Frame, full: str, path: Any) -> str:
        """The full name of the layer `reference` names, innermost scope first."""
        parts = full.split(".")[:-1]
        for count in range(len(parts), -1, -1):
            prefix = ".".join(parts[:count])
            candidate = f"{prefix}.{reference}" if prefix else reference
            if candidate == full or full.startswith(candidate + "."):
                continue
            if self._parameters_under(candidate):
                return candidate
        owners = sorted({name.rsplit(".", 1)[0] for name in self.builder.parameter_names()})
        self._error(  # type: ignore[attr-defined]
            f"share: no layer '{reference}' with parameters is defined before '{full}'",
            path,
            frame,
            hint=did_you_mean(reference, [*frame.visible(), *owners])
            or "share with a layer that comes earlier in the spec and has parameters",
        )
        raise Broken

    def shared_parameter(
        self, full: str, shape: Sequence[Any], dtype: DType, ctx: BlockContext
    ) -> Value | None:
        """The source's parameter standing for `full` while a sharing layer lowers, else None."""
        for sharing in reversed(self._sharing):
            if not full.startswith(sharing.target + "."):
                continue
            rest = full[len(sharing.target) + 1 :]
            candidate = f"{sharing.source}.{rest}"
            value = self.builder.parameter_value(candidate)  # in a loop body: captured
            if value is None:
                raise ctx.error(
                    f"share: '{sharing.source}' has no parameter '{rest}' (this layer's '{full}')",
                    hint="shared layers must be the same kind of layer with the same options",
                )
            wanted = TensorType(dtype, tuple(shape))
            if value.type != wanted:
                raise ctx.error(
                    f"share: '{candidate}' is {value.type}, but this layer's '{rest}' must be {wanted}",
                    hint="shared layers need the same options and input shapes",
                )
            sharing.used.add(candidate)
            return value
        return None
