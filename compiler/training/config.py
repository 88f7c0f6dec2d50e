"""Pydantic models of a spec's `training:` section (and of `dlc train --config FILE`).

The section says what to learn from (`data`), what to minimize (`objective`), how
(`optimizer`, `schedule`, `averaging`) and for how long. Optimizers, schedules and
averaging are `dlc.training.optim`'s models; objectives are the closed union below, one
model per objective, told apart by `name`. No model here imports torch: `dlc schema` and
`dlc validate` read them on an install without it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dlc.training.optim import AveragingSpec, OptimizerSpec, ScheduleSpec


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(StrictModel):
    """Where the examples come from: a packaged or plugin dataset (`dataset`), or an array
    file (`path`, .npz or .safetensors) with one array per spec input plus the targets."""

    dataset: str | None = Field(
        None, description="A packaged dataset (digits, moons, blobs, sbm) or a plugin's."
    )
    path: str | None = Field(None, description="An .npz or .safetensors file, relative to the spec.")
    options: dict[str, Any] = Field(default_factory=dict, description="Arguments of the dataset.")
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Spec input -> array name; by default the array of the input's own name "
        "(or a dataset's features when the spec has one input).",
    )
    target: str | None = Field(
        None, description="The targets' array name (default: the dataset's, or `target`)."
    )
    validation: float = Field(0.1, ge=0, lt=1, description="Fraction held out for validation.")
    test: float = Field(0.2, ge=0, lt=1, description="Fraction held out for the final test.")
    shuffle: bool = Field(True, description="Shuffle the training examples every epoch (seeded).")
    split_seed: int = Field(0, ge=0, description="Seed of the train/validation/test split.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of `dataset` (a packaged dataset) and `path` (an array file)")
        if self.validation + self.test >= 1:
            raise ValueError(
                f"validation + test fractions must leave training data, got {self.validation + self.test:g}"
            )
        return self


class _SupervisedObjective(StrictModel):
    output: str | None = Field(None, description="The spec output the loss reads (default: the only one).")
    target: str | None = Field(None, description="The target array (default: the data's target).")


class CrossEntropyObjective(_SupervisedObjective):
    """H(p, q) = -mean log softmax(logits)[y]: logits [N, C] or [N, C, ...] (or [N, T, C]
    with `class_axis: -1`); reports accuracy, perplexity exp(H) and bits H / ln 2."""

    name: Literal["cross_entropy"]
    class_axis: Literal[1, -1] = Field(
        1, description="The axis of the classes: 1 (torch) or -1 (language models)."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class NLLObjective(_SupervisedObjective):
    """-mean log q(y) from log-probabilities (a `log_softmax` output)."""

    name: Literal["nll"]
    class_axis: Literal[1, -1] = 1


class MSEObjective(_SupervisedObjective):
    """mean (output - target)^2."""

    name: Literal["mse"]


class BCEObjective(_SupervisedObjective):
    """Binary cross-entropy on logits (sigmoid inside, numerically stable); accuracy at 0."""

    name: Literal["bce"]


class FlowNLLObjective(StrictModel):
    """-(log p_z(z) + log_det) per example, p_z the standard normal; reported in nats and
    bits per dimension."""

    name: Literal["flow_nll"]
    z: str = Field("z", description="The output holding z = f(x).")
    log_det: str = Field("log_det", description="The output holding log |det df/dx| per example.")


class GANObjective(StrictModel):
    """The minimax game: D maximizes log D(x) + log(1 - D(G(z))), G maximizes log D(G(z))
    (the non-saturating loss). This spec is the generator; its input is the noise z."""

    name: Literal["gan"]
    discriminator: str = Field(description="The discriminator's spec file, relative to this spec.")
    discriminator_steps: int = Field(1, ge=1, description="Discriminator updates per generator update.")


class DDPMObjective(StrictModel):
    """L_simple = E ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2 with t
    uniform in 0..steps-1 and linear betas."""

    name: Literal["ddpm"]
    steps: int = Field(1000, ge=1, le=100_000)
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    noisy_input: str = Field("x", description="The spec input fed x_t.")
    time_input: str = Field("t", description="The spec input fed t (as float, shape [N] or [N, 1]).")


OBJECTIVE_MODELS: tuple[type[StrictModel], ...] = (
    CrossEntropyObjective,
    NLLObjective,
    MSEObjective,
    BCEObjective,
    FlowNLLObjective,
    GANObjective,
    DDPMObjective,
)
OBJECTIVE_NAMES = tuple(model.model_fields["name"].annotation.__args__[0] for model in OBJECTIVE_MODELS)
ObjectiveConfig = Annotated[
    CrossEntropyObjective
    | NLLObjective
    | MSEObjective
    | BCEObjective
    | FlowNLLObjective
    | GANObjective
    | DDPMObjective,
    Field(discriminator="name"),
]


class TrainingConfig(StrictModel):
    """A spec's `training:` section."""

    data: DataConfig
    objective: ObjectiveConfig
    optimizer: OptimizerSpec
    schedule: ScheduleSpec | None = None
    averaging: AveragingSpec | None = None
    epochs: int = Field(10, ge=1, le=1_000_000)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (all epochs).")
    batch_size: int = Field(32, ge=1, description="The global batch: split across processes under torchrun.")
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, ge=0, description="Seed of the initial weights, the shuffling and the noise.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16 autocast (CUDA only; ignored on CPU)."
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads per process (torch.set_num_threads); small models train fastest on 1.",
    )
    checkpoint_every: int = Field(1, ge=1, description="Save a checkpoint every this many epochs.")
    log_every: int = Field(10, ge=1, description="Write a metrics line every this many steps.")


# The sections whose `name` picks a model: unknown names get a did-you-mean.
NAMED_SECTIONS = ("objective", "optimizer", "schedule", "averaging")
