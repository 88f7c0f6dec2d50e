"""A compiled spec's torch module as a pure function of its trainable parameters, the form
`torch.func` differentiates (`functional_call`), plus the checks that turn user arrays into
its inputs.

Analyses run on the spec's own parameters: compile at `-O0` (`compile_for_analysis`), since
a pass such as batch-norm folding replaces parameters by others that compute the same
function but have other gradients, and so another tangent kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    import torch

    from dlc.api import CompiledModel


@dataclass
class ModelFunction:
    """`module`'s forward as `f(parameters, inputs) -> output`, the named output only.
    `parameters` are the trainable tensors (detached, by state_dict key); buffers stay fixed."""

    module: torch.nn.Module
    parameters: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[Any, ...], ...]
    output_names: tuple[str, ...]
    output: str

    def __call__(
        self, parameters: Mapping[str, torch.Tensor], inputs: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        from torch.func import functional_call

        result = functional_call(self.module, ({**parameters}, self.buffers), tuple(inputs))
        if isinstance(result, tuple | list):
            return result[self.output_names.index(self.output)]
        return result

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The output at the function's own parameters."""
        return self(self.parameters, inputs)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters.values())


def compile_for_analysis(
    spec: str | Path,
    *,
    weights: str | Path | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    parameterization: str | None = None,
    registry: Any = None,
    limits: Any = None,
) -> CompiledModel:
    """The spec at `-O0`, so that the torch module's parameters are the spec's own.
    `parameterization` (`standard` or `ntk`) overrides the spec's `parameterization:`."""
    import dlc
    from dlc.spec.loader import load_spec

    loaded = load_spec(spec, overrides)
    if parameterization is not None:
        loaded = loaded.with_parameterization(parameterization)
    return dlc.compile(loaded, opt_level=0, seed=seed, weights=weights, registry=registry, limits=limits)


def model_function(model: CompiledModel, output: str | None = None) -> ModelFunction:
    """The compiled model's torch module as a function; `output` names one of the spec's
    outputs (default: the first)."""
    from dlc.optional import require_torch

    require_torch("dlc's analyses (gradients through the torch target)")
    module = model.torch_module().eval()
    output_names = tuple(model.graph.outputs)
    if output is None:
        output = output_names[0]
    elif output not in output_names:
        raise AnalysisError(
            f"the model has no output '{output}'", hint=f"its outputs: {', '.join(output_names)}"
        )
    inputs = model.graph.inputs()
    parameters = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    return ModelFunction(
        module,
        parameters,
        buffers,
        tuple(n.attrs.name for n in inputs),
        tuple(tuple(n.output.type.shape) for n in inputs),
        output_names,
        output,
    )


def as_input_tensors(
    function: ModelFunction, arrays: np.ndarray | Mapping[str, np.ndarray], what: str
) -> tuple[torch.Tensor, ...]:
    """Arrays for every model input, one batch of samples along axis 0, as float32 or
    int64 tensors; a missing, extra-ranked or mis-shaped array is an error naming it."""
    import torch

    if not isinstance(arrays, Mapping):
        if len(function.input_names) != 1:
            raise AnalysisError(
                f"{what}: the model has {len(function.input_names)} inputs "
                f"({', '.join(function.input_names)}); give one array per input, by name"
            )
        arrays = {function.input_names[0]: arrays}
    tensors = []
    batch: int | None = None
    for name, shape in zip(function.input_names, function.input_shapes, strict=True):
        if name not in arrays:
            raise AnalysisError(
                f"{what} has no array named '{name}' (the model's input)",
                hint=f"arrays found: {', '.join(arrays) or 'none'}",
            )
        array = np.asarray(arrays[name])
        if array.ndim != len(shape) or any(
            isinstance(dim, int) and dim != size
            for dim, size in zip(shape[1:], array.shape[1:], strict=False)
        ):
            expected = "[" + ", ".join(str(d) for d in shape) + "]"
            raise AnalysisError(
                f"{what}: array '{name}' has shape {list(array.shape)}, but input '{name}' is {expected}"
            )
        if batch is not None and array.shape[0] != batch:
            raise AnalysisError(
                f"{what}: the arrays hold different numbers of samples ({batch} and {array.shape[0]})"
            )
        batch = array.shape[0]
        dtype = np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32
        tensors.append(torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)))
    return tuple(tensors)


def flat_output(
    function: ModelFunction, parameters: Mapping[str, torch.Tensor], inputs: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The selected output as [samples, values]: each sample's output flattened."""
    output = function(parameters, inputs)
    samples = inputs[0].shape[0]
    if output.ndim == 0 or output.shape[0] != samples:
        raise AnalysisError(
            f"output '{function.output}' has shape {list(output.shape)}: its first dim is not the "
            f"batch of {samples} samples, so it has no per-sample values"
        )
    return output.reshape(samples, -1)
