"""What training minimizes, as the course writes it: a small registry of objectives.

Each objective says which spec inputs take data and whether targets are needed, checks
before training that it fits the model's outputs (a located error otherwise), and gives
its *phases*: (model, loss) pairs the loop runs in order each step, one optimizer step per
phase. A classifier has one phase; the GAN has two, the discriminator's then the
generator's (alternating updates).

- cross-entropy H(p, q) = -mean log softmax(logits)[y]; perplexity PPL = exp(H) and H in
  bits (H / ln 2) are reported beside accuracy. NLL is the same on log-probabilities.
- MSE mean (f(x) - y)^2; BCE on logits (sigmoid inside, stable).
- flow NLL -(log p_z(z) + log_det), p_z = N(0, I), from outputs `z` and `log_det`.
- GAN: D minimizes -(log D(x) + log(1 - D(G(z)))); G the non-saturating -log D(G(z)).
- DDPM L_simple = ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2, t uniform.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlc.errors import Diagnostic
from dlc.lazy_imports import numpy as np
from dlc.spec.suggest import did_you_mean
from dlc.training.config import (
    BCEObjective,
    CrossEntropyObjective,
    DDPMObjective,
    FlowNLLObjective,
    GANObjective,
    MSEObjective,
    NLLObjective,
)
from dlc.training.data import NODES, TARGET, InputSlot
from dlc.training.section import TrainingSource

if TYPE_CHECKING:
    import torch

Shape = tuple[int | str, ...]
Metrics = dict[str, float]
LossFunction = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[torch.Tensor, Metrics]"]
GENERATOR, DISCRIMINATOR, MODEL = "generator", "discriminator", "model"


@dataclass(frozen=True)
class ModelInterface:
    """What an objective needs to know about one model: its inputs and outputs."""

    inputs: tuple[InputSlot, ...]
    outputs: dict[str, Shape]

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)


@dataclass(frozen=True)
class Phase:
    """One optimizer step per training step: which model it updates and its loss."""

    model: str
    loss: LossFunction
    repeat: int = 1


@dataclass
class Objective:
    """A configured objective, bound to the models it trains."""

    name: str
    data_inputs: tuple[InputSlot, ...]  # the inputs fed from the data (others are drawn)
    needs_target: bool
    phases: list[Phase]
    evaluate: LossFunction  # loss and metrics on held-out data (no update)
    finish: Callable[[Metrics], Metrics] = field(default=lambda metrics: metrics)
    classifier_output: str | None = None  # argmax predictions compared in deploy checks
    samples: Callable[[Mapping[str, Any], int], torch.Tensor] | None = None  # a generator's draws
    sample_count: int = 0


def run_model(module: Any, interface: ModelInterface, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Call the module with its inputs by name; its outputs by name."""
    returned = module(**{slot.name: inputs[slot.name] for slot in interface.inputs})
    if not isinstance(returned, tuple):
        returned = (returned,)
    return dict(zip(interface.output_names, returned, strict=True))


# -- supervised -----------------------------------------------------------------------------


def _pick_output(
    config: Any, interface: ModelInterface, section: TrainingSource, problems: list[Diagnostic]
) -> str | None:
    if config.output is not None:
        if config.output not in interface.outputs:
            problems.append(
                section.diagnostic(
                    f"the model has no output '{config.output}'",
                    ("objective", "output"),
                    hint=did_you_mean(config.output, interface.outputs)
                    or f"outputs: {', '.join(interface.outputs)}",
                )
            )
            return None
        return config.output
    if len(interface.outputs) > 1:
        problems.append(
            section.diagnostic(
                f"the model has {len(interface.outputs)} outputs ({', '.join(interface.outputs)}): "
                f"say which one the {config.name} loss reads",
                ("objective",),
                hint=f"write `output: {interface.output_names[0]}` under objective",
            )
        )
        return None
    return interface.output_names[0]


def _shape_text(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _fits(expected: Sequence[int | str], actual: Sequence[int]) -> bool:
    return len(expected) == len(actual) and all(
        not isinstance(e, int) or e == a for e, a in zip(expected, actual, strict=True)
    )


def _same_example_shape(first: Shape, second: Shape) -> bool:
    """Equal ranks and equal sizes after the batch dim, where both sizes are known."""
    return len(first) == len(second) and all(
        not (isinstance(a, int) and isinstance(b, int)) or a == b
        for a, b in zip(first[1:], second[1:], strict=True)
    )


def supervised_problem(config: Any, output_shape: Shape, target: np.ndarray) -> str | None:
    """Why `config`'s loss cannot compare an output of `output_shape` with `target` (one
    example per row), or None."""
    per_example = tuple(target.shape[1:])
    if config.name in ("cross_entropy", "nll"):
        if len(output_shape) < 2:
            return f"{config.name} needs class scores [N, C, ...], the output is {_shape_text(output_shape)}"
        axis = 1 if config.class_axis == 1 else len(output_shape) - 1
        classes = output_shape[axis]
        others = tuple(d for i, d in enumerate(output_shape) if i != axis)[1:]
        if not _fits(others, per_example):
            return (
                f"the targets {_shape_text(['N', *per_example])} do not fit the output "
                f"{_shape_text(output_shape)} with classes on axis {config.class_axis}"
            )
        if target.dtype.kind not in "iub":
            return f"{config.name} takes integer class labels, the targets are {target.dtype}"
        if isinstance(classes, int) and target.size and (target.min() < 0 or target.max() >= classes):
            return f"labels run from {target.min()} to {target.max()}, the output has {classes} classes"
        return None
    sizes = [d for d in output_shape[1:]]
    if all(isinstance(d, int) for d in sizes) and int(np.prod(sizes)) != int(np.prod(per_example)):
        return (
            f"{config.name} compares the output {_shape_text(output_shape)} with targets "
            f"{_shape_text(['N', *per_example])}: the sizes differ"
        )
    return None


def _supervised(
    config: Any, interface: ModelInterface, section: TrainingSource, target: np.ndarray | None
) -> tuple[Objective | None, list[Diagnostic]]:
    import torch.nn.functional as F

    problems: list[Diagnostic] = []
    output = _pick_output(config, interface, section, problems)
    if output is not None and target is not None:
        problem = supervised_problem(config, interface.outputs[output], target)
        if problem:
            problems.append(
                section.diagnostic(
                    f"the {config.name} loss does not fit the model: {problem}", ("objective",)
                )
            )
    if problems or output is None:
        return None, problems
    name = config.name

    def loss(models: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, Metrics]:
        prediction = run_model(models[MODEL], interface, batch)[output]
        target = batch[TARGET]
        if NODES in batch:  # a graph: the loss reads the split's nodes
            prediction, target = prediction[batch[NODES]], target[batch[NODES]]
        if name in ("cross_entropy", "nll"):
            scores = prediction if config.class_axis == 1 else prediction.movedim(-1, 1)
            target = target.long()
            if name == "cross_entropy":
                value = F.cross_entropy(scores.float(), target, label_smoothing=config.label_smoothing)
            else:
                value = F.nll_loss(scores.float(), target)
            accuracy = (scores.argmax(1) == target).float().mean()
            return value, {"loss": value.item(), "accuracy": accuracy.item()}
        target = target.to(prediction.dtype).reshape(prediction.shape)
        if name == "mse":
            value = F.mse_loss(prediction.float(), target.float())
            return value, {"loss": value.item()}
        value = F.binary_cross_entropy_with_logits(prediction.float(), target.float())
        accuracy = ((prediction > 0) == (target > 0.5)).float().mean()
        return value, {"loss": value.item(), "accuracy": accuracy.item()}

    def finish(metrics: Metrics) -> Metrics:
        if name in ("cross_entropy", "nll") and "loss" in metrics:
            metrics["perplexity"] = math.exp(min(metrics["loss"], 700.0))  # PPL = exp(H)
            metrics["bits"] = metrics["loss"] / math.log(2)  # H in bits; PPL = 2^bits
        return metrics

    classifier = output if name in ("cross_entropy", "nll", "bce") else None
    objective = Objective(name, interface.inputs, True, [Phase(MODEL, loss)], loss, finish, classifier)
    return objective, []


# -- generative -----------------------------------------------------------------------------


def _flow_nll(
    config: FlowNLLObjective, interface: ModelInterface, section: TrainingSource
) -> tuple[Objective | None, list[Diagnostic]]:
    problems = []
    for role, name in (("z", config.z), ("log_det", config.log_det)):
        if name not in interface.outputs:
            problems.append(
                section.diagnostic(
                    f"the flow NLL reads {role} from an output '{name}', which the model does not have",
                    ("objective",),
                    hint=did_you_mean(name, interface.outputs) or f"outputs: {', '.join(interface.outputs)}",
                )
            )
    if problems:
        return None, problems
    log_det_shape = interface.outputs[config.log_det]
    if len(log_det_shape) > 2 or (len(log_det_shape) == 2 and log_det_shape[1] != 1):
        message = f"log_det must be one number per example ([N] or [N, 1]), got {_shape_text(log_det_shape)}"
        return None, [section.diagnostic(f"the flow NLL does not fit the model: {message}", ("objective",))]

    def loss(models: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, Metrics]:
        outputs = run_model(models[MODEL], interface, batch)
        z, log_det = outputs[config.z].float(), outputs[config.log_det].float().reshape(-1)
        flat = z.reshape(len(z), -1)
        log_pz = (-0.5 * flat.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
        value = -(log_pz + log_det).mean()
        return value, {"loss": value.item(), "bits_per_dim": value.item() / (flat.shape[1] * math.log(2))}

    return Objective("flow_nll", interface.inputs, False, [Phase(MODEL, loss)], loss), []


def linear_betas(steps: int, start: float, end: float) -> np.ndarray:
    """DDPM's linear noise schedule beta_1..beta_T."""
    return np.linspace(start, end, steps, dtype=np.float64)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps: the forward process in closed form."""
    scale = alpha_bar[t].reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return scale.sqrt() * x0 + (1 - scale).sqrt() * noise


def _ddpm(
    config: DDPMObjective, interface: ModelInterface, section: TrainingSource
) -> tuple[Objective | None, list[Diagnostic]]:
    import torch
    import torch.nn.functional as F

    slots = {slot.name: slot for slot in interface.inputs}
    problems = []
    for key in ("noisy_input", "time_input"):
        name = getattr(config, key)
        if name not in slots:
            problems.append(
                section.diagnostic(
                    f"the DDPM objective feeds `{key}` '{name}', which is not a spec input",
                    ("objective", key),
                    hint=did_you_mean(name, slots) or f"inputs: {', '.join(slots)}",
                )
            )
    if len(interface.outputs) != 1:
        problems.append(
            section.diagnostic("the DDPM objective needs one output, the predicted noise", ("objective",))
        )
    if problems:
        return None, problems
    x_slot, t_slot = slots[config.noisy_input], slots[config.time_input]
    (output_shape,) = interface.outputs.values()
    if not _same_example_shape(output_shape, x_slot.shape):
        message = (
            f"the predicted noise {_shape_text(output_shape)} must have the shape of the input "
            f"{_shape_text(x_slot.shape)}"
        )
        return None, [
            section.diagnostic(f"the DDPM objective does not fit the model: {message}", ("objective",))
        ]
    alpha_bar = torch.from_numpy(
        np.cumprod(1 - linear_betas(config.steps, config.beta_start, config.beta_end))
    )

    def loss(models: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, Metrics]:
        x0 = batch[x_slot.name]
        t = torch.randint(0, config.steps, (len(x0),))
        noise = torch.randn_like(x0)
        time = t.reshape(len(x0), *([1] * (len(t_slot.shape) - 1))).to(getattr(torch, t_slot.dtype.value))
        inputs = {x_slot.name: q_sample(x0, t, noise, alpha_bar), t_slot.name: time}
        predicted = run_model(models[MODEL], interface, inputs)
        value = F.mse_loss(next(iter(predicted.values())).float(), noise.float())
        return value, {"loss": value.item()}

    return Objective("ddpm", (x_slot,), False, [Phase(MODEL, loss)], loss), []


def _gan(
    config: GANObjective,
    generator: ModelInterface,
    discriminator: ModelInterface | None,
    section: TrainingSource,
) -> tuple[Objective | None, list[Diagnostic]]:
    import torch
    import torch.nn.functional as F

    assert discriminator is not None
    problems = []
    if len(generator.inputs) != 1 or len(generator.outputs) != 1:
        problems.append(
            section.diagnostic(
                "the GAN generator takes one input (the noise z) and has one output", ("objective",)
            )
        )
    if len(discriminator.inputs) != 1 or len(discriminator.outputs) != 1:
        problems.append(
            section.diagnostic(
                "the GAN discriminator takes one input and has one output (a logit)",
                ("objective", "discriminator"),
            )
        )
    if problems:
        return None, problems
    (noise_slot,) = generator.inputs
    (real_slot,) = discriminator.inputs
    (fake_shape,) = generator.outputs.values()
    if not _same_example_shape(fake_shape, real_slot.shape):
        made, taken = _shape_text(fake_shape), _shape_text(real_slot.shape)
        message = f"the generator makes {made}, the discriminator takes {taken}"
        return None, [section.diagnostic(f"the GAN does not fit: {message}", ("objective", "discriminator"))]
    noise_shape = list(noise_slot.shape[1:])
    if not all(isinstance(d, int) for d in noise_shape):
        shape = _shape_text(noise_slot.shape)
        message = f"the generator's noise input {shape} needs fixed sizes after the batch dim"
        return None, [section.diagnostic(message, ("objective",))]

    def fake(models: Mapping[str, Any], count: int) -> torch.Tensor:
        z = torch.randn(count, *noise_shape)
        return next(iter(run_model(models[GENERATOR], generator, {noise_slot.name: z}).values()))

    def score(models: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        return (
            next(iter(run_model(models[DISCRIMINATOR], discriminator, {real_slot.name: x}).values()))
            .float()
            .reshape(-1)
        )

    def log_d(scores: torch.Tensor, real: bool) -> torch.Tensor:
        """-mean log D (real) or -mean log(1 - D) (fake), from logits or from D itself."""
        target = torch.ones_like(scores) if real else torch.zeros_like(scores)
        if config.discriminator_output == "logit":
            return F.binary_cross_entropy_with_logits(scores, target)
        return F.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), target)

    def probability(scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores) if config.discriminator_output == "logit" else scores

    def discriminator_loss(
        models: Mapping[str, Any], batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, Metrics]:
        real = batch[real_slot.name]
        with torch.no_grad():
            generated = fake(models, len(real))
        real_scores, fake_scores = score(models, real), score(models, generated)
        value = log_d(real_scores, True) + log_d(fake_scores, False)  # -(log D(x) + log(1 - D(G(z))))
        return value, {"discriminator_loss": value.item(), "d_real": probability(real_scores).mean().item()}

    def generator_loss(models: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, Metrics]:
        value = log_d(score(models, fake(models, len(batch[real_slot.name]))), True)  # -log D(G(z))
        return value, {"generator_loss": value.item(), "loss": value.item()}

    def evaluate(models: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, Metrics]:
        _, d_metrics = discriminator_loss(models, batch)
        g_value, g_metrics = generator_loss(models, batch)
        return g_value, {**d_metrics, **g_metrics}

    phases = [
        Phase(DISCRIMINATOR, discriminator_loss, config.discriminator_steps),
        Phase(GENERATOR, generator_loss),
    ]
    objective = Objective("gan", (real_slot,), False, phases, evaluate)
    if config.sample_grid:
        objective.samples, objective.sample_count = fake, config.sample_grid
    return objective, []


Built = tuple[Objective | None, list[Diagnostic]]


def _supervised_builder(
    config: Any, interface: ModelInterface, section: TrainingSource, **context: Any
) -> Built:
    return _supervised(config, interface, section, context["target"])


def _flow_builder(config: Any, interface: ModelInterface, section: TrainingSource, **context: Any) -> Built:
    return _flow_nll(config, interface, section)


def _ddpm_builder(config: Any, interface: ModelInterface, section: TrainingSource, **context: Any) -> Built:
    return _ddpm(config, interface, section)


def _gan_builder(config: Any, interface: ModelInterface, section: TrainingSource, **context: Any) -> Built:
    return _gan(config, interface, context["discriminator"], section)


# The registry: objective name -> builder (the config models are `dlc.training.config`'s).
OBJECTIVES: dict[str, Callable[..., Built]] = {
    "cross_entropy": _supervised_builder,
    "nll": _supervised_builder,
    "mse": _supervised_builder,
    "bce": _supervised_builder,
    "flow_nll": _flow_builder,
    "ddpm": _ddpm_builder,
    "gan": _gan_builder,
}


def build_objective(
    config: Any,
    interface: ModelInterface,
    section: TrainingSource,
    target: np.ndarray | None = None,
    discriminator: ModelInterface | None = None,
) -> Built:
    """The objective for `config`, or the problems that keep it from fitting the model."""
    return OBJECTIVES[config.name](config, interface, section, target=target, discriminator=discriminator)


def data_inputs(
    config: Any, interface: ModelInterface, discriminator: ModelInterface | None
) -> tuple[InputSlot, ...]:
    """The inputs that take arrays from the data, before the objective is built (the
    binding needs them; the objective's other inputs are drawn)."""
    if isinstance(config, GANObjective):
        return discriminator.inputs if discriminator else ()
    if isinstance(config, DDPMObjective):
        return tuple(slot for slot in interface.inputs if slot.name == config.noisy_input)
    return interface.inputs


def needs_target(config: Any) -> bool:
    return isinstance(config, (CrossEntropyObjective, NLLObjective, MSEObjective, BCEObjective))
