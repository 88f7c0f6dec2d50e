"""Everything `dlc train` checks before it trains or writes anything: the spec and its
training section, the model(s) compiled from it, the data bound to the inputs and split,
and the objective fitted to the outputs. A bad config fails here, located, with nothing
written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlc.api import CompiledModel, compile
from dlc.errors import SpecError
from dlc.ir.symbolic import Sym
from dlc.limits import Limits
from dlc.registry import Registry, default_registry
from dlc.spec.loader import load_spec
from dlc.training.checkpoints import MAIN_MODEL
from dlc.training.config import GANObjective, TrainingConfig
from dlc.training.data import TARGET, InputSlot, Splits, load_splits
from dlc.training.objectives import (
    DISCRIMINATOR,
    GENERATOR,
    ModelInterface,
    Objective,
    build_objective,
    data_inputs,
    needs_target,
)
from dlc.training.section import (
    TrainingSource,
    apply_overrides,
    split_overrides,
    training_source,
    validate_section,
)


@dataclass
class TrainingPlan:
    """A run that has passed every check: models by role, data, objective."""

    spec_path: Path
    section: TrainingSource
    config: TrainingConfig
    models: dict[str, CompiledModel]  # "model", or "generator" and "discriminator"
    interfaces: dict[str, ModelInterface]
    splits: Splits
    objective: Objective

    @property
    def main_role(self) -> str:
        return GENERATOR if GENERATOR in self.models else MAIN_MODEL


def interface_of(model: CompiledModel) -> ModelInterface:
    def dims(shape: Any) -> tuple[int | str, ...]:
        return tuple(str(d) if isinstance(d, Sym) else int(d) for d in shape)

    inputs = tuple(
        InputSlot(node.attrs.name, dims(node.output.type.shape), node.output.type.dtype)
        for node in model.graph.inputs()
    )
    outputs = {name: dims(value.type.shape) for name, value in model.graph.outputs.items()}
    return ModelInterface(inputs, outputs)


def plan_training(
    spec_path: str | Path,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    limits: Limits | None = None,
) -> TrainingPlan:
    """Load, compile and check a training run; `overrides` are the CLI's `--set` values
    (`training.`-prefixed keys go to the section, the others to `params`)."""
    registry = registry or default_registry()
    spec_path = Path(spec_path)
    params, training = split_overrides(overrides or {})
    spec = load_spec(spec_path, params, check_training=False)
    section = training_source(spec.raw, spec.source, spec.path, Path(config_path) if config_path else None)
    section = apply_overrides(section, training)
    config = validate_section(section)
    model = compile(spec, opt_level=0, seed=config.seed, registry=registry, limits=limits)
    models = {MAIN_MODEL: model}
    interfaces = {MAIN_MODEL: interface_of(model)}
    discriminator = None
    if isinstance(config.objective, GANObjective):
        path = section.resolve(config.objective.discriminator)
        if not path.is_file():
            raise section.error(f"discriminator spec not found: {path}", ("objective", "discriminator"))
        models = {
            GENERATOR: model,
            DISCRIMINATOR: compile(path, opt_level=0, seed=config.seed + 1, registry=registry, limits=limits),
        }
        interfaces = {GENERATOR: interfaces[MAIN_MODEL], DISCRIMINATOR: interface_of(models[DISCRIMINATOR])}
        discriminator = interfaces[DISCRIMINATOR]
    main = interfaces[GENERATOR if discriminator else MAIN_MODEL]
    slots = data_inputs(config.objective, main, discriminator)
    splits = load_splits(config.data, section, slots, needs_target(config.objective), registry.datasets)
    target = splits.train.get(TARGET)
    objective, problems = build_objective(config.objective, main, section, target, discriminator)
    if problems:
        raise SpecError(diagnostics=problems)
    assert objective is not None
    if len(splits.train.get(TARGET, next(iter(splits.train.values())))) == 0:
        raise section.error("no training examples are left after the validation and test splits", ("data",))
    return TrainingPlan(spec_path, section, config, models, interfaces, splits, objective)
