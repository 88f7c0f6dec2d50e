"""The Python API: ``dlc.load_spec``, ``dlc.compile`` and the `CompiledModel` it returns.

model = dlc.compile("specs/mlp.yaml", seed=0)
model.save("mlp.onnx")                  # or model.save("out/", target="torch")
outputs = model.run({"x": batch})       # ONNX Runtime
module = model.torch_module()           # eager nn.Module (the ejected model.py, loaded)
print(model.summary().params)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.errors import DlcError, EmitError
from dlc.ir.graph import Graph
from dlc.ir.node import Node
from dlc.lazy_imports import numpy as np
from dlc.limits import Limits
from dlc.passes.manager import PassContext, PassManager, PassRecord, build_pipeline, graph_ops
from dlc.registry import Registry, default_registry
from dlc.spec.loader import Spec, load_spec
from dlc.spec.lower import LoweredSpec, lower_spec
from dlc.summary import Summary, summarize
from dlc.weights import apply_weights, parameter_data, read_weights_file

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import onnx
    import torch

    from dlc.diffusion.compile import SamplerModel
    from dlc.emit.onnx.streamed import StreamedTensor
    from dlc.emit.torch.eject import TorchPackage
    from dlc.runtime import Session


@dataclass
class CompiledModel:
    """A lowered and optimized spec, ready to emit, run or summarize."""

    spec: Spec
    lowered: LoweredSpec
    graph: Graph
    registry: Registry
    seed: int = 0
    opt_level: int = 2
    pass_records: list[PassRecord] = field(default_factory=list)
    portable: bool = False
    direction: str = "forward"
    sampler: SamplerModel | None = None  # set when compiled as a diffusion sampler
    _tensors: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.graph.name

    def tensor(self, node: Node) -> np.ndarray:
        return self.tensors()[node.output.name]

    def tensors(self) -> dict[str, np.ndarray]:
        """Every parameter's and constant's data, by IR value name (drawn once, then cached)."""
        if self._tensors is None:
            from dlc import progress

            tensors: dict[str, np.ndarray] = {}
            parameters = list(self.graph.parameters())
            with progress.task("drawing weights", total=len(parameters)) as advance:
                for node in self.graph:
                    if node.op == "parameter":
                        tensors[node.output.name] = parameter_data(node, self.seed)
                        advance(1)
                    elif node.op == "constant":
                        tensors[node.output.name] = node.attrs.value
            self._tensors = tensors
        return self._tensors

    def weights(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name (the torch state_dict keys and ONNX initializer names)."""
        return {n.attrs.name: self.tensor(n) for n in self.graph.parameters()}

    def onnx_model(self, *, streamed: bool = False) -> onnx.ModelProto:
        """The ONNX model. With `streamed`, parameters are data-free placeholders whose data
        `streamed_weights()` produces (how `save` writes large models fast)."""
        from dlc.emit.onnx.emitter import build_onnx_model

        metadata = {
            "dlc.spec": self.spec.name,
            "dlc.seed": str(self.seed),
            "dlc.opt_level": str(self.opt_level),
            "dlc.portable": str(self.portable).lower(),
        }
        weights = None if streamed else self.tensor
        model = build_onnx_model(
            self.graph, weights, self.registry, metadata=metadata, doc=self.spec.model.doc or ""
        )
        if self.sampler is not None:  # the U-Net's weights as the loop's constants
            from dlc.emit.onnx.loop_weights import localize_loop_initializers

            localize_loop_initializers(model)
        return model

    def streamed_weights(self) -> dict[str, StreamedTensor]:
        """Each parameter's data in pieces, by name, drawn when written through small reused
        buffers (or taken from the tensors already drawn): the values of `weights()`."""
        from dlc.emit.onnx.streamed import StreamedTensor

        streamed = {}
        for node in self.graph.parameters():
            value = node.output
            shape = tuple(int(d) for d in value.type.shape)
            dtype = value.type.dtype.numpy
            nbytes = int(np.prod(shape)) * dtype.itemsize
            if self._tensors is not None:
                streamed[node.attrs.name] = StreamedTensor(nbytes, partial(_whole, self._tensors[value.name]))
                continue
            init = node.attrs.init
            parts = init.parts(shape, dtype, self.seed, node.attrs.name)
            streamed[node.attrs.name] = StreamedTensor(
                nbytes,
                partial(init.chunks, shape, dtype, self.seed, node.attrs.name),
                parts=tuple(parts.sources),
                finish=parts.finish,
            )
        return streamed

    def save(self, path: str | Path, target: str = "onnx") -> list[Path]:
        """Write the model with an emit target (`onnx`, `torch`, or a plugin's)."""
        try:
            emit_target = self.registry.target(target)
        except KeyError:
            raise DlcError(
                f"unknown target '{target}'",
                hint=f"available targets: {', '.join(self.registry.target_names)}",
            ) from None
        start = time.perf_counter()
        written = emit_target.write(self, Path(path))
        for file in written:
            size = f"{file.stat().st_size / 1e6:.2f} MB" if file.is_file() else "directory"
            log.info("wrote %s (%s)", file, size)
        log.info("%s target written in %.2f s", emit_target.name, time.perf_counter() - start)
        return written

    def inverse(self) -> CompiledModel:
        """The spec's inverse map x = f^-1(z) (`dlc.spec.direction`), with these same
        weights under the same names; the inverse of an inverse is the forward map."""
        from dlc.spec.direction import FORWARD, INVERSE

        return compile(
            self.spec,
            opt_level=self.opt_level,
            seed=self.seed,
            registry=self.registry,
            portable=self.portable,
            direction=INVERSE if self.direction == FORWARD else FORWARD,
            weights=self.weights(),
        )

    def torch_package(self) -> TorchPackage:
        from dlc.emit.torch.eject import torch_package

        origin = str(self.spec.path) if self.spec.path else self.spec.source.file
        return torch_package(self.graph, self.registry, self.tensors(), origin)

    def torch_source(self) -> str:
        return self.torch_package().source

    def torch_module(self) -> torch.nn.Module:
        """The eager module that the ejected model.py defines, with these weights, in eval mode."""
        from dlc.emit.torch.eject import build_module

        return build_module(self.torch_package())

    def graph_module(self) -> torch.fx.GraphModule:
        """The same module as a `torch.fx.GraphModule`. A `scan` over a symbolic length
        cannot be traced (fx would need the length); a `steps` loop is unrolled."""
        from dlc.emit.torch.eject import build_graph_module

        try:
            return build_graph_module(self.torch_package())
        except TypeError as error:
            loops = [n.name for n in self.graph if n.op == "scan" and n.attrs.steps is None]
            if not loops:
                raise
            raise EmitError(
                f"torch.fx cannot trace the loop over a sequence in '{loops[0]}': its length is "
                "only known at run time",
                hint="use torch_module(), the same code run eagerly",
            ) from error

    def summary(self, dims: Mapping[str, int] | None = None) -> Summary:
        """Per-layer shapes, parameters and MACs of the spec as written (before passes)."""
        return summarize(self.lowered.graph, self.lowered.layers, self.registry, dims)

    def ntk(
        self,
        x1: np.ndarray | Mapping[str, np.ndarray],
        x2: np.ndarray | Mapping[str, np.ndarray] | None = None,
        *,
        output: str | None = None,
        mode: str = "trace",
        chunk: int | None = None,
    ) -> np.ndarray:
        """The empirical neural tangent kernel between the samples of `x1` and `x2` (default
        `x1`), with respect to this model's trainable parameters (`dlc.analysis.ntk`). Compile
        with `opt_level=0` for the spec's own parameters: a pass such as batch-norm folding
        replaces them by others with other gradients."""
        from dlc.analysis.ntk import model_ntk

        return model_ntk(self, x1, x2, output=output, mode=mode, chunk=chunk)

    def session(self, provider: str = "auto") -> Session:
        from dlc.runtime import Session

        return Session(self.onnx_model(), provider)

    def run(self, inputs: Mapping[str, np.ndarray], provider: str = "auto") -> dict[str, np.ndarray]:
        return self.session(provider).run(inputs)


def _whole(array: np.ndarray, buffers: object) -> Iterator[np.ndarray]:
    yield array.reshape(-1)


def compile(
    spec: Spec | str | Path,
    *,
    opt_level: int = 2,
    passes: Sequence[str] | None = None,
    seed: int = 0,
    weights: str | Path | Mapping[str, np.ndarray] | None = None,
    overrides: Mapping[str, Any] | None = None,
    pass_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    strict_plugins: bool = False,
    verify: bool | None = None,
    portable: bool = False,
    limits: Limits | None = None,
    direction: str = "forward",
    sampling: Mapping[str, Any] | None = None,
) -> CompiledModel:
    """Load (if given a path), lower, and optimize a spec.

    `opt_level` 0 runs no passes, 1 the exact cleanups, 2 everything; `passes` picks
    passes by name instead. `weights` is a safetensors file (or a mapping of arrays by
    parameter name) whose tensors replace the seeded initialization. `overrides` replace
    spec params (``--set``). `portable` keeps the ONNX output to standard ops; by default
    passes may use ONNX Runtime's fused ops. `limits` bounds the model's parameters and
    operations (`dlc.limits`), checked before any weight is drawn. `direction` ``inverse``
    compiles the inverse map x = f^-1(z) of a spec of invertible layers
    (`dlc.spec.direction`), with the same parameter names. `sampling` (a mapping, possibly
    empty, of `sampling:` keys such as ``{"sampler": "ddim", "steps": 50}``) compiles the
    spec's diffusion sampler, x_T -> x_0, instead of the network itself (`dlc.diffusion`)."""
    if sampling is not None and direction != "forward":
        raise DlcError(
            "a diffusion sampler runs the network forward; "
            f"it cannot be compiled with direction '{direction}'",
            hint="drop `--direction inverse`, or compile the inverse without `--sampler`",
        )
    start = time.perf_counter()
    registry = registry or default_registry(strict=strict_plugins)
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    elif overrides:
        raise DlcError("overrides apply when loading a spec; pass a path, or use load_spec(path, overrides)")
    log.info("loaded spec '%s' in %.1f ms", spec.name, (time.perf_counter() - start) * 1e3)
    start = time.perf_counter()
    lowered = lower_spec(spec, registry, limits, direction)
    graph = lowered.graph.copy()
    log.info("lowered to %d IR nodes in %.1f ms", len(list(graph)), (time.perf_counter() - start) * 1e3)
    if isinstance(weights, Mapping):
        apply_weights(graph, {k: np.asarray(v) for k, v in weights.items()}, "the given weights")
    elif weights is not None:
        apply_weights(graph, read_weights_file(weights), str(weights))
        log.info("weights from %s", weights)
    sampler = None
    if sampling is not None:
        from dlc.diffusion.compile import compile_sampler

        sampler = compile_sampler(spec, graph, sampling, registry)
        graph = sampler.graph.copy()
    pipeline = build_pipeline(registry, opt_level, passes, graph_ops(graph))
    log.info("passes: %s", ", ".join(info.name for info in pipeline) or "none")
    context = PassContext(registry, seed, dict(pass_options or {}), portable)
    manager = PassManager([info.factory(context) for info in pipeline], registry, verify=verify)
    graph = manager.run(graph)
    records = manager.records
    model = CompiledModel(spec, lowered, graph, registry, seed, opt_level, records, portable, direction)
    model.sampler = sampler
    return model
