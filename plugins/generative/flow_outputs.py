"""Which outputs of a compiled flow are z and log_det, by name, for training (the flow's
negative log-likelihood -log p(z) - log_det) and sampling code.

    from dlc.plugins.generative.flow_outputs import flow_outputs, outputs_by_name

    model = dlc.compile("specs/generative/realnvp_moons.yaml")
    names = flow_outputs(model)                  # FlowOutputs(z='z', log_det='log_det')
    result = outputs_by_name(model, model.torch_module()(x))
    nll = -(prior.log_prob(result[names.z]).sum(1) + result[names.log_det]).mean()

The names are found from the graph, whatever the spec calls its outputs: the outputs that
hold the last top-level flow's (or invertible block's) `z` / `out` and `log_det` ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlc.errors import DlcError

if TYPE_CHECKING:
    from dlc.api import CompiledModel


@dataclass(frozen=True)
class FlowOutputs:
    z: str  # the latent (the forward map's output; x in an inverse model)
    log_det: str  # log |det J| of the compiled map, one value per example


def flow_outputs(model: CompiledModel) -> FlowOutputs:
    """The output names of `model`'s flow: its latent and its log |det J|."""
    by_value = {value.name: name for name, value in model.lowered.graph.outputs.items()}
    for info in reversed(model.lowered.layers):
        if info.depth != 0 or "log_det" not in info.outputs:
            continue
        ports = list(info.outputs)
        latent = by_value.get(info.outputs[ports[0]].name)
        log_det = by_value.get(info.outputs["log_det"].name)
        if latent is not None and log_det is not None:
            return FlowOutputs(latent, log_det)
    raise DlcError(
        f"model '{model.name}' has no flow whose outputs are both model outputs",
        hint="list the flow's ports as outputs: `outputs: {z: flow.z, log_det: flow.log_det}`",
    )


def outputs_by_name(model: CompiledModel, result: Any) -> dict[str, Any]:
    """A torch module's result (one tensor, or a tuple in output order) keyed by output name;
    a dict (ONNX Runtime's `model.run`) is returned as it is."""
    if isinstance(result, dict):
        return result
    values: Sequence[Any] = result if isinstance(result, tuple) else (result,)
    return dict(zip(model.graph.outputs, values, strict=True))
